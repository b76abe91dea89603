package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Custom key stores: their records, the keys that belong to them, and the
// wrapped password root rotation rewraps.

// cksID returns a deterministic custom key store ID of the AWS form, "cks-"
// and 17 lowercase hex characters.
func cksID(n int) string {
	return fmt.Sprintf("cks-%017x", n)
}

// newCustomKeyStore returns a custom key store with every field set; its
// name and cluster derive from n, so that stores made from different n do
// not conflict.
func newCustomKeyStore(n int, acct, reg string) *store.CustomKeyStore {
	return &store.CustomKeyStore{
		ID:              cksID(n),
		Account:         acct,
		Region:          reg,
		Name:            fmt.Sprintf("store %d with 'quotes' and ünïcödé", n),
		Type:            "AWS_CLOUDHSM",
		ClusterID:       fmt.Sprintf("cluster-%011x", n),
		TrustAnchor:     "-----BEGIN CERTIFICATE-----\nMIIB" + fmt.Sprint(n) + "\n-----END CERTIFICATE-----\n",
		WrappedPassword: []byte(fmt.Sprintf("wrapped\x00\xff password %d", n)),
		Created:         base.Add(time.Duration(n) * time.Minute),
		ConnectionState: "DISCONNECTED",
	}
}

func mustCreateCustomKeyStore(t *testing.T, s store.Store, c *store.CustomKeyStore) {
	t.Helper()
	if err := s.CreateCustomKeyStore(t.Context(), c); err != nil {
		t.Fatalf("CreateCustomKeyStore(%s): %v", c.ID, err)
	}
}

func mustGetCustomKeyStore(t *testing.T, s store.Store, id string) *store.CustomKeyStore {
	t.Helper()
	c, err := s.GetCustomKeyStore(t.Context(), id)
	if err != nil {
		t.Fatalf("GetCustomKeyStore(%s): %v", id, err)
	}
	return c
}

// checkCustomKeyStore fails unless got equals want field by field,
// comparing Created with Equal and treating a nil and an empty password
// alike. A want.Revision of 0 matches any revision, as in checkKey.
func checkCustomKeyStore(t *testing.T, got, want *store.CustomKeyStore) {
	t.Helper()
	if got == nil {
		t.Fatalf("custom key store is nil, want %s", want.ID)
	}
	checkTime(t, "custom key store "+want.ID+" Created", got.Created, want.Created)
	g, w := *got, *want
	if w.Revision == 0 {
		g.Revision = 0
	}
	g.Created, w.Created = time.Time{}, time.Time{}
	if len(g.WrappedPassword) == 0 {
		g.WrappedPassword = nil
	}
	if len(w.WrappedPassword) == 0 {
		w.WrappedPassword = nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("custom key store mismatch:\n got %+v\nwant %+v", g, w)
	}
}

func customKeyStoreIDs(cs []*store.CustomKeyStore) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func testCustomKeyStores(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	mustCreateCustomKeyStore(t, s, c)
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), c)

	// A failed connection with its error code, and a store with the
	// optional fields empty.
	failed := newCustomKeyStore(2, account, region)
	failed.ConnectionState, failed.ConnectionErrorCode = "FAILED", "INVALID_CREDENTIALS"
	mustCreateCustomKeyStore(t, s, failed)
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, failed.ID), failed)
	bare := &store.CustomKeyStore{ID: cksID(3), Account: account, Region: region, Name: "bare", ClusterID: "cluster-bare"}
	mustCreateCustomKeyStore(t, s, bare)
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, bare.ID), bare)

	_, err := s.GetCustomKeyStore(ctx, cksID(99))
	checkErrIs(t, "GetCustomKeyStore(missing)", err, store.ErrNotFound)
	_, err = s.GetCustomKeyStore(ctx, "")
	checkErrIs(t, `GetCustomKeyStore("")`, err, store.ErrNotFound)

	// Records returned share no memory with the store.
	c.WrappedPassword[0] ^= 0xff
	got := mustGetCustomKeyStore(t, s, c.ID)
	checkCustomKeyStore(t, got, newCustomKeyStore(1, account, region))
	got.WrappedPassword[0] ^= 0xff
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), newCustomKeyStore(1, account, region))
}

func testCustomKeyStoreConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	mustCreateCustomKeyStore(t, s, c)

	sameID := newCustomKeyStore(2, account2, region2)
	sameID.ID = c.ID
	checkErrIs(t, "CreateCustomKeyStore of a taken ID", s.CreateCustomKeyStore(ctx, sameID), store.ErrExists)
	sameName := newCustomKeyStore(3, account, region)
	sameName.Name = c.Name
	checkErrIs(t, "CreateCustomKeyStore of a name taken in its account and region", s.CreateCustomKeyStore(ctx, sameName), store.ErrExists)
	// A cluster backs one custom key store, whatever its account.
	sameCluster := newCustomKeyStore(4, account2, region2)
	sameCluster.ClusterID = c.ClusterID
	checkErrIs(t, "CreateCustomKeyStore of a taken cluster", s.CreateCustomKeyStore(ctx, sameCluster), store.ErrExists)
	for _, id := range []string{cksID(3), cksID(4)} {
		_, err := s.GetCustomKeyStore(ctx, id)
		checkErrIs(t, "GetCustomKeyStore after a failed CreateCustomKeyStore", err, store.ErrNotFound)
	}
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), c)

	// The same name in another account or region is another store.
	for i, scope := range [][2]string{{account2, region}, {account, region2}} {
		other := newCustomKeyStore(10+i, scope[0], scope[1])
		other.Name = c.Name
		if err := s.CreateCustomKeyStore(ctx, other); err != nil {
			t.Fatalf("CreateCustomKeyStore with a taken name in %s/%s: %v", scope[0], scope[1], err)
		}
	}
}

func testListCustomKeyStores(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Inserted out of order; listed by ID.
	for _, c := range []struct {
		n         int
		acct, reg string
	}{
		{4, account, region},
		{1, account, region},
		{6, account2, region},
		{3, account, region},
		{2, account, region2},
		{5, account, region},
	} {
		mustCreateCustomKeyStore(t, s, newCustomKeyStore(c.n, c.acct, c.reg))
	}
	list := func(acct, reg, after string, limit int) []string {
		t.Helper()
		cs, err := s.ListCustomKeyStores(ctx, acct, reg, after, limit)
		if err != nil {
			t.Fatalf("ListCustomKeyStores: %v", err)
		}
		for _, c := range cs {
			if acct != "" && (c.Account != acct || c.Region != reg) {
				t.Errorf("ListCustomKeyStores(%s, %s) returned %+v", acct, reg, c)
			}
		}
		return customKeyStoreIDs(cs)
	}
	for _, c := range []struct {
		acct, reg, after string
		limit            int
		want             []string
	}{
		{account, region, "", 100, []string{cksID(1), cksID(3), cksID(4), cksID(5)}},
		{account, region, "", 0, []string{cksID(1), cksID(3), cksID(4), cksID(5)}},
		{account, region, "", 2, []string{cksID(1), cksID(3)}},
		{account, region, cksID(3), 2, []string{cksID(4), cksID(5)}},
		{account, region, cksID(5), 2, nil},
		{account, region, cksID(2), 1, []string{cksID(3)}},
		{account, region2, "", 100, []string{cksID(2)}},
		{account2, region, "", 100, []string{cksID(6)}},
		{account2, region2, "", 100, nil},
		// Every account and region; the region is ignored.
		{"", "", "", 100, []string{cksID(1), cksID(2), cksID(3), cksID(4), cksID(5), cksID(6)}},
		{"", region2, "", 0, []string{cksID(1), cksID(2), cksID(3), cksID(4), cksID(5), cksID(6)}},
		{"", "", "", 4, []string{cksID(1), cksID(2), cksID(3), cksID(4)}},
		{"", "", cksID(4), 4, []string{cksID(5), cksID(6)}},
	} {
		checkStrings(t, fmt.Sprintf("ListCustomKeyStores(%q, %q, after %q, limit %d)", c.acct, c.reg, c.after, c.limit),
			list(c.acct, c.reg, c.after, c.limit), c.want)
	}

	cs, err := s.ListCustomKeyStores(ctx, account2, region, "", 1)
	if err != nil {
		t.Fatalf("ListCustomKeyStores: %v", err)
	}
	if len(cs) != 1 {
		t.Fatalf("ListCustomKeyStores returned %d stores, want 1", len(cs))
	}
	checkCustomKeyStore(t, cs[0], newCustomKeyStore(6, account2, region))
}

