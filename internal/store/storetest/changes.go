package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// The change feed: what every write appends, in Seq order, and nothing for
// a write that failed; paging; pruning.

// change is a store.Change without the Seq and Time the store picks.
type change struct {
	Kind, ID, KeyID, Account, Region string
}

func (c change) String() string {
	return fmt.Sprintf("{%s %s key=%s %s/%s}", c.Kind, c.ID, c.KeyID, c.Account, c.Region)
}

func keyChange(id, acct, reg string) change {
	return change{store.ChangeKey, id, id, acct, reg}
}

func materialChange(keyID, acct, reg string) change {
	return change{store.ChangeMaterial, keyID, keyID, acct, reg}
}

func aliasChange(acct, reg, name, keyID string) change {
	return change{store.ChangeAlias, name, keyID, acct, reg}
}

func grantChange(id, keyID, acct, reg string) change {
	return change{store.ChangeGrant, id, keyID, acct, reg}
}

func accessKeyChange(id, acct string) change {
	return change{store.ChangeAccessKey, id, "", acct, ""}
}

func customKeyStoreChange(id, acct, reg string) change {
	return change{store.ChangeCustomKeyStore, id, "", acct, reg}
}

func settingChange(name string) change {
	return change{store.ChangeSetting, name, "", "", ""}
}

// changesAfter returns every change after seq, checking that they come in
// Seq order, after seq, and dated in UTC.
func changesAfter(t *testing.T, s store.Store, after int64) []store.Change {
	t.Helper()
	cs, err := s.Changes(t.Context(), after, 0)
	if err != nil {
		t.Fatalf("Changes(%d): %v", after, err)
	}
	prev := after
	for _, c := range cs {
		if c.Seq <= prev {
			t.Errorf("change %+v: Seq %d after %d; want Seq order", c, c.Seq, prev)
		}
		prev = c.Seq
		if c.Time.IsZero() || c.Time.Location() != time.UTC {
			t.Errorf("change %+v: Time %v, want a time in UTC", c, c.Time)
		}
	}
	return cs
}

func lastChange(t *testing.T, s store.Store) int64 {
	t.Helper()
	seq, err := s.LastChange(t.Context())
	if err != nil {
		t.Fatalf("LastChange: %v", err)
	}
	return seq
}

// sortedChanges returns the changes as sorted strings: the order of the
// changes of one write is the backend's choice.
func sortedChanges[C store.Change | change](cs []C) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		switch c := any(c).(type) {
		case store.Change:
			out[i] = change{c.Kind, c.ID, c.KeyID, c.Account, c.Region}.String()
		case change:
			out[i] = c.String()
		}
	}
	slices.Sort(out)
	return out
}

// checkChanges runs write, which must succeed, and checks that it appended
// exactly want to the change feed, after every earlier change, and that
// LastChange follows.
func checkChanges(t *testing.T, s store.Store, what string, write func() error, want ...change) {
	t.Helper()
	last := lastChange(t, s)
	if err := write(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got := changesAfter(t, s, last)
	if g, w := sortedChanges(got), sortedChanges(want); !slices.Equal(g, w) {
		t.Errorf("%s: changes\n got %v\nwant %v", what, g, w)
	}
	wantLast := last
	if len(got) > 0 {
		wantLast = got[len(got)-1].Seq
	}
	if l := lastChange(t, s); l != wantLast {
		t.Errorf("%s: LastChange = %d, want %d", what, l, wantLast)
	}
}

// checkFailedWrite runs write, which must fail (with target, when not nil),
// and checks that the change feed did not grow.
func checkFailedWrite(t *testing.T, s store.Store, what string, write func() error, target error) {
	t.Helper()
	last := lastChange(t, s)
	err := write()
	if err == nil {
		t.Errorf("%s succeeded, want an error", what)
	} else if target != nil && !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want %v", what, err, target)
	}
	if got := changesAfter(t, s, last); len(got) != 0 {
		t.Errorf("%s failed but recorded changes %v", what, sortedChanges(got))
	}
	if l := lastChange(t, s); l != last {
		t.Errorf("%s failed but LastChange went from %d to %d", what, last, l)
	}
}

func nop(*store.Key) error { return nil }

