package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// TestUpgradeFromVersion5 builds a database at schema version 5, the last
// one without revisions, with a key, an alias and a custom key store in it,
// and checks that Open migrates it: the records are at revision 1, the
// change feed starts empty, and settings work.
func TestUpgradeFromVersion5(t *testing.T) {
	ctx := t.Context()
	path := databaseAt(t, 5,
		`INSERT INTO keys (id, account, region, state, created) VALUES ('k1', '111122223333', 'us-east-1', 'Enabled', 1)`,
		`INSERT INTO aliases (account, region, name, key_id, created, updated) VALUES ('111122223333', 'us-east-1', 'alias/a', 'k1', 1, 1)`,
		`INSERT INTO custom_key_stores (id, account, region, name, cluster_id, wrapped_password)
			VALUES ('cks-0123456789abcdef0', '111122223333', 'us-east-1', 's', 'cluster-1', x'01')`)

	s := openAt(t, path)
	k, err := s.GetKey(ctx, "k1")
	if err != nil || k.Revision != 1 {
		t.Fatalf("key after the upgrade = %+v, %v; want revision 1", k, err)
	}
	a, err := s.GetAlias(ctx, "111122223333", "us-east-1", "alias/a")
	if err != nil || a.Revision != 1 {
		t.Fatalf("alias after the upgrade = %+v, %v; want revision 1", a, err)
	}
	c, err := s.GetCustomKeyStore(ctx, "cks-0123456789abcdef0")
	if err != nil || c.Revision != 1 {
		t.Fatalf("custom key store after the upgrade = %+v, %v; want revision 1", c, err)
	}
	if n, err := s.LastChange(ctx); err != nil || n != 0 {
		t.Errorf("LastChange after the upgrade = %d, %v; want 0", n, err)
	}
	if cs, err := s.Changes(ctx, 0, 0); err != nil || len(cs) != 0 {
		t.Errorf("Changes after the upgrade = %v, %v; want none", cs, err)
	}

	// The upgraded records take part in the new contracts.
	if err := s.UpdateAlias(ctx, "111122223333", "us-east-1", "alias/a", "k1", "k1", time.Unix(2, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, "k1", 1); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Changes(ctx, 0, 0)
	if err != nil || len(cs) != 3 {
		t.Errorf("Changes = %+v, %v; want the alias's update, then the key's and alias's deletion", cs, err)
	}
	if r, err := s.PutSetting(ctx, store.SettingRootManifest, []byte("{}"), 0); err != nil || r != 1 {
		t.Errorf("PutSetting = %d, %v; want 1", r, err)
	}
}

// TestUpgradeFromVersion6 builds a database at schema version 6, the last
// one without multi-Region keys and key usage, with a key in it, and checks
// that Open migrates it: the key is single-Region, has no recorded use,
// and key usage is tracked from the upgrade on.
func TestUpgradeFromVersion6(t *testing.T) {
	ctx := t.Context()
	path := databaseAt(t, 6,
		`INSERT INTO keys (id, account, region, state, created) VALUES ('k1', '111122223333', 'us-east-1', 'Enabled', 1)`)
	before := time.Now().Add(-time.Second)
	s := openAt(t, path)
	k, err := s.GetKey(ctx, "k1")
	if err != nil || k.MultiRegionKeyID != "" || k.PrimaryRegion != "" || k.Revision != 1 {
		t.Fatalf("key after the upgrade = %+v, %v; want a single-Region key at revision 1", k, err)
	}
	if _, err := s.GetKeyUsage(ctx, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKeyUsage after the upgrade: %v, want ErrNotFound", err)
	}
	since, err := s.KeyUsageSince(ctx)
	if err != nil || since.Before(before) || since.After(time.Now()) {
		t.Errorf("KeyUsageSince = %v, %v; want the time of the upgrade", since, err)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestClock checks that the Store dates changes and settings with its
// clock, and that PruneChanges compares with those dates.
func TestClock(t *testing.T) {
	ctx := t.Context()
	day := 24 * time.Hour
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	clock := &fakeClock{now: t0}
	s, err := Open(ctx, filepath.Join(t.TempDir(), "kmsd.db"), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	for i, id := range []string{"k0", "k1", "k2", "k3"} {
		clock.Set(t0.Add(time.Duration(i) * day))
		if err := s.CreateKey(ctx, testKey(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(t0.Add(10 * day))
	if _, err := s.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	st, err := s.GetSetting(ctx, "s")
	if err != nil || st.Updated != t0.Add(10*day).UTC() {
		t.Errorf("GetSetting = %+v, %v; want Updated %v", st, err, t0.Add(10*day).UTC())
	}
	cs, err := s.Changes(ctx, 0, 0)
	if err != nil || len(cs) != 5 {
		t.Fatalf("Changes = %+v, %v; want 5", cs, err)
	}
	for i, c := range cs[:4] {
		if want := t0.Add(time.Duration(i) * day).UTC(); c.Time != want {
			t.Errorf("change %d Time = %v, want %v", i, c.Time, want)
		}
	}

	// Before the third day: the first two changes; the mark is the second.
	if n, err := s.PruneChanges(ctx, t0.Add(2*day)); err != nil || n != 2 {
		t.Fatalf("PruneChanges(day 2) = %d, %v; want 2", n, err)
	}
	if _, err := s.Changes(ctx, cs[0].Seq, 0); !errors.Is(err, store.ErrChangesPruned) {
		t.Errorf("Changes after the first change = %v, want ErrChangesPruned", err)
	}
	if got, err := s.Changes(ctx, cs[1].Seq, 0); err != nil || len(got) != 3 {
		t.Errorf("Changes after the second change = %+v, %v; want the last 3", got, err)
	}
	// Exactly at a change's time: that change stays.
	if n, err := s.PruneChanges(ctx, t0.Add(3*day)); err != nil || n != 1 {
		t.Errorf("PruneChanges(day 3) = %d, %v; want 1", n, err)
	}
	// A clock set back does not lower the mark.
	if n, err := s.PruneChanges(ctx, t0); err != nil || n != 0 {
		t.Errorf("PruneChanges(day 0) = %d, %v; want 0", n, err)
	}
	if _, err := s.Changes(ctx, cs[1].Seq, 0); !errors.Is(err, store.ErrChangesPruned) {
		t.Errorf("Changes after the second change = %v, want ErrChangesPruned", err)
	}

	clock.Set(time.Time{})
	if err := s.CreateKey(ctx, testKey("k9"), nil); err == nil {
		t.Error("CreateKey with a zero clock succeeded")
	}
}

// TestUpdateContextCancelled: a transaction whose context ends before it
// commits writes nothing, even when fn returns nil.
func TestUpdateContextCancelled(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateKey(ctx, testKey("k1"), testMaterial("k1")); err != nil {
			return err
		}
		cancel()
		// A call after the end fails; fn ignores it.
		tx.CreateKey(ctx, testKey("k2"), nil)
		return nil
	})
	if err == nil {
		t.Fatal("Update whose context ended succeeded")
	}
	for _, id := range []string{"k1", "k2"} {
		if _, err := s.GetKey(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetKey(%s) after a cancelled Update: %v, want ErrNotFound", id, err)
		}
	}
	if n, err := s.LastChange(t.Context()); err != nil || n != 0 {
		t.Errorf("LastChange after a cancelled Update = %d, %v; want 0", n, err)
	}
	// The store goes on.
	if err := s.CreateKey(t.Context(), testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestTxAfterUpdate: the Tx given to fn is good only until Update returns,
// and cannot close the Store.
func TestTxAfterUpdate(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	var kept store.Tx
	if err := s.Update(ctx, func(tx store.Tx) error {
		kept = tx
		if c, ok := tx.(interface{ Close() error }); ok {
			if err := c.Close(); err == nil {
				t.Error("Close of the Store bound to a transaction succeeded")
			}
		}
		return tx.CreateKey(ctx, testKey("k1"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.GetKey(ctx, "k1"); err == nil {
		t.Error("GetKey on a Tx after its Update returned succeeded")
	}
	if err := kept.CreateKey(ctx, testKey("k2"), nil); err == nil {
		t.Error("CreateKey on a Tx after its Update returned succeeded")
	}
	if _, err := s.GetKey(ctx, "k1"); err != nil {
		t.Errorf("GetKey of the key Update committed: %v", err)
	}
	if _, err := s.GetKey(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey of a key written through a stale Tx: %v, want ErrNotFound", err)
	}
}

// TestChangesFromTwoStores: two Stores writing one file, as two processes
// would, append to one feed, in Seq order, and each sees all of it.
func TestChangesFromTwoStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	a, b := openAt(t, path), openAt(t, path)
	ctx := t.Context()
	if err := a.CreateKey(ctx, testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
	const perStore = 10
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		for range perStore {
			wg.Go(func() {
				if err := s.Update(ctx, func(tx store.Tx) error {
					_, err := tx.UpdateKey(ctx, "k1", func(k *store.Key) error {
						k.PendingWindowDays++
						return nil
					})
					return err
				}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	for _, s := range []*Store{a, b} {
		cs, err := s.Changes(ctx, 0, 0)
		if err != nil || len(cs) != 1+2*perStore {
			t.Fatalf("Changes = %d changes, %v; want %d", len(cs), err, 1+2*perStore)
		}
		for i := 1; i < len(cs); i++ {
			if cs[i].Seq <= cs[i-1].Seq {
				t.Errorf("changes out of order: %d after %d", cs[i].Seq, cs[i-1].Seq)
			}
		}
	}
	if k, err := b.GetKey(ctx, "k1"); err != nil || k.Revision != 1+2*perStore {
		t.Errorf("GetKey = %+v, %v; want revision %d", k, err, 1+2*perStore)
	}
}
