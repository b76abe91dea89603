package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// Update: several calls in one transaction, committed all or nothing.

func testUpdateCommits(t *testing.T, s store.Store) {
	ctx := t.Context()
	last := lastChange(t, s)
	checkChanges(t, s, "Update", func() error {
		return s.Update(ctx, func(tx store.Tx) error {
			if err := tx.CreateKey(ctx, newKey("k1", account, region), newMaterial("k1", 0)); err != nil {
				return err
			}
			// Reads see the transaction's own writes.
			if k, err := tx.GetKey(ctx, "k1"); err != nil || k.Revision != 1 {
				return fmt.Errorf("GetKey inside the transaction = %+v, %v; want k1 at revision 1", k, err)
			}
			k, err := tx.UpdateKey(ctx, "k1", func(k *store.Key) error {
				if k.Description != newKey("k1", account, region).Description {
					return fmt.Errorf("UpdateKey's fn got %+v, want the key just created", k)
				}
				k.State = "Disabled"
				return nil
			})
			if err != nil {
				return err
			}
			if k.Revision != 2 {
				return fmt.Errorf("UpdateKey inside the transaction returned revision %d, want 2", k.Revision)
			}
			if err := tx.AddMaterial(ctx, newMaterial("k1", 1)); err != nil {
				return err
			}
			if ms, err := tx.ListMaterials(ctx, "k1"); err != nil || len(ms) != 2 {
				return fmt.Errorf("ListMaterials inside the transaction = %d materials, %v; want 2", len(ms), err)
			}
			if err := tx.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/k1", KeyID: "k1", Created: base, Updated: base}); err != nil {
				return err
			}
			if n, err := tx.CountAliases(ctx, "k1"); err != nil || n != 1 {
				return fmt.Errorf("CountAliases inside the transaction = %d, %v; want 1", n, err)
			}
			if _, err := tx.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
				return err
			}
			if st, err := tx.GetSetting(ctx, "s"); err != nil || string(st.Value) != "v" {
				return fmt.Errorf("GetSetting inside the transaction = %+v, %v", st, err)
			}
			return nil
		})
	}, keyChange("k1", account, region), materialChange("k1", account, region), keyChange("k1", account, region),
		materialChange("k1", account, region), aliasChange(account, region, "alias/k1", "k1"), settingChange("s"))

	k := mustGetKey(t, s, "k1")
	if k.State != "Disabled" || k.Revision != 2 {
		t.Errorf("key after Update = %+v, want Disabled at revision 2", k)
	}
	if ms, err := s.ListMaterials(ctx, "k1"); err != nil || len(ms) != 2 {
		t.Errorf("ListMaterials after Update = %d materials, %v; want 2", len(ms), err)
	}
	if _, err := s.GetAlias(ctx, account, region, "alias/k1"); err != nil {
		t.Errorf("GetAlias after Update: %v", err)
	}
	// One transaction: its changes follow each other.
	cs := changesAfter(t, s, last)
	for i := 1; i < len(cs); i++ {
		if cs[i].Seq <= cs[i-1].Seq {
			t.Errorf("changes of one Update out of order: %+v", cs)
		}
	}
}

func testUpdateRollsBack(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	if _, err := s.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	refused := &updateError{"refused"}
	checkFailedWrite(t, s, "Update whose fn fails", func() error {
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.CreateKey(ctx, newKey("k2", account, region), newMaterial("k2", 0)); err != nil {
				return err
			}
			if _, err := tx.UpdateKey(ctx, "k1", func(k *store.Key) error { k.State = "Disabled"; return nil }); err != nil {
				return err
			}
			if err := tx.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/k2", KeyID: "k2"}); err != nil {
				return err
			}
			if _, err := tx.PutSetting(ctx, "s", []byte("w"), 1); err != nil {
				return err
			}
			if err := tx.DeleteKey(ctx, "k1", 2); err != nil {
				return err
			}
			return refused
		})
		if err != error(refused) {
			t.Errorf("Update error = %v (%T), want fn's error itself", err, err)
		}
		return err
	}, refused)

	_, err := s.GetKey(ctx, "k2")
	checkErrIs(t, "GetKey of a key created in a rolled back Update", err, store.ErrNotFound)
	want := newKey("k1", account, region)
	want.Revision = 1
	checkKey(t, mustGetKey(t, s, "k1"), want)
	_, err = s.GetAlias(ctx, account, region, "alias/k2")
	checkErrIs(t, "GetAlias of an alias created in a rolled back Update", err, store.ErrNotFound)
	if st, err := s.GetSetting(ctx, "s"); err != nil || string(st.Value) != "v" || st.Revision != 1 {
		t.Errorf("setting after a rolled back Update = %+v, %v; want v at revision 1", st, err)
	}
}

