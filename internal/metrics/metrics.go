// Package metrics exposes kmsd's Prometheus metrics: requests by operation
// and outcome, request latency, the key-material cache, keys by state and
// audit write latency. Everything lives in one registry owned by a Metrics
// value (no global registry), served by Handler on a separate listener.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are the values metrics reads at scrape time.
type Sources struct {
	// CacheStats returns the key-material cache hits and misses.
	CacheStats func() (hits, misses uint64)
	// KeysByState counts keys per state.
	KeysByState func(ctx context.Context) (map[string]int, error)
}

// Metrics holds kmsd's collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	audit    prometheus.Histogram
	// The audit log's anchor in the store: whether its last update
	// failed, and how many updates failed.
	anchorFailing  prometheus.Gauge
	anchorFailures prometheus.Counter
}

// New returns Metrics reading src at scrape time.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmsd_requests_total",
			Help: "Requests by operation and outcome (ok, or the AWS error code).",
		}, []string{"operation", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmsd_request_duration_seconds",
			Help:    "Time from the first byte read to the response written, by operation.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"operation"}),
		audit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kmsd_audit_write_duration_seconds",
			Help:    "Time for an audit record to become durable (group commit included).",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}),
	}
	m.anchorFailing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kmsd_audit_anchor_failing",
		Help: "1 while the audit log's anchor could not be moved on in the store (kmsd retries; /readyz answers 503), 0 once it was.",
	})
	m.anchorFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kmsd_audit_anchor_save_failures_total",
		Help: "Failed attempts to move the audit log's anchor on in the store.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.audit, m.anchorFailing, m.anchorFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.CacheStats != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kmsd_key_material_cache_hits_total",
				Help: "Uses of key material found unwrapped in the cache.",
			}, func() float64 { h, _ := src.CacheStats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "kmsd_key_material_cache_misses_total",
				Help: "Uses of key material that had to be unwrapped by the root of trust.",
			}, func() float64 { _, mi := src.CacheStats(); return float64(mi) }),
		)
	}
	if src.KeysByState != nil {
		m.reg.MustRegister(&keysCollector{count: src.KeysByState})
	}
	return m
}

// ObserveRequest records one request. outcome is "ok" or the error code.
func (m *Metrics) ObserveRequest(op, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if op == "" {
		op = "unknown"
	}
	m.requests.WithLabelValues(op, outcome).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// ObserveAudit records how long an audit record took to become durable.
func (m *Metrics) ObserveAudit(d time.Duration) {
	if m == nil {
		return
	}
	m.audit.Observe(d.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
// ObserveAnchorSave records the outcome of an attempt to move the audit
// log's anchor on (audit.Options.OnAnchorSave).
func (m *Metrics) ObserveAnchorSave(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.anchorFailing.Set(1)
		m.anchorFailures.Inc()
		return
	}
	m.anchorFailing.Set(0)
}

func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// keyStates are reported even at zero, so that dashboards see every series.
var keyStates = []string{"Enabled", "Disabled", "PendingDeletion", "PendingImport", "Unavailable"}

type keysCollector struct {
	count func(ctx context.Context) (map[string]int, error)
}

var keysDesc = prometheus.NewDesc("kmsd_keys", "KMS keys by key state.", []string{"state"}, nil)

func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keysDesc }

func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(keysDesc, err)
		return
	}
	seen := map[string]bool{}
	for _, st := range keyStates {
		seen[st] = true
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(counts[st]), st)
	}
	for st, n := range counts {
		if !seen[st] {
			ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(n), st)
		}
	}
}