func testUpdateCustomKeyStore(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	mustCreateCustomKeyStore(t, s, c)
	other := newCustomKeyStore(2, account, region)
	mustCreateCustomKeyStore(t, s, other)

	want := newCustomKeyStore(1, account, region)
	want.Name = "renamed"
	want.ClusterID = "cluster-new"
	want.TrustAnchor = "new anchor"
	want.WrappedPassword = []byte("new password")
	want.ConnectionState = "FAILED"
	want.ConnectionErrorCode = "NETWORK_ERRORS"
	calls := 0
	got, err := s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
		calls++
		checkCustomKeyStore(t, u, c)
		u.Name, u.ClusterID, u.TrustAnchor = want.Name, want.ClusterID, want.TrustAnchor
		u.WrappedPassword = want.WrappedPassword
		u.ConnectionState, u.ConnectionErrorCode = want.ConnectionState, want.ConnectionErrorCode
		// These cannot change: the store ignores the changes.
		u.ID, u.Account, u.Region = cksID(9), account2, region2
		u.Type = "EXTERNAL_KEY_STORE"
		u.Created = base.Add(-time.Hour)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCustomKeyStore: %v", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	checkCustomKeyStore(t, got, want)
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), want)
	_, err = s.GetCustomKeyStore(ctx, cksID(9))
	checkErrIs(t, "GetCustomKeyStore of the ID fn set", err, store.ErrNotFound)

	// The old name and cluster are free again.
	free := newCustomKeyStore(3, account, region)
	free.Name, free.ClusterID = c.Name, c.ClusterID
	mustCreateCustomKeyStore(t, s, free)

	// Back to connected: the error code is cleared.
	want.ConnectionState, want.ConnectionErrorCode = "CONNECTED", ""
	got, err = s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
		u.ConnectionState, u.ConnectionErrorCode = "CONNECTED", ""
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateCustomKeyStore: %v", err)
	}
	checkCustomKeyStore(t, got, want)
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), want)
}

func testUpdateCustomKeyStoreErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	mustCreateCustomKeyStore(t, s, c)
	other := newCustomKeyStore(2, account, region)
	mustCreateCustomKeyStore(t, s, other)

	called := false
	_, err := s.UpdateCustomKeyStore(ctx, cksID(99), func(*store.CustomKeyStore) error {
		called = true
		return nil
	})
	checkErrIs(t, "UpdateCustomKeyStore(missing)", err, store.ErrNotFound)
	if called {
		t.Error("UpdateCustomKeyStore called fn for a missing store")
	}

	fnErr := &updateError{reason: "store is connected"}
	got, err := s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
		u.Name = "must not be written"
		u.ConnectionState = "CONNECTING"
		u.WrappedPassword[0] ^= 0xff
		return fnErr
	})
	if err != error(fnErr) {
		t.Errorf("UpdateCustomKeyStore error = %v (%T), want fn's error itself", err, err)
	}
	if got != nil {
		t.Errorf("UpdateCustomKeyStore returned %+v with an error", got)
	}
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), c)

	for what, change := range map[string]func(*store.CustomKeyStore){
		"name":    func(u *store.CustomKeyStore) { u.Name = other.Name },
		"cluster": func(u *store.CustomKeyStore) { u.ClusterID = other.ClusterID },
	} {
		got, err := s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
			u.TrustAnchor = "must not be written"
			change(u)
			return nil
		})
		checkErrIs(t, "UpdateCustomKeyStore to a taken "+what, err, store.ErrExists)
		if got != nil {
			t.Errorf("UpdateCustomKeyStore to a taken %s returned %+v", what, got)
		}
		checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), c)
	}
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, other.ID), other)

	// Keeping its own name and cluster is no conflict.
	if _, err := s.UpdateCustomKeyStore(ctx, c.ID, func(u *store.CustomKeyStore) error {
		u.ConnectionState = "CONNECTED"
		return nil
	}); err != nil {
		t.Fatalf("UpdateCustomKeyStore after failed updates: %v", err)
	}
}

