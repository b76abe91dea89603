package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Enumeration: every record reachable whatever its account or region, in
// byte order of its sort key, as one Update sees the store.

func testListAllKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if keys, err := s.ListAllKeys(ctx, "", 0); err != nil || len(keys) != 0 {
		t.Fatalf("ListAllKeys of an empty store = %v, %v; want none", keyIDs(keys), err)
	}
	// IDs interleave across accounts and regions; "K" sorts before "k" in
	// byte order, whatever the database's collation.
	want := []*store.Key{
		newKey("K3", account2, region),
		newKey("k1", account, region),
		newKey("k2", account, region2),
		newKey("k4", account2, region2),
		newKey("k5", account, region),
	}
	want[3].State = "PendingDeletion"
	want[3].DeletionDate = base.Add(7 * 24 * time.Hour)
	want[3].PendingWindowDays = 7
	want[4].State = "PendingImport"
	want[4].CurrentMaterial = ""
	for _, i := range []int{2, 0, 4, 1, 3} {
		var m *store.Material
		if want[i].CurrentMaterial != "" {
			m = newMaterial(want[i].ID, 0)
		}
		mustCreateKey(t, s, want[i], m)
	}
	got, err := s.ListAllKeys(ctx, "", 0)
	if err != nil {
		t.Fatalf("ListAllKeys: %v", err)
	}
	checkStrings(t, "ListAllKeys", keyIDs(got), []string{"K3", "k1", "k2", "k4", "k5"})
	for i := range min(len(got), len(want)) {
		checkKey(t, got[i], want[i])
	}

	// Paging.
	var paged []string
	after := ""
	for range 10 {
		page, err := s.ListAllKeys(ctx, after, 2)
		if err != nil {
			t.Fatalf("ListAllKeys after %q: %v", after, err)
		}
		if len(page) > 2 {
			t.Fatalf("ListAllKeys with limit 2 returned %d keys", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, keyIDs(page)...)
		after = page[len(page)-1].ID
	}
	checkStrings(t, "ListAllKeys paged by 2", paged, []string{"K3", "k1", "k2", "k4", "k5"})
	page, err := s.ListAllKeys(ctx, "k2", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, `ListAllKeys after "k2"`, keyIDs(page), []string{"k4", "k5"})

	// A deleted key is gone from the enumeration.
	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListAllKeys(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListAllKeys after DeleteKey", keyIDs(got), []string{"K3", "k2", "k4", "k5"})
}

func testListImportParams(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account2, region2), nil)
	if ps, err := s.ListImportParams(ctx, "k1"); err != nil || len(ps) != 0 {
		t.Fatalf("ListImportParams of a key without any = %v, %v; want none", ps, err)
	}
	params := func(keyID string, n int, validTo time.Time) *store.ImportParams {
		return &store.ImportParams{KeyID: keyID, ID: materialID("token", n), WrappedPrivateKey: []byte(fmt.Sprintf("wrapped\x00private %d", n)),
			WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048", Created: base.Add(time.Duration(n) * time.Minute), ValidTo: validTo}
	}
	// Put out of ID order; p3 never expires (a zero ValidTo).
	p3, p1, p2 := params("k1", 3, time.Time{}), params("k1", 1, base.Add(time.Hour)), params("k2", 2, base.Add(2*time.Hour))
	for _, p := range []*store.ImportParams{p3, p1, p2} {
		if err := s.PutImportParams(ctx, p); err != nil {
			t.Fatalf("PutImportParams(%s): %v", p.ID, err)
		}
	}
	check := func(what, keyID string, want ...*store.ImportParams) {
		t.Helper()
		got, err := s.ListImportParams(ctx, keyID)
		if err != nil {
			t.Fatalf("ListImportParams(%s) %s: %v", keyID, what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("ListImportParams(%s) %s returned %d, want %d", keyID, what, len(got), len(want))
		}
		for i, w := range want {
			g := got[i]
			checkTime(t, "import parameters Created", g.Created, w.Created)
			checkTime(t, "import parameters ValidTo", g.ValidTo, w.ValidTo)
			if g.KeyID != w.KeyID || g.ID != w.ID || !bytes.Equal(g.WrappedPrivateKey, w.WrappedPrivateKey) ||
				g.WrappingAlgorithm != w.WrappingAlgorithm || g.WrappingKeySpec != w.WrappingKeySpec {
				t.Errorf("ListImportParams(%s) %s [%d] = %+v, want %+v", keyID, what, i, g, w)
			}
		}
	}
	check("", "k1", p1, p3)
	check("", "k2", p2)
	check("of a missing key", "missing")
	// Expired parameters are listed until they are deleted.
	check("once expired", "k1", p1, p3)
	if _, err := s.DeleteExpiredImportParams(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("after DeleteExpiredImportParams", "k1", p3)
}

func testListAliasesOfKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	mustCreateKey(t, s, newKey("k2", account, region), newMaterial("k2", 0))
	if as, err := s.ListAliasesOfKey(ctx, "k1"); err != nil || len(as) != 0 {
		t.Fatalf("ListAliasesOfKey of a key without aliases = %v, %v; want none", aliasNames(as), err)
	}
	alias := func(acct, reg, name, keyID string) *store.Alias {
		return &store.Alias{Account: acct, Region: reg, Name: name, KeyID: keyID, Created: base, Updated: base.Add(time.Second)}
	}
	// The store does not check that an alias is in its key's account and
	// region: the enumeration reaches those in others too.
	want := []*store.Alias{
		alias(account, region2, "alias/a", "k1"),
		alias(account, region, "alias/B", "k1"), // "B" < "a" in byte order
		alias(account, region, "alias/a", "k1"),
		alias(account2, region, "alias/a", "k1"),
	}
	for _, a := range []*store.Alias{want[3], want[0], alias(account, region, "alias/other", "k2"), want[2], want[1]} {
		if err := s.CreateAlias(ctx, a); err != nil {
			t.Fatalf("CreateAlias(%s/%s/%s): %v", a.Account, a.Region, a.Name, err)
		}
	}
	// want is in (Account, Region, Name) order: "eu-west-1" sorts first.
	got, err := s.ListAliasesOfKey(ctx, "k1")
	if err != nil {
		t.Fatalf("ListAliasesOfKey: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListAliasesOfKey returned %d aliases, want %d", len(got), len(want))
	}
	for i := range want {
		want[i].Revision = 1
		checkAlias(t, got[i], want[i])
	}
	// An alias moved to another key is listed with that key.
	if err := s.UpdateAlias(ctx, account, region, "alias/B", "k1", "k2", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListAliasesOfKey(ctx, "k2")
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListAliasesOfKey(k2) after UpdateAlias", aliasNames(got), []string{"alias/B", "alias/other"})
	if len(got) == 2 && got[0].Revision != 2 {
		t.Errorf("moved alias Revision = %d, want 2", got[0].Revision)
	}
	if as, err := s.ListAliasesOfKey(ctx, "missing"); err != nil || len(as) != 0 {
		t.Errorf("ListAliasesOfKey(missing) = %v, %v; want none", aliasNames(as), err)
	}
}

func testListAllAccessKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if ks, err := s.ListAllAccessKeys(ctx, "", 0); err != nil || len(ks) != 0 {
		t.Fatalf("ListAllAccessKeys of an empty store = %v, %v; want none", ks, err)
	}
	keys := []*store.AccessKey{
		{ID: "AKIAB", Account: account2, PrincipalARN: "arn:aws:iam::444455556666:user/b", WrappedSecret: []byte("secret-b\x00"), Created: base},
		{ID: "AKIAC", Account: account, PrincipalARN: "arn:aws:iam::111122223333:user/admin", WrappedSecret: []byte("secret-c"), Created: base.Add(time.Minute)},
		{ID: "AKIAa", Account: account, PrincipalARN: "arn:aws:iam::111122223333:role/app", WrappedSecret: []byte("secret-a"), Created: base.Add(time.Hour)},
	}
	for _, i := range []int{2, 0, 1} {
		if err := s.PutAccessKey(ctx, keys[i]); err != nil {
			t.Fatalf("PutAccessKey(%s): %v", keys[i].ID, err)
		}
	}
	ids := func(ks []*store.AccessKey) []string {
		out := make([]string, len(ks))
		for i, k := range ks {
			out[i] = k.ID
		}
		return out
	}
	got, err := s.ListAllAccessKeys(ctx, "", 0)
	if err != nil {
		t.Fatalf("ListAllAccessKeys: %v", err)
	}
	checkStrings(t, "ListAllAccessKeys", ids(got), []string{"AKIAB", "AKIAC", "AKIAa"})
	for i := range min(len(got), len(keys)) {
		g, w := got[i], keys[i]
		checkTime(t, "access key "+w.ID+" Created", g.Created, w.Created)
		if g.ID != w.ID || g.Account != w.Account || g.PrincipalARN != w.PrincipalARN || !bytes.Equal(g.WrappedSecret, w.WrappedSecret) {
			t.Errorf("ListAllAccessKeys[%d] = %+v, want %+v", i, g, w)
		}
	}
	page, err := s.ListAllAccessKeys(ctx, "AKIAB", 1)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, `ListAllAccessKeys after "AKIAB", limit 1`, ids(page), []string{"AKIAC"})
	page, err = s.ListAllAccessKeys(ctx, "AKIAa", 0)
	if err != nil || len(page) != 0 {
		t.Errorf("ListAllAccessKeys after the last = %v, %v; want none", ids(page), err)
	}
}

func testListSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	if sts, err := s.ListSettings(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ListSettings of an empty store = %v, %v; want none", sts, err)
	}
	for _, name := range []string{"b", store.SettingRootManifest, "B"} {
		if _, err := s.PutSetting(ctx, name, []byte("value of "+name+"\x00"), 0); err != nil {
			t.Fatalf("PutSetting(%s): %v", name, err)
		}
	}
	if _, err := s.PutSetting(ctx, "b", nil, 1); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSettings(ctx)
	if err != nil {
		t.Fatalf("ListSettings: %v", err)
	}
	type setting struct {
		name, value string
		revision    int64
	}
	want := []setting{{"B", "value of B\x00", 1}, {"b", "", 2}, {store.SettingRootManifest, "value of root-manifest\x00", 1}}
	if len(got) != len(want) {
		t.Fatalf("ListSettings returned %d settings, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || string(g.Value) != w.value || g.Revision != w.revision {
			t.Errorf("ListSettings[%d] = {%s %q %d}, want {%s %q %d}", i, g.Name, g.Value, g.Revision, w.name, w.value, w.revision)
		}
		if g.Updated.IsZero() || g.Updated.Location() != time.UTC {
			t.Errorf("ListSettings[%d] Updated = %v, want a time in UTC", i, g.Updated)
		}
		// Each agrees with GetSetting.
		one, err := s.GetSetting(ctx, g.Name)
		if err != nil || !bytes.Equal(one.Value, g.Value) || one.Revision != g.Revision || !one.Updated.Equal(g.Updated) {
			t.Errorf("GetSetting(%s) = %+v, %v; ListSettings has %+v", g.Name, one, err, g)
		}
	}
}

