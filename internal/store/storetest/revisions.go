package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Revisions and the compare-and-set writes that name them: DeleteKey,
// UpdateAlias and DeleteAlias.

func testKeyRevisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	k.Revision = 42 // the store sets it
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	revision := func() int64 { t.Helper(); return mustGetKey(t, s, "k1").Revision }
	if r := revision(); r != 1 {
		t.Fatalf("Revision of a new key = %d, want 1", r)
	}

	// Every write of the key is one more revision, whatever fn sets.
	want := int64(1)
	for _, w := range []struct {
		name  string
		write func() (*store.Key, error)
	}{
		{"UpdateKey", func() (*store.Key, error) {
			return s.UpdateKey(ctx, "k1", func(k *store.Key) error {
				k.Description = "changed"
				k.Revision = 1000
				return nil
			})
		}},
		{"UpdateKey changing nothing", func() (*store.Key, error) { return s.UpdateKey(ctx, "k1", nop) }},
		{"RotateKey", func() (*store.Key, error) {
			return s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(k *store.Key) error {
				k.CurrentMaterial = materialID("k1", 1)
				k.Revision = 0
				return nil
			})
		}},
		{"ReplaceMaterial", func() (*store.Key, error) {
			return s.ReplaceMaterial(ctx, "k1", newMaterial("k1", 2), materialID("k1", 1), func(k *store.Key) error {
				k.CurrentMaterial = materialID("k1", 2)
				return nil
			})
		}},
	} {
		got, err := w.write()
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		want++
		if got.Revision != want {
			t.Errorf("%s returned Revision %d, want %d", w.name, got.Revision, want)
		}
		if r := revision(); r != want {
			t.Errorf("Revision after %s = %d, want %d", w.name, r, want)
		}
	}

	// Writes that fail leave it.
	refused := &updateError{"refused"}
	for _, w := range []struct {
		name  string
		write func() (*store.Key, error)
	}{
		{"UpdateKey refused by fn", func() (*store.Key, error) {
			return s.UpdateKey(ctx, "k1", func(*store.Key) error { return refused })
		}},
		{"UpdateKey changing the region", func() (*store.Key, error) {
			return s.UpdateKey(ctx, "k1", func(k *store.Key) error { k.Region = region2; return nil })
		}},
		{"RotateKey with a taken material ID", func() (*store.Key, error) {
			return s.RotateKey(ctx, "k1", newMaterial("k1", 0), nop)
		}},
	} {
		if _, err := w.write(); err == nil {
			t.Errorf("%s succeeded, want an error", w.name)
		}
		if r := revision(); r != want {
			t.Errorf("Revision after a failed %s = %d, want %d", w.name, r, want)
		}
	}

	// Every read returns it.
	keys, err := s.ListKeys(ctx, account, region, "", 0)
	if err != nil || len(keys) != 1 || keys[0].Revision != want {
		t.Errorf("ListKeys = %v, %v; want k1 at revision %d", keys, err, want)
	}
	if _, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.State, k.DeletionDate, k.PendingWindowDays = "PendingDeletion", base, 7
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want++
	keys, err = s.KeysPendingDeletion(ctx, base)
	if err != nil || len(keys) != 1 || keys[0].Revision != want {
		t.Errorf("KeysPendingDeletion = %v, %v; want k1 at revision %d", keys, err, want)
	}
}