// testUpdateFailedCallInside: a call that fails inside Update writes
// nothing, like one outside, and the transaction goes on.
func testUpdateFailedCallInside(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	checkChanges(t, s, "Update with failed calls", func() error {
		return s.Update(ctx, func(tx store.Tx) error {
			// RotateKey writes the key, then fails on the material.
			_, err := tx.RotateKey(ctx, "k1", newMaterial("k1", 0), func(k *store.Key) error {
				k.Description = "must not be written"
				return nil
			})
			if !errors.Is(err, store.ErrExists) {
				return fmt.Errorf("RotateKey with a taken material ID: %v, want ErrExists", err)
			}
			// CreateKey of a taken ID with a new material.
			if err := tx.CreateKey(ctx, newKey("k1", account, region), newMaterial("k1", 5)); !errors.Is(err, store.ErrExists) {
				return fmt.Errorf("CreateKey of a taken ID: %v, want ErrExists", err)
			}
			if err := tx.DeleteKey(ctx, "k1", 7); !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("DeleteKey at a stale revision: %v, want ErrConflict", err)
			}
			k, err := tx.UpdateKey(ctx, "k1", func(k *store.Key) error { k.State = "Disabled"; return nil })
			if err != nil {
				return err
			}
			if k.Revision != 2 || k.Description == "must not be written" {
				return fmt.Errorf("UpdateKey after the failed calls returned %+v, want revision 2 and the old description", k)
			}
			return tx.CreateKey(ctx, newKey("k2", account, region), nil)
		})
	}, keyChange("k1", account, region), keyChange("k2", account, region))

	want := newKey("k1", account, region)
	want.State, want.Revision = "Disabled", 2
	checkKey(t, mustGetKey(t, s, "k1"), want)
	_, err := s.GetMaterial(ctx, "k1", materialID("k1", 5))
	checkErrIs(t, "GetMaterial of the failed CreateKey's material", err, store.ErrNotFound)
	if ms, err := s.ListMaterials(ctx, "k1"); err != nil || len(ms) != 1 {
		t.Errorf("ListMaterials = %d materials, %v; want 1", len(ms), err)
	}
	mustGetKey(t, s, "k2")
}

// testUpdateConcurrentCompareAndSet runs read-then-write transactions at
// once: each either commits or is refused with ErrConflict, and no update
// is lost.
func testUpdateConcurrentCompareAndSet(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutSetting(ctx, "counter", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	const workers = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	for range workers {
		wg.Go(func() {
			err := s.Update(ctx, func(tx store.Tx) error {
				st, err := tx.GetSetting(ctx, "counter")
				if err != nil {
					return err
				}
				n, err := strconv.Atoi(string(st.Value))
				if err != nil {
					return err
				}
				_, err = tx.PutSetting(ctx, "counter", []byte(strconv.Itoa(n+1)), st.Revision)
				return err
			})
			switch {
			case err == nil:
				mu.Lock()
				committed++
				mu.Unlock()
			case errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("Update: %v", err)
			}
		})
	}
	wg.Wait()
	st, err := s.GetSetting(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if committed == 0 || string(st.Value) != strconv.Itoa(committed) || st.Revision != int64(committed+1) {
		t.Errorf("counter = %q at revision %d after %d committed increments; want %d at revision %d",
			st.Value, st.Revision, committed, committed, committed+1)
	}
}
