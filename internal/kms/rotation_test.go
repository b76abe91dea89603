package kms

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// fakeClock is a settable clock shared by the nodes of a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openNode builds a Service on the data folder dir with the given clock: two
// nodes built on one folder share one SQLite file and one root key, as
// kmsd nodes share a store.
func openNode(t *testing.T, dir string, clock *fakeClock) *Service {
	t.Helper()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(context.Background(), backendtest.Config(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, Keystore: ks, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestScheduledRotationHappensOnceAcrossNodes runs the rotation scheduler of
// two nodes on one store, at once, every time a rotation falls due: every
// due rotation happens exactly once.
func TestScheduledRotationHappensOnceAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := openNode(t, dir, clock)
	b := openNode(t, dir, clock)

	var ids []string
	for range 3 {
		ck, err := a.CreateKey(ctx, admin, &CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		id := ck.KeyMetadata.KeyId
		ids = append(ids, id)
		period := int32(90)
		if err := a.EnableKeyRotation(ctx, admin, &EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: &period}); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 4
	for round := 1; round <= rounds; round++ {
		clock.advance(91 * day)
		var wg sync.WaitGroup
		counts := make([]int, 2)
		for i, node := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := node.RotateDueKeys(ctx)
				if err != nil {
					t.Errorf("round %d node %d: %v", round, i, err)
				}
				counts[i] = n
			}()
		}
		wg.Wait()
		if got := counts[0] + counts[1]; got != len(ids) {
			t.Fatalf("round %d: nodes rotated %d and %d keys, want %d in all", round, counts[0], counts[1], len(ids))
		}
		// Nothing is due any more, on either node.
		for i, node := range []*Service{a, b} {
			if n, err := node.RotateDueKeys(ctx); n != 0 || err != nil {
				t.Fatalf("round %d: node %d rotated %d more keys (%v)", round, i, n, err)
			}
		}
	}
	for _, id := range ids {
		ms, err := a.store.ListMaterials(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1+rounds {
			t.Errorf("key %s has %d materials, want %d", id, len(ms), 1+rounds)
		}
		k, err := b.store.GetKey(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if k.CurrentMaterial != ms[len(ms)-1].ID {
			t.Errorf("key %s: current material is not the last one", id)
		}
		if want := clock.now().Add(90 * day); !k.NextRotation.Equal(want) {
			t.Errorf("key %s: next rotation %v, want %v", id, k.NextRotation, want)
		}
	}
}

// TestRotationCompareAndSet: a node whose view of a due key is stale (the
// other node rotated it) writes nothing.
func TestRotationCompareAndSet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := openNode(t, dir, clock)
	b := openNode(t, dir, clock)
	ck, err := a.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	if err := a.EnableKeyRotation(ctx, admin, &EnableKeyRotationInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	clock.advance(366 * day)
	stale, err := b.store.KeysDueForRotation(ctx, clock.now())
	if err != nil || len(stale) != 1 {
		t.Fatalf("due keys: %d, %v", len(stale), err)
	}
	if n, err := a.RotateDueKeys(ctx); n != 1 || err != nil {
		t.Fatalf("node a rotated %d keys (%v), want 1", n, err)
	}
	// Node b acts on what it read before node a rotated.
	k := stale[0]
	seen := k.CurrentMaterial
	_, err = b.rotate(ctx, k, "AUTOMATIC", func(cur *store.Key) error {
		if cur.CurrentMaterial != seen {
			return errRotationRaced
		}
		return nil
	})
	if err != errRotationRaced {
		t.Fatalf("stale rotation returned %v, want errRotationRaced", err)
	}
	ms, err := a.store.ListMaterials(ctx, id)
	if err != nil || len(ms) != 2 {
		t.Fatalf("%d materials (%v), want 2", len(ms), err)
	}
}