// testEnumerateInUpdate checks what a backup relies on: the enumerations
// called inside Update see its own writes, and a write by anyone else
// waits until the Update ends, so that everything Update reads is one
// state of the store.
func testEnumerateInUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	wrote := make(chan error, 1)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateKey(ctx, newKey("k2", account2, region2), newMaterial("k2", 0)); err != nil {
			return err
		}
		if _, err := tx.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
			return err
		}
		if err := tx.PutAccessKey(ctx, &store.AccessKey{ID: "AKIA1", Account: account2, PrincipalARN: "p", WrappedSecret: []byte("w"), Created: base}); err != nil {
			return err
		}
		keys, err := tx.ListAllKeys(ctx, "", 0)
		if err != nil {
			return err
		}
		if got := keyIDs(keys); len(got) != 2 {
			return fmt.Errorf("ListAllKeys inside the transaction = %q, want k1 and k2", got)
		}
		if sts, err := tx.ListSettings(ctx); err != nil || len(sts) != 1 {
			return fmt.Errorf("ListSettings inside the transaction = %d, %v; want 1", len(sts), err)
		}
		if aks, err := tx.ListAllAccessKeys(ctx, "", 0); err != nil || len(aks) != 1 {
			return fmt.Errorf("ListAllAccessKeys inside the transaction = %d, %v; want 1", len(aks), err)
		}

		// A concurrent writer must wait for this transaction to end.
		go func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			wrote <- s.CreateKey(wctx, newKey("k3", account, region), newMaterial("k3", 0))
		}()
		select {
		case err := <-wrote:
			return fmt.Errorf("a CreateKey outside the transaction returned (%v) while it was open", err)
		case <-time.After(300 * time.Millisecond):
		}
		keys, err = tx.ListAllKeys(ctx, "", 0)
		if err != nil {
			return err
		}
		if got := keyIDs(keys); len(got) != 2 {
			return fmt.Errorf("ListAllKeys inside the transaction, once another writer tried = %q, want k1 and k2", got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the concurrent CreateKey, after the Update: %v", err)
	}
	keys, err := s.ListAllKeys(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListAllKeys after both", keyIDs(keys), []string{"k1", "k2", "k3"})
}