// testDeleteKeyCompareAndSet is the deletion reaper's race: it lists the
// keys due for deletion, CancelKeyDeletion updates one meanwhile, and the
// reaper's delete, naming the revision it listed, must then be refused.
func testDeleteKeyCompareAndSet(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	k.State, k.DeletionDate, k.PendingWindowDays = "PendingDeletion", base, 7
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	if err := s.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/k1", KeyID: "k1", Created: base, Updated: base}); err != nil {
		t.Fatal(err)
	}
	g := &store.Grant{ID: "g1", KeyID: "k1", GranteePrincipal: "p", Operations: []string{"Decrypt"}, TokenHash: []byte{1}, Created: base}
	if err := s.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}

	due, err := s.KeysPendingDeletion(ctx, base)
	if err != nil || len(due) != 1 {
		t.Fatalf("KeysPendingDeletion = %v, %v; want k1", due, err)
	}
	cancelled, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.State, k.DeletionDate, k.PendingWindowDays = "Disabled", time.Time{}, 0
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey (cancel the deletion): %v", err)
	}
	err = s.DeleteKey(ctx, "k1", due[0].Revision)
	checkErrIs(t, "DeleteKey at the revision listed before the cancel", err, store.ErrConflict)
	if errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteKey of an existing key: %v is also ErrNotFound", err)
	}
	for _, r := range []int64{0, -1, cancelled.Revision + 1} {
		checkErrIs(t, fmt.Sprintf("DeleteKey at revision %d", r), s.DeleteKey(ctx, "k1", r), store.ErrConflict)
	}

	// Nothing was deleted.
	want := newKey("k1", account, region)
	want.State = "Disabled"
	want.Revision = cancelled.Revision
	checkKey(t, mustGetKey(t, s, "k1"), want)
	if _, err := s.GetMaterial(ctx, "k1", materialID("k1", 0)); err != nil {
		t.Errorf("GetMaterial after a refused DeleteKey: %v", err)
	}
	if _, err := s.GetAlias(ctx, account, region, "alias/k1"); err != nil {
		t.Errorf("GetAlias after a refused DeleteKey: %v", err)
	}
	if _, err := s.GetGrant(ctx, "g1"); err != nil {
		t.Errorf("GetGrant after a refused DeleteKey: %v", err)
	}

	// At the current revision it goes, and then is gone.
	if err := s.DeleteKey(ctx, "k1", cancelled.Revision); err != nil {
		t.Fatalf("DeleteKey at the current revision: %v", err)
	}
	_, err = s.GetKey(ctx, "k1")
	checkErrIs(t, "GetKey after DeleteKey", err, store.ErrNotFound)
	err = s.DeleteKey(ctx, "k1", cancelled.Revision)
	checkErrIs(t, "DeleteKey of a deleted key", err, store.ErrNotFound)
	if errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteKey of a deleted key: %v is also ErrConflict", err)
	}
}

func testAliasRevisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	a := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base, Revision: 42}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatal(err)
	}
	get := func() *store.Alias {
		t.Helper()
		got, err := s.GetAlias(ctx, account, region, "alias/app")
		if err != nil {
			t.Fatalf("GetAlias: %v", err)
		}
		return got
	}
	if r := get().Revision; r != 1 {
		t.Fatalf("Revision of a new alias = %d, want 1", r)
	}
	for i, to := range []string{"k2", "k1", "k1"} {
		from := get().KeyID
		if err := s.UpdateAlias(ctx, account, region, "alias/app", from, to, base.Add(time.Duration(i+1)*time.Hour)); err != nil {
			t.Fatalf("UpdateAlias from %s to %s: %v", from, to, err)
		}
		want := *a
		want.KeyID, want.Updated, want.Revision = to, base.Add(time.Duration(i+1)*time.Hour), int64(i+2)
		checkAlias(t, get(), &want)
	}
	checkErrIs(t, "UpdateAlias from the wrong key", s.UpdateAlias(ctx, account, region, "alias/app", "k2", "k2", base), store.ErrConflict)
	if r := get().Revision; r != 4 {
		t.Errorf("Revision after a refused UpdateAlias = %d, want 4", r)
	}
	aliases, err := s.ListAliases(ctx, account, region, "", "", 0)
	if err != nil || len(aliases) != 1 || aliases[0].Revision != 4 {
		t.Errorf("ListAliases = %v, %v; want alias/app at revision 4", aliases, err)
	}
}