// testChangeFeed runs every kind of write in turn and checks the changes
// each appends.
func testChangeFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n := lastChange(t, s); n != 0 {
		t.Fatalf("LastChange of an empty store = %d, want 0", n)
	}
	if cs, err := s.Changes(ctx, 0, 10); err != nil || len(cs) != 0 {
		t.Fatalf("Changes of an empty store = %v, %v; want none", cs, err)
	}

	grant := func(id, keyID string) *store.Grant {
		return &store.Grant{ID: id, KeyID: keyID, GranteePrincipal: "arn:aws:iam::111122223333:role/app",
			IssuingAccount: "arn:aws:iam::111122223333:root", Operations: []string{"Decrypt"}, TokenHash: []byte{1}, Created: base}
	}
	alias := func(acct, reg, name, keyID string) *store.Alias {
		return &store.Alias{Account: acct, Region: reg, Name: name, KeyID: keyID, Created: base, Updated: base}
	}
	cks := newCustomKeyStore(1, account, region)
	pending := newMaterial("k1", 2)
	pending.RotationType = store.RotationPending
	params := &store.ImportParams{KeyID: "k1", ID: "p1", WrappedPrivateKey: []byte("wp"), Created: base, ValidTo: base}
	wrapped := func(kind string) *store.Wrapped {
		t.Helper()
		ws, err := s.ListWrapped(ctx, kind, store.WrappedRef{}, 1)
		if err != nil || len(ws) != 1 {
			t.Fatalf("ListWrapped(%s) = %v, %v; want one", kind, ws, err)
		}
		return ws[0]
	}
	rewrap := func(kind string) error {
		w := wrapped(kind)
		return s.UpdateWrapped(ctx, w.WrappedRef, w.Blob, append(w.Blob, '+'))
	}

	for _, step := range []struct {
		name  string
		write func() error
		want  []change
	}{
		{"CreateKey", func() error { return s.CreateKey(ctx, newKey("k1", account, region), nil) },
			[]change{keyChange("k1", account, region)}},
		{"CreateKey with a material", func() error {
			return s.CreateKey(ctx, newKey("k2", account2, region2), newMaterial("k2", 0))
		}, []change{keyChange("k2", account2, region2), materialChange("k2", account2, region2)}},
		{"AddMaterial", func() error { return s.AddMaterial(ctx, newMaterial("k1", 0)) },
			[]change{materialChange("k1", account, region)}},
		{"UpdateKey", func() error {
			_, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error { k.Description = "changed"; return nil })
			return err
		}, []change{keyChange("k1", account, region)}},
		{"RotateKey", func() error {
			_, err := s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(k *store.Key) error {
				k.CurrentMaterial = materialID("k1", 1)
				return nil
			})
			return err
		}, []change{keyChange("k1", account, region), materialChange("k1", account, region)}},
		// One change per material removed or added.
		{"ReplaceMaterial removing one and adding one", func() error {
			_, err := s.ReplaceMaterial(ctx, "k1", pending, materialID("k1", 1), nop)
			return err
		}, []change{keyChange("k1", account, region), materialChange("k1", account, region), materialChange("k1", account, region)}},
		{"ReplaceMaterial removing a missing one", func() error {
			_, err := s.ReplaceMaterial(ctx, "k1", nil, materialID("k1", 9), nop)
			return err
		}, []change{keyChange("k1", account, region)}},
		{"CreateAlias", func() error { return s.CreateAlias(ctx, alias(account, region, "alias/a", "k1")) },
			[]change{aliasChange(account, region, "alias/a", "k1")}},
		{"UpdateAlias names the new key", func() error {
			return s.UpdateAlias(ctx, account, region, "alias/a", "k1", "k2", base.Add(time.Hour))
		}, []change{aliasChange(account, region, "alias/a", "k2")}},
		{"DeleteAlias", func() error { return s.DeleteAlias(ctx, account, region, "alias/a", "k2") },
			[]change{aliasChange(account, region, "alias/a", "k2")}},
		{"CreateGrant", func() error { return s.CreateGrant(ctx, grant("g1", "k1")) },
			[]change{grantChange("g1", "k1", account, region)}},
		{"DeleteGrant", func() error { return s.DeleteGrant(ctx, "g1") },
			[]change{grantChange("g1", "k1", account, region)}},
		{"PutAccessKey", func() error {
			return s.PutAccessKey(ctx, &store.AccessKey{ID: "AKIA1", Account: account2, PrincipalARN: "arn:aws:iam::444455556666:root",
				WrappedSecret: []byte("s"), Created: base})
		}, []change{accessKeyChange("AKIA1", account2)}},
		{"CreateCustomKeyStore", func() error { return s.CreateCustomKeyStore(ctx, cks) },
			[]change{customKeyStoreChange(cks.ID, account, region)}},
		{"UpdateCustomKeyStore", func() error {
			_, err := s.UpdateCustomKeyStore(ctx, cks.ID, func(c *store.CustomKeyStore) error {
				c.ConnectionState = "CONNECTED"
				return nil
			})
			return err
		}, []change{customKeyStoreChange(cks.ID, account, region)}},
		{"UpdateWrapped of a material", func() error { return rewrap(store.WrappedMaterial) },
			[]change{materialChange("k1", account, region)}},
		{"UpdateWrapped of an access key", func() error { return rewrap(store.WrappedAccessKey) },
			[]change{accessKeyChange("AKIA1", account2)}},
		{"UpdateWrapped of a custom key store password", func() error { return rewrap(store.WrappedCustomKeyStorePassword) },
			[]change{customKeyStoreChange(cks.ID, account, region)}},
		// Key usage and import parameters are cached nowhere: no change.
		{"RecordKeyUsage", func() error {
			return s.RecordKeyUsage(ctx, []*store.KeyUse{{KeyID: "k1", Operation: "Encrypt", Time: base}})
		}, nil},
		{"PutImportParams", func() error { return s.PutImportParams(ctx, params) }, nil},
		{"UpdateWrapped of import parameters", func() error { return rewrap(store.WrappedImportParams) }, nil},
		{"DeleteExpiredImportParams", func() error {
			n, err := s.DeleteExpiredImportParams(ctx, base)
			if err == nil && n != 1 {
				err = fmt.Errorf("deleted %d import parameters, want 1", n)
			}
			return err
		}, nil},
		{"PutSetting", func() error { _, err := s.PutSetting(ctx, "s", []byte("v1"), 0); return err },
			[]change{settingChange("s")}},
		{"PutSetting again", func() error { _, err := s.PutSetting(ctx, "s", []byte("v2"), 1); return err },
			[]change{settingChange("s")}},
		{"DeleteCustomKeyStore", func() error { return s.DeleteCustomKeyStore(ctx, cks.ID) },
			[]change{customKeyStoreChange(cks.ID, account, region)}},

		// What DeleteKey's cascade removes: k1 has the materials 0 and 2
		// (pending), two aliases (one in another account and region: an
		// alias's change carries its own) and two grants.
		{"CreateAlias", func() error { return s.CreateAlias(ctx, alias(account, region, "alias/b", "k1")) },
			[]change{aliasChange(account, region, "alias/b", "k1")}},
		{"CreateAlias in another account", func() error { return s.CreateAlias(ctx, alias(account2, region2, "alias/b", "k1")) },
			[]change{aliasChange(account2, region2, "alias/b", "k1")}},
		{"CreateGrant", func() error { return s.CreateGrant(ctx, grant("g2", "k1")) },
			[]change{grantChange("g2", "k1", account, region)}},
		{"CreateGrant", func() error { return s.CreateGrant(ctx, grant("g3", "k1")) },
			[]change{grantChange("g3", "k1", account, region)}},
		{"CreateGrant on another key", func() error { return s.CreateGrant(ctx, grant("g4", "k2")) },
			[]change{grantChange("g4", "k2", account2, region2)}},
		{"DeleteKey with its materials, aliases and grants", func() error {
			return s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision)
		}, []change{
			keyChange("k1", account, region),
			materialChange("k1", account, region), materialChange("k1", account, region),
			aliasChange(account, region, "alias/b", "k1"), aliasChange(account2, region2, "alias/b", "k1"),
			grantChange("g2", "k1", account, region), grantChange("g3", "k1", account, region),
		}},
		{"DeleteKey of a key with a material and a grant", func() error {
			return s.DeleteKey(ctx, "k2", mustGetKey(t, s, "k2").Revision)
		}, []change{keyChange("k2", account2, region2), materialChange("k2", account2, region2), grantChange("g4", "k2", account2, region2)}},
	} {
		checkChanges(t, s, step.name, step.write, step.want...)
	}
}

