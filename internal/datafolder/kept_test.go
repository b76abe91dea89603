package datafolder

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// TestKeptRecordsOnTheStore: the records kept for a log, on the test
// backend's store (KMSD_TEST_STORE=postgres: PostgreSQL). A burst of keeps
// (a failed group-commit batch keeps every record at once) next to
// another process's keeps loses none, though each used to be a
// compare-and-set of its own, 20 tries at most; the log appends each
// once, and one put back in the store afterwards is removed, not
// appended again.
func TestKeptRecordsOnTheStore(t *testing.T) {
	ctx := context.Background()
	st := backendtest.Open(t, t.TempDir())
	outbox := OutboxIn(st)
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	dir := filepath.Join(t.TempDir(), audit.DirName)
	opts := audit.Options{Dir: dir, Signer: signer, DigestInterval: -1, Outbox: outbox, KeptPollInterval: -1}
	l, err := audit.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) *audit.Record {
		return &audit.Record{EventName: "CreateKey", EventID: fmt.Sprintf("kept-%03d", i), UserIdentity: audit.UserIdentity{Type: "IAMUser"}}
	}
	const n, others = 96, 8
	var wg sync.WaitGroup
	errs := make(chan error, n+others)
	for i := range n {
		wg.Go(func() { errs <- l.Keep(ctx, rec(i)) })
	}
	for i := n; i < n+others; i++ {
		wg.Go(func() { errs <- audit.KeepRecord(ctx, outbox, signer, rec(i), time.Now()) })
	}
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d keeps failed: %v", len(failed), n+others, errors.Join(failed...))
	}
	kept, _, err := outbox.LoadKept(ctx, audit.KeyID(signer.PublicKey()))
	if err != nil || len(kept) != n+others {
		t.Fatalf("%d records kept (%v), want %d", len(kept), err, n+others)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	reopen := func() {
		t.Helper()
		l, err := audit.Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	// Put back, as whoever can write the store could.
	if _, err := outbox.SaveKept(ctx, audit.KeyID(signer.PublicKey()), kept[:3], lastRev(t, outbox, signer)); err != nil {
		t.Fatal(err)
	}
	reopen()
	if left, _, err := outbox.LoadKept(ctx, audit.KeyID(signer.PublicKey())); err != nil || len(left) != 0 {
		t.Fatalf("%d records still kept (%v)", len(left), err)
	}
	log := readLog(t, dir)
	for i := range n + others {
		if c := strings.Count(log, fmt.Sprintf(`"eventID":"kept-%03d"`, i)); c != 1 {
			t.Errorf("record kept-%03d is in the log %d times, want once", i, c)
		}
	}
	rep, err := audit.Verify(dir, signer.PublicKey())
	if err != nil || rep.DuplicateRecords != 0 {
		t.Fatalf("Verify: %v, %d duplicates", err, rep.DuplicateRecords)
	}
}

func lastRev(t *testing.T, o Outbox, s audit.Signer) int64 {
	t.Helper()
	_, rev, err := o.LoadKept(context.Background(), audit.KeyID(s.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// readLog returns the content of every file of the log in dir.
func readLog(t *testing.T, dir string) string {
	t.Helper()
	files, err := audit.LogFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(c)
	}
	return b.String()
}
