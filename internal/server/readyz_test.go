package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/metrics"
	"github.com/kmsd/kmsd/internal/server"
)

// flakyAnchors is an audit.Anchors in memory whose saves can be made to
// fail, as a store that went away.
type flakyAnchors struct {
	mu   sync.Mutex
	a    map[string]audit.Anchor
	rev  map[string]int64
	fail bool
}

func (f *flakyAnchors) LoadAnchor(_ context.Context, id string) (audit.Anchor, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.a[id]
	if !ok {
		return audit.Anchor{}, 0, audit.ErrNoAnchor
	}
	return a, f.rev[id], nil
}

func (f *flakyAnchors) SaveAnchor(_ context.Context, a audit.Anchor, rev int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return 0, errors.New("connection refused")
	}
	if f.rev[a.LogID] != rev {
		return 0, audit.ErrAnchorChanged
	}
	f.a[a.LogID] = a
	f.rev[a.LogID]++
	return f.rev[a.LogID], nil
}

func (f *flakyAnchors) setFail(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

// TestReadyzReportsAFailingAnchor: while the audit log's anchor cannot be
// saved, /readyz answers 503 and says why, and the metrics show it; both
// recover once a save (retried by the log on its own) succeeds. The
// readiness is kmsd serve's: the log's failure, then its anchor's.
func TestReadyzReportsAFailingAnchor(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	anchors := &flakyAnchors{a: map[string]audit.Anchor{}, rev: map[string]int64{}}
	m := metrics.New(metrics.Sources{})
	l, err := audit.Open(ctx, audit.Options{Dir: filepath.Join(t.TempDir(), "audit"), Signer: audit.NewSigner(priv),
		DigestEvery: 1, DigestInterval: -1, Anchors: anchors, AllowUnanchored: true, OnAnchorSave: m.ObserveAnchorSave})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	s := server.New(server.Config{Audit: l, Metrics: m, Ready: func(context.Context) error {
		if err := l.Err(); err != nil {
			return err
		}
		if err := l.AnchorErr(); err != nil {
			return &server.NotReady{Reason: "the audit log's anchor cannot be saved in the store (kmsd retries)", Err: err}
		}
		return nil
	}})
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(w.Body)
		return w.Code, string(b)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz of a healthy log: %d %s", code, body)
	}

	anchors.setFail(true)
	if err := l.Append(ctx, &audit.Record{EventName: "CreateKey"}); err != nil {
		t.Fatal(err)
	}
	wait("the anchor's failure", func() bool { return l.AnchorErr() != nil })
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, "anchor cannot be saved") || strings.Contains(body, "connection refused") {
		t.Errorf("/readyz while the anchor fails: %d %q: want 503 with the reason, not the store's error", code, body)
	}
	if _, metricsOut := scrapeMetrics(t, m); !strings.Contains(metricsOut, "kmsd_audit_anchor_failing 1") {
		t.Errorf("metrics while the anchor fails:\n%s", metricsOut)
	}

	// The store is back: the log's retry saves the anchor, no new record
	// needed, and readiness recovers.
	anchors.setFail(false)
	wait("the anchor's recovery", func() bool { return l.AnchorErr() == nil })
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz once the anchor was saved: %d %s", code, body)
	}
	if _, metricsOut := scrapeMetrics(t, m); !strings.Contains(metricsOut, "kmsd_audit_anchor_failing 0") || !strings.Contains(metricsOut, "kmsd_audit_anchor_save_failures_total") {
		t.Errorf("metrics after the anchor recovered:\n%s", metricsOut)
	}
}

// scrapeMetrics scrapes m.
func scrapeMetrics(t *testing.T, m *metrics.Metrics) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}