// testAliasCompareAndSet: UpdateAlias and DeleteAlias act only on an alias
// that still points at the key the caller names.
func testAliasCompareAndSet(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"k1", "k2", "k3"} {
		mustCreateKey(t, s, newKey(id, account, region), nil)
	}
	a := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatal(err)
	}
	checkUnchanged := func(what string, want *store.Alias) {
		t.Helper()
		got, err := s.GetAlias(ctx, account, region, "alias/app")
		if err != nil {
			t.Fatalf("GetAlias after %s: %v", what, err)
		}
		checkAlias(t, got, want)
	}
	later := base.Add(time.Hour)
	for _, c := range []struct {
		name  string
		write func() error
		want  error
	}{
		{"UpdateAlias from another key", func() error { return s.UpdateAlias(ctx, account, region, "alias/app", "k2", "k3", later) }, store.ErrConflict},
		{"UpdateAlias from a missing key", func() error { return s.UpdateAlias(ctx, account, region, "alias/app", "missing", "k3", later) }, store.ErrConflict},
		{"UpdateAlias from the empty key", func() error { return s.UpdateAlias(ctx, account, region, "alias/app", "", "k3", later) }, store.ErrConflict},
		{"DeleteAlias of another key", func() error { return s.DeleteAlias(ctx, account, region, "alias/app", "k2") }, store.ErrConflict},
		{"DeleteAlias of the empty key", func() error { return s.DeleteAlias(ctx, account, region, "alias/app", "") }, store.ErrConflict},
		{"UpdateAlias of a missing alias", func() error { return s.UpdateAlias(ctx, account, region, "alias/other", "k1", "k2", later) }, store.ErrNotFound},
		{"UpdateAlias in another account", func() error { return s.UpdateAlias(ctx, account2, region, "alias/app", "k1", "k2", later) }, store.ErrNotFound},
		{"DeleteAlias of a missing alias", func() error { return s.DeleteAlias(ctx, account, region, "alias/other", "k1") }, store.ErrNotFound},
	} {
		err := c.write()
		checkErrIs(t, c.name, err, c.want)
		if other := map[error]error{store.ErrConflict: store.ErrNotFound, store.ErrNotFound: store.ErrConflict}[c.want]; errors.Is(err, other) {
			t.Errorf("%s: %v is also %v", c.name, err, other)
		}
		checkUnchanged(c.name, &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base, Revision: 1})
	}

	// Two callers read the alias at k1 and move it: the first wins, the
	// second is refused, and deleting as of k1 is refused too.
	if err := s.UpdateAlias(ctx, account, region, "alias/app", "k1", "k2", later); err != nil {
		t.Fatalf("UpdateAlias: %v", err)
	}
	moved := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k2", Created: base, Updated: later, Revision: 2}
	checkErrIs(t, "second UpdateAlias from k1", s.UpdateAlias(ctx, account, region, "alias/app", "k1", "k3", later.Add(time.Hour)), store.ErrConflict)
	checkErrIs(t, "DeleteAlias as of k1", s.DeleteAlias(ctx, account, region, "alias/app", "k1"), store.ErrConflict)
	checkUnchanged("refused writes", moved)
	if n, err := s.CountAliases(ctx, "k3"); err != nil || n != 0 {
		t.Errorf("CountAliases(k3) = %d, %v; want 0", n, err)
	}
	if err := s.DeleteAlias(ctx, account, region, "alias/app", "k2"); err != nil {
		t.Fatalf("DeleteAlias of the key it points at: %v", err)
	}
	_, err := s.GetAlias(ctx, account, region, "alias/app")
	checkErrIs(t, "GetAlias after DeleteAlias", err, store.ErrNotFound)
}

func testCustomKeyStoreRevisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	c.Revision = 42
	mustCreateCustomKeyStore(t, s, c)
	revision := func() int64 { t.Helper(); return mustGetCustomKeyStore(t, s, c.ID).Revision }
	if r := revision(); r != 1 {
		t.Fatalf("Revision of a new custom key store = %d, want 1", r)
	}
	got, err := s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
		u.ConnectionState = "CONNECTED"
		u.Revision = 1000
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 2 || revision() != 2 {
		t.Errorf("UpdateCustomKeyStore: Revision returned %d, stored %d; want 2", got.Revision, revision())
	}
	if _, err := s.UpdateCustomKeyStore(ctx, c.ID, func(*store.CustomKeyStore) error { return &updateError{"no"} }); err == nil {
		t.Fatal("UpdateCustomKeyStore refused by fn succeeded")
	}
	if r := revision(); r != 2 {
		t.Errorf("Revision after a refused UpdateCustomKeyStore = %d, want 2", r)
	}
	// Rewrapping its password writes the record.
	ref := store.WrappedRef{Kind: store.WrappedCustomKeyStorePassword, ID: c.ID}
	if err := s.UpdateWrapped(ctx, ref, c.WrappedPassword, []byte("rewrapped")); err != nil {
		t.Fatal(err)
	}
	if r := revision(); r != 3 {
		t.Errorf("Revision after UpdateWrapped of the password = %d, want 3", r)
	}
	if err := s.UpdateWrapped(ctx, ref, c.WrappedPassword, []byte("again")); err == nil {
		t.Fatal("UpdateWrapped with a stale password succeeded")
	}
	if r := revision(); r != 3 {
		t.Errorf("Revision after a refused UpdateWrapped = %d, want 3", r)
	}
	cs, err := s.ListCustomKeyStores(ctx, "", "", "", 0)
	if err != nil || len(cs) != 1 || cs[0].Revision != 3 {
		t.Errorf("ListCustomKeyStores = %v, %v; want %s at revision 3", cs, err, c.ID)
	}
}
