package storetest

import (
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// mrkKey returns the key of multi-Region key mrk in reg, whose primary is in
// primary: an ID of its own (what the service derives from the shared key
// id and the Region), the shared MultiRegionKeyID.
func mrkKey(mrk, reg, primary string) *store.Key {
	k := newKey(mrk+"/"+reg, account, reg)
	k.MultiRegionKeyID = mrk
	k.PrimaryRegion = primary
	return k
}

// testMultiRegionKeys: the related keys of a multi-Region key are rows of
// their own that share MultiRegionKeyID, which never changes;
// ListMultiRegionKeys finds them (and only them) in Region order; one
// transaction can move PrimaryRegion on all of them.
func testMultiRegionKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	const mrk, other = "mrk-0123456789abcdef0123456789abcdef", "mrk-fedcba9876543210fedcba9876543210"
	keys := []*store.Key{mrkKey(mrk, region, region), mrkKey(mrk, "ap-south-1", region), mrkKey(mrk, region2, region)}
	for _, k := range keys {
		mustCreateKey(t, s, k, newMaterial(k.ID, 0))
		checkKey(t, mustGetKey(t, s, k.ID), k)
	}
	mustCreateKey(t, s, mrkKey(other, region, region), nil)
	mustCreateKey(t, s, newKey("single", account, region), nil)

	list := func(id string) []string {
		t.Helper()
		ks, err := s.ListMultiRegionKeys(ctx, id)
		if err != nil {
			t.Fatalf("ListMultiRegionKeys(%s): %v", id, err)
		}
		return keyIDs(ks)
	}
	checkStrings(t, "ListMultiRegionKeys", list(mrk), []string{mrk + "/ap-south-1", mrk + "/" + region2, mrk + "/" + region})
	checkStrings(t, "ListMultiRegionKeys of another", list(other), []string{other + "/" + region})
	checkStrings(t, "ListMultiRegionKeys of none", list("mrk-00000000000000000000000000000000"), nil)
	if _, err := s.ListMultiRegionKeys(ctx, ""); err == nil {
		t.Error("ListMultiRegionKeys of the empty id succeeded: single-Region keys have no multi-Region key id")
	}
	// ListKeys shows each Region's own key.
	ks, err := s.ListKeys(ctx, account, region2, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListKeys of "+region2, keyIDs(ks), []string{mrk + "/" + region2})

	// The primary moves to ap-south-1 on every related key, or on none.
	err = s.Update(ctx, func(tx store.Tx) error {
		for _, k := range keys {
			if _, err := tx.UpdateKey(ctx, k.ID, func(c *store.Key) error { c.PrimaryRegion = "ap-south-1"; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got := mustGetKey(t, s, k.ID).PrimaryRegion; got != "ap-south-1" {
			t.Errorf("%s: PrimaryRegion %s after the move", k.ID, got)
		}
	}
	_, err = s.UpdateKey(ctx, keys[0].ID, func(c *store.Key) error { c.MultiRegionKeyID = other; return nil })
	if err == nil {
		t.Error("UpdateKey changing MultiRegionKeyID succeeded, want an error")
	}
	if err := s.DeleteKey(ctx, keys[1].ID, mustGetKey(t, s, keys[1].ID).Revision); err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListMultiRegionKeys after a deletion", list(mrk), []string{mrk + "/" + region2, mrk + "/" + region})
}

// testKeyUsage: RecordKeyUsage keeps the latest use of each key, whatever
// order batches arrive in, skips keys that do not exist, changes no
// Revision and records no change; the use goes with its key.
func testKeyUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	since, err := s.KeyUsageSince(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if since.Before(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) || since.After(time.Now()) || since.Location() != time.UTC ||
		since.Nanosecond() != 0 {
		t.Errorf("KeyUsageSince = %v: want a whole second in UTC, between the schema's release and now", since)
	}
	if again, err := s.KeyUsageSince(ctx); err != nil || !again.Equal(since) {
		t.Errorf("KeyUsageSince again = %v, %v; want %v", again, err, since)
	}

	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	_, err = s.GetKeyUsage(ctx, "k1")
	checkErrIs(t, "GetKeyUsage of an unused key", err, store.ErrNotFound)
	rev := mustGetKey(t, s, "k1").Revision

	use := func(keyID, op string, at time.Time) *store.KeyUse {
		return &store.KeyUse{KeyID: keyID, Operation: op, Time: at, RequestID: "req-" + op, EventID: "event-" + op}
	}
	checkChanges(t, s, "RecordKeyUsage", func() error {
		return s.RecordKeyUsage(ctx, []*store.KeyUse{use("k1", "Encrypt", base), use("k2", "Sign", base.Add(time.Second)), use("gone", "Decrypt", base)})
	})
	// An earlier use arriving later (from another node) changes nothing; a
	// later one replaces it.
	if err := s.RecordKeyUsage(ctx, []*store.KeyUse{use("k1", "Decrypt", base.Add(-time.Minute))}); err != nil {
		t.Fatal(err)
	}
	check := func(keyID string, want *store.KeyUse) {
		t.Helper()
		got, err := s.GetKeyUsage(ctx, keyID)
		if err != nil {
			t.Fatalf("GetKeyUsage(%s): %v", keyID, err)
		}
		checkTime(t, "use of "+keyID, got.Time, want.Time)
		if got.KeyID != want.KeyID || got.Operation != want.Operation || got.RequestID != want.RequestID || got.EventID != want.EventID {
			t.Errorf("GetKeyUsage(%s) = %+v, want %+v", keyID, got, want)
		}
	}
	check("k1", use("k1", "Encrypt", base))
	check("k2", use("k2", "Sign", base.Add(time.Second)))
	if err := s.RecordKeyUsage(ctx, []*store.KeyUse{use("k1", "GenerateDataKey", base.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	check("k1", use("k1", "GenerateDataKey", base.Add(time.Hour)))
	if got := mustGetKey(t, s, "k1").Revision; got != rev {
		t.Errorf("Revision %d after recording usage, want %d", got, rev)
	}
	_, err = s.GetKeyUsage(ctx, "gone")
	checkErrIs(t, "GetKeyUsage of a key that never existed", err, store.ErrNotFound)
	if err := s.RecordKeyUsage(ctx, nil); err != nil {
		t.Errorf("RecordKeyUsage of nothing: %v", err)
	}

	// The use goes with its key: a key created again with the same ID has
	// none.
	if err := s.DeleteKey(ctx, "k1", rev); err != nil {
		t.Fatal(err)
	}
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	_, err = s.GetKeyUsage(ctx, "k1")
	checkErrIs(t, "GetKeyUsage of a recreated key", err, store.ErrNotFound)

	// A restore carries the start of tracking of the store it restores
	// (to the nanosecond the snapshot gives), recording no change.
	restoredSince := base.Add(-400*24*time.Hour + 123)
	checkChanges(t, s, "SetKeyUsageSince", func() error { return s.SetKeyUsageSince(ctx, restoredSince) })
	if got, err := s.KeyUsageSince(ctx); err != nil || !got.Equal(restoredSince) {
		t.Errorf("KeyUsageSince after SetKeyUsageSince(%v) = %v, %v", restoredSince, got, err)
	}
	if err := s.SetKeyUsageSince(ctx, time.Time{}); err == nil {
		t.Error("SetKeyUsageSince of the zero time succeeded, want an error")
	}
}
