package server_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// panicAuditor panics on the record of a CreateKey, as a bug in a step
// after the operation's commit would.
type panicAuditor struct{}

func (panicAuditor) Append(_ context.Context, r *audit.Record) error {
	if r.EventName == "CreateKey" {
		panic("test: a bug after the commit")
	}
	return nil
}

func (panicAuditor) Err() error { return nil }

// TestPanicDoesNotHoldUpClose: a request that changes state is counted
// until its record is written, so that Close can wait for it; a panic on
// the way (which the server's recoverer turns into a 500 and survives)
// must not leave it counted, or kmsd would never finish shutting down.
func TestPanicDoesNotHoldUpClose(t *testing.T) {
	env := kmstest.StartWithAuditor(t, panicAuditor{})
	req := signedRequest(t, env, "CreateKey", []byte(`{}`))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("CreateKey did not panic: the test no longer tests anything")
			}
		}()
		env.Handler.ServeHTTP(httptest.NewRecorder(), req)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if running, err := env.Handler.Close(ctx); err != nil || running != 0 {
		t.Fatalf("Close after a panicking CreateKey: %d still running, %v", running, err)
	}
}