func testDeleteCustomKeyStore(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newCustomKeyStore(1, account, region)
	mustCreateCustomKeyStore(t, s, c)
	mustCreateCustomKeyStore(t, s, newCustomKeyStore(2, account, region))
	checkErrIs(t, "DeleteCustomKeyStore(missing)", s.DeleteCustomKeyStore(ctx, cksID(99)), store.ErrNotFound)
	checkErrIs(t, `DeleteCustomKeyStore("")`, s.DeleteCustomKeyStore(ctx, ""), store.ErrNotFound)

	// A key of the store, in any state, keeps it.
	k := newKey("k1", account, region)
	k.Origin = "AWS_CLOUDHSM"
	k.CustomKeyStoreID = c.ID
	k.State = "PendingDeletion"
	k.DeletionDate = base.Add(7 * 24 * time.Hour)
	k.PendingWindowDays = 7
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	err := s.DeleteCustomKeyStore(ctx, c.ID)
	checkErrIs(t, "DeleteCustomKeyStore with a key", err, store.ErrInUse)
	if errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteCustomKeyStore with a key: %v is also ErrNotFound", err)
	}
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, c.ID), c)

	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if err := s.DeleteCustomKeyStore(ctx, c.ID); err != nil {
		t.Fatalf("DeleteCustomKeyStore after its key is gone: %v", err)
	}
	_, err = s.GetCustomKeyStore(ctx, c.ID)
	checkErrIs(t, "GetCustomKeyStore after DeleteCustomKeyStore", err, store.ErrNotFound)
	checkErrIs(t, "DeleteCustomKeyStore twice", s.DeleteCustomKeyStore(ctx, c.ID), store.ErrNotFound)
	mustGetCustomKeyStore(t, s, cksID(2))

	// Its name and cluster are free again.
	mustCreateCustomKeyStore(t, s, newCustomKeyStore(1, account, region))
}

func testCountKeysInCustomKeyStore(t *testing.T, s store.Store) {
	ctx := t.Context()
	for n := 1; n <= 2; n++ {
		mustCreateCustomKeyStore(t, s, newCustomKeyStore(n, account, region))
	}
	count := func(id string) int {
		t.Helper()
		n, err := s.CountKeysInCustomKeyStore(ctx, id)
		if err != nil {
			t.Fatalf("CountKeysInCustomKeyStore(%s): %v", id, err)
		}
		return n
	}
	if n := count(cksID(1)); n != 0 {
		t.Errorf("CountKeysInCustomKeyStore of an empty store = %d, want 0", n)
	}
	for i, c := range []struct{ store, state string }{
		{cksID(1), "Enabled"},
		{cksID(1), "Disabled"},
		{cksID(1), "PendingDeletion"},
		{cksID(2), "Enabled"},
		{"", "Enabled"},
	} {
		k := newKey(fmt.Sprintf("k%d", i), account, region)
		k.CustomKeyStoreID, k.State = c.store, c.state
		mustCreateKey(t, s, k, nil)
	}
	for id, want := range map[string]int{cksID(1): 3, cksID(2): 1, cksID(99): 0, "": 0} {
		if n := count(id); n != want {
			t.Errorf("CountKeysInCustomKeyStore(%q) = %d, want %d", id, n, want)
		}
	}
	if _, err := s.UpdateKey(ctx, "k0", func(k *store.Key) error {
		k.CustomKeyStoreID = cksID(2)
		return nil
	}); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	for id, want := range map[string]int{cksID(1): 1, cksID(2): 2} {
		if n := count(id); n != want {
			t.Errorf("CountKeysInCustomKeyStore(%q) after moving and deleting keys = %d, want %d", id, n, want)
		}
	}
}