// testChangeFeedFailedWrites checks that no failed write records a change.
func testChangeFeedFailedWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	if err := s.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/a", KeyID: "k1", Created: base, Updated: base}); err != nil {
		t.Fatal(err)
	}
	g := &store.Grant{ID: "g1", KeyID: "k1", GranteePrincipal: "p", Operations: []string{"Decrypt"}, TokenHash: []byte{1}, Created: base}
	if err := s.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	ak := &store.AccessKey{ID: "AKIA1", Account: account, PrincipalARN: "arn:aws:iam::111122223333:root", WrappedSecret: []byte("s"), Created: base}
	if err := s.PutAccessKey(ctx, ak); err != nil {
		t.Fatal(err)
	}
	cks1, cks2 := newCustomKeyStore(1, account, region), newCustomKeyStore(2, account, region)
	mustCreateCustomKeyStore(t, s, cks1)
	mustCreateCustomKeyStore(t, s, cks2)
	inStore := newKey("k3", account, region)
	inStore.CustomKeyStoreID = cks1.ID
	mustCreateKey(t, s, inStore, nil)
	if _, err := s.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	refused := &updateError{"refused"}
	material := store.WrappedRef{Kind: store.WrappedMaterial, KeyID: "k1", ID: materialID("k1", 0)}

	for _, c := range []struct {
		name   string
		write  func() error
		target error
	}{
		{"CreateKey of a taken ID", func() error { return s.CreateKey(ctx, newKey("k1", account, region), newMaterial("k1", 5)) }, store.ErrExists},
		{"AddMaterial of a taken ID", func() error { return s.AddMaterial(ctx, newMaterial("k1", 0)) }, store.ErrExists},
		{"AddMaterial to a missing key", func() error { return s.AddMaterial(ctx, newMaterial("missing", 0)) }, store.ErrNotFound},
		{"UpdateKey of a missing key", func() error { _, err := s.UpdateKey(ctx, "missing", nop); return err }, store.ErrNotFound},
		{"UpdateKey refused by fn", func() error {
			_, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error { k.Description = "x"; return refused })
			return err
		}, refused},
		{"UpdateKey changing the account", func() error {
			_, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error { k.Account = account2; return nil })
			return err
		}, nil},
		{"RotateKey refused by fn", func() error {
			_, err := s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(*store.Key) error { return refused })
			return err
		}, refused},
		// The key's update succeeds; the material's insert fails after it.
		{"RotateKey with a taken material ID", func() error {
			_, err := s.RotateKey(ctx, "k1", newMaterial("k1", 0), func(k *store.Key) error { k.Description = "x"; return nil })
			return err
		}, store.ErrExists},
		{"ReplaceMaterial adding a taken material ID", func() error {
			_, err := s.ReplaceMaterial(ctx, "k1", newMaterial("k1", 0), materialID("k1", 7), nop)
			return err
		}, store.ErrExists},
		{"CreateAlias of a taken name", func() error {
			return s.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/a", KeyID: "k2"})
		}, store.ErrExists},
		{"CreateAlias for a missing key", func() error {
			return s.CreateAlias(ctx, &store.Alias{Account: account, Region: region, Name: "alias/b", KeyID: "missing"})
		}, store.ErrNotFound},
		{"UpdateAlias from another key", func() error { return s.UpdateAlias(ctx, account, region, "alias/a", "k2", "k1", base) }, store.ErrConflict},
		{"UpdateAlias to a missing key", func() error { return s.UpdateAlias(ctx, account, region, "alias/a", "k1", "missing", base) }, store.ErrNotFound},
		{"UpdateAlias of a missing alias", func() error { return s.UpdateAlias(ctx, account, region, "alias/b", "k1", "k2", base) }, store.ErrNotFound},
		{"DeleteAlias of another key", func() error { return s.DeleteAlias(ctx, account, region, "alias/a", "k2") }, store.ErrConflict},
		{"DeleteAlias of a missing alias", func() error { return s.DeleteAlias(ctx, account, region, "alias/b", "k1") }, store.ErrNotFound},
		{"CreateGrant of a taken ID", func() error { return s.CreateGrant(ctx, g) }, store.ErrExists},
		{"CreateGrant on a missing key", func() error {
			g2 := *g
			g2.ID, g2.KeyID = "g2", "missing"
			return s.CreateGrant(ctx, &g2)
		}, store.ErrNotFound},
		{"DeleteGrant of a missing grant", func() error { return s.DeleteGrant(ctx, "g9") }, store.ErrNotFound},
		{"PutAccessKey of a taken ID", func() error { return s.PutAccessKey(ctx, ak) }, store.ErrExists},
		{"CreateCustomKeyStore of a taken ID", func() error { return s.CreateCustomKeyStore(ctx, cks1) }, store.ErrExists},
		{"UpdateCustomKeyStore refused by fn", func() error {
			_, err := s.UpdateCustomKeyStore(ctx, cks1.ID, func(*store.CustomKeyStore) error { return refused })
			return err
		}, refused},
		{"UpdateCustomKeyStore to a taken name", func() error {
			_, err := s.UpdateCustomKeyStore(ctx, cks1.ID, func(c *store.CustomKeyStore) error { c.Name = cks2.Name; return nil })
			return err
		}, store.ErrExists},
		{"DeleteCustomKeyStore in use", func() error { return s.DeleteCustomKeyStore(ctx, cks1.ID) }, store.ErrInUse},
		{"DeleteCustomKeyStore of a missing store", func() error { return s.DeleteCustomKeyStore(ctx, cksID(9)) }, store.ErrNotFound},
		{"UpdateWrapped with a stale blob", func() error { return s.UpdateWrapped(ctx, material, []byte("stale"), []byte("new")) }, store.ErrConflict},
		{"UpdateWrapped of a missing record", func() error {
			return s.UpdateWrapped(ctx, store.WrappedRef{Kind: store.WrappedAccessKey, ID: "AKIA9"}, []byte("s"), []byte("new"))
		}, store.ErrNotFound},
		{"PutSetting that exists at revision 0", func() error { _, err := s.PutSetting(ctx, "s", []byte("x"), 0); return err }, store.ErrConflict},
		{"PutSetting at a stale revision", func() error { _, err := s.PutSetting(ctx, "s", []byte("x"), 2); return err }, store.ErrConflict},
		{"DeleteKey at a stale revision", func() error { return s.DeleteKey(ctx, "k1", 2) }, store.ErrConflict},
		{"DeleteKey of a missing key", func() error { return s.DeleteKey(ctx, "missing", 1) }, store.ErrNotFound},
		{"Update whose fn fails after writing", func() error {
			return s.Update(ctx, func(tx store.Tx) error {
				if err := tx.CreateKey(ctx, newKey("k9", account, region), newMaterial("k9", 0)); err != nil {
					return err
				}
				if _, err := tx.PutSetting(ctx, "s", []byte("x"), 1); err != nil {
					return err
				}
				return refused
			})
		}, refused},
	} {
		checkFailedWrite(t, s, c.name, c.write, c.target)
	}
}

func testChangesPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 5 {
		mustCreateKey(t, s, newKey(fmt.Sprintf("k%d", i), account, region), nil)
	}
	all := changesAfter(t, s, 0)
	if len(all) != 5 {
		t.Fatalf("%d changes after 5 CreateKey, want 5", len(all))
	}
	if n := lastChange(t, s); n != all[4].Seq {
		t.Errorf("LastChange = %d, want %d", n, all[4].Seq)
	}
	for i, c := range all {
		if want := keyChange(fmt.Sprintf("k%d", i), account, region); (change{c.Kind, c.ID, c.KeyID, c.Account, c.Region}) != want {
			t.Errorf("change %d = %+v, want %v", i, c, want)
		}
	}

	var walked []store.Change
	after := int64(0)
	for range 10 {
		page, err := s.Changes(ctx, after, 2)
		if err != nil {
			t.Fatalf("Changes(%d, 2): %v", after, err)
		}
		if len(page) > 2 {
			t.Fatalf("Changes(%d, 2) returned %d changes", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(walked, all) {
		t.Errorf("changes walked in pages of 2:\n got %+v\nwant %+v", walked, all)
	}
	for _, c := range []struct {
		after int64
		limit int
		want  []store.Change
	}{
		{0, 0, all},
		{0, -1, all},
		{0, 1, all[:1]},
		{all[1].Seq, 2, all[2:4]},
		{all[3].Seq, 0, all[4:]},
		{all[4].Seq, 10, nil},
		{all[4].Seq + 100, 10, nil},
	} {
		got, err := s.Changes(ctx, c.after, c.limit)
		if err != nil {
			t.Fatalf("Changes(%d, %d): %v", c.after, c.limit, err)
		}
		if len(got) != len(c.want) || (len(got) > 0 && !slices.Equal(got, c.want)) {
			t.Errorf("Changes(%d, %d) = %+v, want %+v", c.after, c.limit, got, c.want)
		}
	}
}

func testPruneChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	future := time.Now().Add(time.Hour)
	if n, err := s.PruneChanges(ctx, future); err != nil || n != 0 {
		t.Fatalf("PruneChanges of an empty store = %d, %v; want 0", n, err)
	}
	for i := range 6 {
		mustCreateKey(t, s, newKey(fmt.Sprintf("k%d", i), account, region), nil)
	}
	all := changesAfter(t, s, 0)
	if len(all) != 6 {
		t.Fatalf("%d changes after 6 CreateKey, want 6", len(all))
	}
	last := all[5].Seq

	if n, err := s.PruneChanges(ctx, time.Unix(0, 0)); err != nil || n != 0 {
		t.Errorf("PruneChanges(1970) = %d, %v; want 0", n, err)
	}

	// Prune what was made before the fourth change. The store's clock
	// dates the changes, so what that is is read from their times (the
	// first three, unless the clock is coarse).
	cut := all[3].Time
	var wantPruned int
	var prunedUpTo int64
	pruned := make(map[int64]bool)
	for _, c := range all[:5] {
		if c.Time.Before(cut) {
			wantPruned++
			prunedUpTo = max(prunedUpTo, c.Seq)
			pruned[c.Seq] = true
		}
	}
	n, err := s.PruneChanges(ctx, cut)
	if err != nil || n != wantPruned {
		t.Fatalf("PruneChanges(fourth change's time) = %d, %v; want %d", n, err, wantPruned)
	}
	if wantPruned > 0 {
		for _, after := range []int64{0, prunedUpTo - 1} {
			_, err := s.Changes(ctx, after, 0)
			checkErrIs(t, fmt.Sprintf("Changes(%d) once changes up to %d were pruned", after, prunedUpTo), err, store.ErrChangesPruned)
		}
	}
	var wantKept []store.Change
	for _, c := range all {
		if !pruned[c.Seq] && c.Seq > prunedUpTo {
			wantKept = append(wantKept, c)
		}
	}
	if got := changesAfter(t, s, prunedUpTo); !slices.Equal(got, wantKept) {
		t.Errorf("Changes(%d) after pruning = %+v, want %+v", prunedUpTo, got, wantKept)
	}

	// Pruning everything keeps the last change, so that LastChange holds
	// and a reader that saw it can go on.
	n, err = s.PruneChanges(ctx, future)
	if err != nil || n != 5-wantPruned {
		t.Errorf("PruneChanges(future) = %d, %v; want %d", n, err, 5-wantPruned)
	}
	if l := lastChange(t, s); l != last {
		t.Errorf("LastChange after pruning = %d, want %d", l, last)
	}
	if got := changesAfter(t, s, last); len(got) != 0 {
		t.Errorf("Changes(last) after pruning = %+v, want none", got)
	}
	// A reader that saw the fifth change missed nothing; one that saw
	// the fourth missed the fifth.
	if got := changesAfter(t, s, all[4].Seq); !slices.Equal(got, all[5:]) {
		t.Errorf("Changes(%d) after pruning all but the last = %+v, want %+v", all[4].Seq, got, all[5:])
	}
	for _, after := range []int64{0, all[3].Seq} {
		_, err := s.Changes(ctx, after, 0)
		checkErrIs(t, fmt.Sprintf("Changes(%d) after pruning all but the last", after), err, store.ErrChangesPruned)
	}
	if n, err := s.PruneChanges(ctx, future); err != nil || n != 0 {
		t.Errorf("PruneChanges of the last change = %d, %v; want 0 (it is kept)", n, err)
	}

	// The feed goes on after the last change; no Seq is reused.
	mustCreateKey(t, s, newKey("k6", account, region), nil)
	got := changesAfter(t, s, last)
	if len(got) != 1 || got[0].ID != "k6" || got[0].Seq <= last {
		t.Errorf("Changes(%d) after a new write = %+v, want k6's change after %d", last, got, last)
	}
}
