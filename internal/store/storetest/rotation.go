package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Rotation: the rotation settings of a key, RotateKey (key update and new
// material in one transaction, the compare-and-set that makes a scheduled
// rotation happen once across nodes), ListMaterials and KeysDueForRotation.

func testRotationFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	k.RotationEnabled = true
	k.RotationPeriodDays = 90
	k.NextRotation = base.Add(90 * 24 * time.Hour)
	k.OnDemandRotations = 3
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	checkKey(t, mustGetKey(t, s, "k1"), k)

	got, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.RotationEnabled = false
		k.RotationPeriodDays = 0
		k.NextRotation = time.Time{}
		k.OnDemandRotations = 4
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	k.RotationEnabled, k.RotationPeriodDays, k.NextRotation, k.OnDemandRotations = false, 0, time.Time{}, 4
	checkKey(t, got, k)
	checkKey(t, mustGetKey(t, s, "k1"), k)
}

func testRotateKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	mustCreateKey(t, s, newKey("k2", account, region), newMaterial("k2", 0))
	want := []string{materialID("k1", 0)}
	for n := 1; n <= 4; n++ {
		m := newMaterial("k1", n)
		m.RotationType = store.RotationAutomatic
		if n%2 == 0 {
			m.RotationType = store.RotationOnDemand
		}
		got, err := s.RotateKey(ctx, "k1", m, func(k *store.Key) error {
			k.CurrentMaterial = m.ID
			return nil
		})
		if err != nil {
			t.Fatalf("RotateKey(%d): %v", n, err)
		}
		if got.CurrentMaterial != m.ID {
			t.Errorf("RotateKey(%d) CurrentMaterial = %s, want %s", n, got.CurrentMaterial, m.ID)
		}
		want = append(want, m.ID)
	}
	ms, err := s.ListMaterials(ctx, "k1")
	if err != nil {
		t.Fatalf("ListMaterials: %v", err)
	}
	var ids []string
	for i, m := range ms {
		ids = append(ids, m.ID)
		wantM := newMaterial("k1", i)
		checkMaterial(t, m, wantM)
		wantType := ""
		if i > 0 {
			wantType = store.RotationAutomatic
			if i%2 == 0 {
				wantType = store.RotationOnDemand
			}
		}
		if m.RotationType != wantType {
			t.Errorf("material %d RotationType = %q, want %q", i, m.RotationType, wantType)
		}
	}
	checkStrings(t, "ListMaterials", ids, want)
	if m, err := s.GetMaterial(ctx, "k1", materialID("k1", 2)); err != nil {
		t.Fatalf("GetMaterial: %v", err)
	} else if m.RotationType != store.RotationOnDemand {
		t.Errorf("GetMaterial RotationType = %q, want %q", m.RotationType, store.RotationOnDemand)
	}
	// The other key is untouched.
	if ms, err := s.ListMaterials(ctx, "k2"); err != nil || len(ms) != 1 {
		t.Errorf("ListMaterials(k2) = %d materials, %v; want 1", len(ms), err)
	}
	if ms, err := s.ListMaterials(ctx, "missing"); err != nil || len(ms) != 0 {
		t.Errorf("ListMaterials(missing) = %d materials, %v; want none", len(ms), err)
	}
	// A missing key: ErrNotFound and no material.
	_, err = s.RotateKey(ctx, "missing", newMaterial("missing", 1), func(k *store.Key) error {
		t.Error("fn called for a missing key")
		return nil
	})
	checkErrIs(t, "RotateKey(missing)", err, store.ErrNotFound)
	// A taken material ID fails and leaves the key alone.
	_, err = s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(k *store.Key) error {
		k.CurrentMaterial = materialID("k1", 1)
		return nil
	})
	checkErrIs(t, "RotateKey with a taken material ID", err, store.ErrExists)
	if k := mustGetKey(t, s, "k1"); k.CurrentMaterial != materialID("k1", 4) {
		t.Errorf("after a failed RotateKey CurrentMaterial = %s, want %s", k.CurrentMaterial, materialID("k1", 4))
	}
}

func testRotateKeyRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	refused := &updateError{"already rotated"}
	_, err := s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(k *store.Key) error {
		k.CurrentMaterial = materialID("k1", 1)
		return refused
	})
	if err != refused {
		t.Fatalf("RotateKey returned %v, want fn's error itself", err)
	}
	checkKey(t, mustGetKey(t, s, "k1"), k)
	_, err = s.GetMaterial(ctx, "k1", materialID("k1", 1))
	checkErrIs(t, "material of a refused rotation", err, store.ErrNotFound)
}

// testRotateKeyConcurrent rotates one key from many goroutines, each
// expecting the material it last saw: exactly one may win.
func testRotateKeyConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	seen := materialID("k1", 0)
	errStale := errors.New("stale")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for n := 1; n <= 8; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := newMaterial("k1", n)
			_, err := s.RotateKey(ctx, "k1", m, func(k *store.Key) error {
				if k.CurrentMaterial != seen {
					return errStale
				}
				k.CurrentMaterial = m.ID
				return nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, errStale):
			default:
				t.Errorf("RotateKey(%d): %v", n, err)
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d rotations won, want exactly 1", got)
	}
	ms, err := s.ListMaterials(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Errorf("%d materials, want 2", len(ms))
	}
	if k := mustGetKey(t, s, "k1"); len(ms) == 2 && k.CurrentMaterial != ms[1].ID {
		t.Errorf("CurrentMaterial = %s, want the winner's %s", k.CurrentMaterial, ms[1].ID)
	}
}

func testKeysDueForRotation(t *testing.T, s store.Store) {
	ctx := t.Context()
	day := 24 * time.Hour
	mk := func(id string, enabled bool, next time.Time, state string) {
		k := newKey(id, account, region)
		k.RotationEnabled = enabled
		k.NextRotation = next
		if enabled {
			k.RotationPeriodDays = 90
		}
		k.State = state
		mustCreateKey(t, s, k, nil)
	}
	mk("a-late", true, base.Add(2*day), "Enabled")
	mk("b-early", true, base.Add(day), "Disabled")
	mk("c-future", true, base.Add(10*day), "Enabled")
	mk("d-off", false, base, "Enabled")
	mk("e-exact", true, base.Add(3*day), "Enabled")
	other := newKey("f-other-account", "444455556666", "eu-west-1")
	other.RotationEnabled, other.RotationPeriodDays, other.NextRotation = true, 365, base
	mustCreateKey(t, s, other, nil)

	due, err := s.KeysDueForRotation(ctx, base.Add(3*day))
	if err != nil {
		t.Fatalf("KeysDueForRotation: %v", err)
	}
	checkStrings(t, "KeysDueForRotation", keyIDs(due), []string{"f-other-account", "b-early", "a-late", "e-exact"})
	due, err = s.KeysDueForRotation(ctx, base.Add(-day))
	if err != nil || len(due) != 0 {
		t.Errorf("KeysDueForRotation(before all) = %v, %v; want none", keyIDs(due), err)
	}
}