// testKeyCustomKeyStoreID: Key.CustomKeyStoreID round-trips through every
// way a key is written and read.
func testKeyCustomKeyStoreID(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateCustomKeyStore(t, s, newCustomKeyStore(1, account, region))
	k := newKey("k1", account, region)
	k.Origin = "AWS_CLOUDHSM"
	k.CustomKeyStoreID = cksID(1)
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	plain := newKey("k2", account, region)
	mustCreateKey(t, s, plain, nil)
	checkKey(t, mustGetKey(t, s, "k1"), k)
	checkKey(t, mustGetKey(t, s, "k2"), plain)

	keys, err := s.ListKeys(ctx, account, region, "", 0)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	checkStrings(t, "ListKeys", keyIDs(keys), []string{"k1", "k2"})
	if len(keys) == 2 {
		checkKey(t, keys[0], k)
		checkKey(t, keys[1], plain)
	}

	// UpdateKey keeps it when fn leaves it alone, and writes a change.
	got, err := s.UpdateKey(ctx, "k1", func(c *store.Key) error {
		if c.CustomKeyStoreID != cksID(1) {
			t.Errorf("fn got CustomKeyStoreID %q, want %q", c.CustomKeyStoreID, cksID(1))
		}
		c.Description = "updated"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	k.Description = "updated"
	checkKey(t, got, k)
	checkKey(t, mustGetKey(t, s, "k1"), k)
	got, err = s.UpdateKey(ctx, "k2", func(c *store.Key) error {
		c.CustomKeyStoreID = cksID(1)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	plain.CustomKeyStoreID = cksID(1)
	checkKey(t, got, plain)
	checkKey(t, mustGetKey(t, s, "k2"), plain)

	// RotateKey and ReplaceMaterial write the key as UpdateKey does.
	got, err = s.RotateKey(ctx, "k1", newMaterial("k1", 1), func(c *store.Key) error {
		c.CurrentMaterial = materialID("k1", 1)
		return nil
	})
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	k.CurrentMaterial = materialID("k1", 1)
	checkKey(t, got, k)
	got, err = s.ReplaceMaterial(ctx, "k1", nil, materialID("k1", 0), func(*store.Key) error { return nil })
	if err != nil {
		t.Fatalf("ReplaceMaterial: %v", err)
	}
	checkKey(t, got, k)

	// KeysPendingDeletion reads it too.
	if _, err := s.UpdateKey(ctx, "k1", func(c *store.Key) error {
		c.State, c.DeletionDate, c.PendingWindowDays = "PendingDeletion", base, 7
		return nil
	}); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	keys, err = s.KeysPendingDeletion(ctx, base)
	if err != nil {
		t.Fatalf("KeysPendingDeletion: %v", err)
	}
	if len(keys) != 1 || keys[0].CustomKeyStoreID != cksID(1) {
		t.Errorf("KeysPendingDeletion = %+v, want k1 in %s", keys, cksID(1))
	}
}

func testWrappedCustomKeyStorePassword(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, c := range []*store.CustomKeyStore{
		newCustomKeyStore(3, account, region),
		newCustomKeyStore(1, account2, region2),
		newCustomKeyStore(2, account, region2),
	} {
		mustCreateCustomKeyStore(t, s, c)
	}
	ws := listAllWrapped(t, s, store.WrappedCustomKeyStorePassword, 2)
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
		c := mustGetCustomKeyStore(t, s, w.ID)
		if w.Kind != store.WrappedCustomKeyStorePassword || w.KeyID != "" || w.Account != c.Account || w.Region != c.Region ||
			!bytes.Equal(w.Blob, c.WrappedPassword) {
			t.Errorf("custom key store password %+v (%s/%s): blob %q, stored %+v", w.WrappedRef, w.Account, w.Region, w.Blob, c)
		}
	}
	checkStrings(t, "custom key store passwords", ids, []string{cksID(1), cksID(2), cksID(3)})
	if len(ws) != 3 {
		t.FailNow()
	}

	// Compare and set.
	w := ws[1]
	checkConflictOnly(t, "UpdateWrapped with a stale old password",
		s.UpdateWrapped(ctx, w.WrappedRef, []byte("not the blob"), []byte("x")))
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, w.ID), newCustomKeyStore(2, account, region2))
	if err := s.UpdateWrapped(ctx, w.WrappedRef, w.Blob, []byte("rewrapped")); err != nil {
		t.Fatalf("UpdateWrapped: %v", err)
	}
	want := newCustomKeyStore(2, account, region2)
	want.WrappedPassword = []byte("rewrapped")
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, w.ID), want)
	checkConflictOnly(t, "second UpdateWrapped with the replaced password",
		s.UpdateWrapped(ctx, w.WrappedRef, w.Blob, []byte("newer")))
	missing := store.WrappedRef{Kind: store.WrappedCustomKeyStorePassword, ID: cksID(99)}
	checkErrIs(t, "UpdateWrapped of a missing custom key store",
		s.UpdateWrapped(ctx, missing, w.Blob, []byte("x")), store.ErrNotFound)
	// The other stores kept their passwords.
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, cksID(1)), newCustomKeyStore(1, account2, region2))
	checkCustomKeyStore(t, mustGetCustomKeyStore(t, s, cksID(3)), newCustomKeyStore(3, account, region))

	// Paging after a position past every store, and a deleted store.
	if page, err := s.ListWrapped(ctx, store.WrappedCustomKeyStorePassword, ws[2].WrappedRef, 10); err != nil || len(page) != 0 {
		t.Errorf("ListWrapped after the last store = %v, %v; want none", page, err)
	}
	if err := s.DeleteCustomKeyStore(ctx, cksID(1)); err != nil {
		t.Fatal(err)
	}
	ids = nil
	for _, w := range listAllWrapped(t, s, store.WrappedCustomKeyStorePassword, 10) {
		ids = append(ids, w.ID)
	}
	checkStrings(t, "custom key store passwords after a delete", ids, []string{cksID(2), cksID(3)})
}
