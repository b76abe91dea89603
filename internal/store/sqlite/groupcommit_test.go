package sqlite

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// TestGroupCommit queues writes of every outcome while the write slot is
// held, so that they run as one group, and checks that each gets its own
// outcome: a failing or panicking write undoes only its own writes, the
// others are committed, each with its change.
func TestGroupCommit(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.CreateKey(ctx, testKey("dup"), nil); err != nil {
		t.Fatal(err)
	}
	start, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errRefused := errors.New("refused by fn")
	cancelled, cancel := context.WithCancel(ctx)
	type write struct {
		name    string
		run     func() error
		wantErr error    // nil: success
		panics  bool     // the write panics
		keys    []string // keys it writes (present iff it succeeds)
	}
	var writes []write
	for i := range 8 {
		id := fmt.Sprintf("ok%d", i)
		writes = append(writes, write{name: "create " + id, keys: []string{id},
			run: func() error { return s.CreateKey(ctx, testKey(id), testMaterial(id)) }})
	}
	writes = append(writes,
		write{name: "duplicate", wantErr: store.ErrExists,
			run: func() error { return s.CreateKey(ctx, testKey("dup"), nil) }},
		write{name: "update refused after a write", wantErr: errRefused, keys: []string{"refused"},
			run: func() error {
				return s.Update(ctx, func(tx store.Tx) error {
					if err := tx.CreateKey(ctx, testKey("refused"), nil); err != nil {
						return err
					}
					return errRefused
				})
			}},
		write{name: "update panics after a write", panics: true, keys: []string{"panicked"},
			run: func() error {
				return s.Update(ctx, func(tx store.Tx) error {
					if err := tx.CreateKey(ctx, testKey("panicked"), nil); err != nil {
						return err
					}
					panic("fn panicked")
				})
			}},
		write{name: "context ended in fn", wantErr: context.Canceled, keys: []string{"cancelled"},
			run: func() error {
				return s.Update(cancelled, func(tx store.Tx) error {
					err := tx.CreateKey(cancelled, testKey("cancelled"), nil)
					cancel()
					return err
				})
			}},
		write{name: "update of two keys", keys: []string{"two-a", "two-b"},
			run: func() error {
				return s.Update(ctx, func(tx store.Tx) error {
					if err := tx.CreateKey(ctx, testKey("two-a"), nil); err != nil {
						return err
					}
					return tx.CreateKey(ctx, testKey("two-b"), nil)
				})
			}},
	)

	// Hold the slot: every write queues behind it and the next leader
	// takes them all as one group.
	s.writeSlot <- struct{}{}
	var wg sync.WaitGroup
	errs := make([]error, len(writes))
	panics := make([]any, len(writes))
	for i, w := range writes {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = w.run()
		})
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.group.mu.Lock()
		n := len(s.group.queue)
		s.group.mu.Unlock()
		if n == len(writes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes queued", n, len(writes))
		}
		time.Sleep(time.Millisecond)
	}
	<-s.writeSlot
	wg.Wait()

	wantChanges := int64(0)
	for i, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			switch {
			case w.panics:
				if panics[i] == nil {
					t.Fatalf("no panic re-raised (err %v)", errs[i])
				}
			case panics[i] != nil:
				t.Fatalf("panicked: %v", panics[i])
			case w.wantErr == nil && errs[i] != nil:
				t.Fatalf("err %v, want success", errs[i])
			case w.wantErr != nil && !errors.Is(errs[i], w.wantErr):
				t.Fatalf("err %v, want %v", errs[i], w.wantErr)
			}
			ok := w.wantErr == nil && !w.panics
			for _, id := range w.keys {
				_, err := s.GetKey(ctx, id)
				if ok && err != nil {
					t.Errorf("GetKey(%s): %v, want the key", id, err)
				}
				if !ok && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetKey(%s) of a failed write: %v, want ErrNotFound", id, err)
				}
			}
		})
		if w.wantErr == nil && !w.panics {
			for _, id := range w.keys {
				wantChanges++
				if id[:2] == "ok" {
					wantChanges++ // its material
				}
			}
		}
	}
	last, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.Changes(ctx, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(cs)) != wantChanges {
		t.Errorf("%d changes recorded (last %d), want %d", len(cs), last, wantChanges)
	}
}

// TestGroupCommitWithdraw checks that a write whose context ends while it
// waits for its turn leaves the queue and writes nothing.
func TestGroupCommitWithdraw(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	s.writeSlot <- struct{}{}
	done := make(chan error, 1)
	go func() { done <- s.CreateKey(ctx, testKey("k1"), nil) }()
	for {
		s.group.mu.Lock()
		n := len(s.group.queue)
		s.group.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	<-s.writeSlot
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateKey whose context ended in the queue: %v, want context.Canceled", err)
	}
	if _, err := s.GetKey(t.Context(), "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey: %v, want ErrNotFound", err)
	}
	if n := len(s.group.queue); n != 0 {
		t.Fatalf("%d writes left in the queue", n)
	}
}

// TestGroupCommitGoexit checks that a fn that ends its goroutine (as
// t.FailNow does) leaves nothing behind and the store usable.
func TestGroupCommitGoexit(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		s.Update(ctx, func(tx store.Tx) error {
			if err := tx.CreateKey(ctx, testKey("gone"), nil); err != nil {
				return err
			}
			runtime.Goexit()
			return nil
		})
	}()
	<-exited
	if _, err := s.GetKey(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetKey of the key written before Goexit: %v, want ErrNotFound", err)
	}
	if err := s.CreateKey(ctx, testKey("k1"), nil); err != nil {
		t.Fatalf("CreateKey after a Goexit: %v", err)
	}
}
