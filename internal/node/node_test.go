package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// start starts a node on a fresh test store with cfg's audit settings.
func start(t *testing.T, cfg Config) *Node {
	t.Helper()
	dir := t.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := iam.Compile(config.IAM{}, "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Keystore, cfg.Identities = backendtest.Open(t, dir), ks, ids
	cfg.Regions, cfg.Region = []string{"us-east-1"}, "us-east-1"
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// TestReadiness: /readyz of a node asks the audit log's state first, then
// the store.
func TestReadiness(t *testing.T) {
	var auditErr atomic.Pointer[error]
	n := start(t, Config{AuditReady: func() error {
		if p := auditErr.Load(); p != nil {
			return *p
		}
		return nil
	}})
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		n.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("readyz = %d %q, want 200", code, body)
	}
	var e error = &server.NotReady{Reason: "the audit log's anchor cannot be saved", Err: errors.New("x")}
	auditErr.Store(&e)
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "anchor cannot be saved") {
		t.Fatalf("readyz with the audit log failing = %d %q", code, body)
	}
}

// TestStoreReadiness: a damaged store is named on /readyz; another error
// only in the log.
func TestStoreReadiness(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string // in the error's text; "" for none
	}{
		{nil, ""},
		{fmt.Errorf("ping: %w", store.ErrDamaged), "the store is damaged"},
		{errors.New("connection refused"), "connection refused"},
	} {
		got := storeReadiness(tc.err)
		if tc.want == "" && got != nil || tc.want != "" && (got == nil || !strings.Contains(got.Error(), tc.want)) {
			t.Errorf("storeReadiness(%v) = %v, want %q", tc.err, got, tc.want)
		}
	}
}

// TestCloseStopsTheNodeOnce: Close stops the background work, closes the
// audit log once (a second Close does nothing) and leaves no goroutine
// of the node running.
func TestCloseStopsTheNodeOnce(t *testing.T) {
	var closed atomic.Int32
	n := start(t, Config{CloseAudit: func(context.Context) error { closed.Add(1); return nil }})
	n.RunBackground(context.Background(), time.Millisecond)
	n.Close()
	n.Close()
	if c := closed.Load(); c != 1 {
		t.Fatalf("the audit log was closed %d times, want 1", c)
	}
	done := make(chan struct{})
	go func() { n.background.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the background work still runs after Close")
	}
}
