package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	m := New(Sources{
		CacheStats:  func() (uint64, uint64) { return 7, 2 },
		KeysByState: func(context.Context) (map[string]int, error) { return map[string]int{"Enabled": 3, "Disabled": 1}, nil },
	})
	m.ObserveRequest("Encrypt", "ok", time.Millisecond)
	m.ObserveRequest("Encrypt", "ok", time.Millisecond)
	m.ObserveRequest("Decrypt", "InvalidCiphertextException", time.Millisecond)
	m.ObserveAudit(time.Millisecond)
	m.ObserveAnchorSave(errors.New("store down"))
	m.ObserveAnchorSave(errors.New("store down"))
	out := scrape(t, m)
	for _, want := range []string{
		`kmsd_requests_total{operation="Encrypt",outcome="ok"} 2`,
		`kmsd_requests_total{operation="Decrypt",outcome="InvalidCiphertextException"} 1`,
		`kmsd_request_duration_seconds_count{operation="Encrypt"} 2`,
		`kmsd_key_material_cache_hits_total 7`,
		`kmsd_key_material_cache_misses_total 2`,
		`kmsd_keys{state="Enabled"} 3`,
		`kmsd_keys{state="PendingDeletion"} 0`,
		`kmsd_audit_write_duration_seconds_count 1`,
		`kmsd_audit_anchor_failing 1`,
		`kmsd_audit_anchor_save_failures_total 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	m.ObserveAnchorSave(nil)
	if out := scrape(t, m); !strings.Contains(out, "kmsd_audit_anchor_failing 0") || !strings.Contains(out, "kmsd_audit_anchor_save_failures_total 2") {
		t.Error("a successful anchor update did not clear kmsd_audit_anchor_failing")
	}
	var nilMetrics *Metrics
	nilMetrics.ObserveRequest("x", "ok", 0) // a server without metrics
}

func TestKeysByStateError(t *testing.T) {
	m := New(Sources{KeysByState: func(context.Context) (map[string]int, error) { return nil, errors.New("store down") }})
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 500 {
		t.Fatalf("scrape with a failing collector: HTTP %d", w.Code)
	}
}
