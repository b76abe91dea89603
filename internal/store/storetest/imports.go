package storetest

import (
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Imported key material: the expiry fields of a key, ReplaceMaterial,
// KeysWithExpiredMaterial and import parameters.

func testImportFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	k.Origin = "EXTERNAL"
	k.MaterialValidTo = base.Add(time.Hour)
	k.ExpirationModel = "KEY_MATERIAL_EXPIRES"
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	checkKey(t, mustGetKey(t, s, "k1"), k)
	got, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.MaterialValidTo = time.Time{}
		k.ExpirationModel = "KEY_MATERIAL_DOES_NOT_EXPIRE"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	k.MaterialValidTo, k.ExpirationModel = time.Time{}, "KEY_MATERIAL_DOES_NOT_EXPIRE"
	checkKey(t, got, k)
	checkKey(t, mustGetKey(t, s, "k1"), k)
}

func testReplaceMaterial(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	// Remove only.
	_, err := s.ReplaceMaterial(ctx, "k1", nil, materialID("k1", 0), func(k *store.Key) error {
		k.State = "PendingImport"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetMaterial(ctx, "k1", materialID("k1", 0))
	checkErrIs(t, "removed material", err, store.ErrNotFound)
	// Add back, removing a missing one is fine.
	_, err = s.ReplaceMaterial(ctx, "k1", newMaterial("k1", 0), materialID("k1", 0), func(k *store.Key) error {
		k.State = "Enabled"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Replace in place (same ID).
	again := newMaterial("k1", 0)
	again.Wrapped = []byte("rewrapped")
	if _, err := s.ReplaceMaterial(ctx, "k1", again, again.ID, func(*store.Key) error { return nil }); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMaterial(ctx, "k1", again.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMaterial(t, m, again)
	// fn's error writes nothing.
	refused := &updateError{"no"}
	_, err = s.ReplaceMaterial(ctx, "k1", nil, again.ID, func(k *store.Key) error { return refused })
	if err != refused {
		t.Fatalf("ReplaceMaterial returned %v, want fn's error", err)
	}
	if _, err := s.GetMaterial(ctx, "k1", again.ID); err != nil {
		t.Errorf("material removed by a refused ReplaceMaterial: %v", err)
	}
	if k := mustGetKey(t, s, "k1"); k.State != "Enabled" {
		t.Errorf("state = %s, want Enabled", k.State)
	}
}

// testPromotePendingMaterial: imported material pending rotation is stored
// with RotationPending and promoted by ReplaceMaterial with the same ID,
// which then lists last with its new rotation type and date.
func testPromotePendingMaterial(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	pending := newMaterial("k1", 1)
	pending.RotationType = store.RotationPending
	if _, err := s.ReplaceMaterial(ctx, "k1", pending, "", func(*store.Key) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMaterial(ctx, newMaterial("k1", 2)); err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMaterial(ctx, "k1", pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMaterial(t, m, pending)
	if m.RotationType != store.RotationPending {
		t.Errorf("pending material rotation type = %q, want %q", m.RotationType, store.RotationPending)
	}
	promoted := *pending
	promoted.RotationType = store.RotationOnDemand
	promoted.Created = base.Add(10 * time.Hour)
	k, err := s.ReplaceMaterial(ctx, "k1", &promoted, pending.ID, func(k *store.Key) error {
		k.CurrentMaterial = promoted.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if k.CurrentMaterial != promoted.ID || mustGetKey(t, s, "k1").CurrentMaterial != promoted.ID {
		t.Errorf("current material = %s, want %s", k.CurrentMaterial, promoted.ID)
	}
	ms, err := s.ListMaterials(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	checkStrings(t, "materials", ids, []string{materialID("k1", 0), materialID("k1", 2), promoted.ID})
	if len(ms) == 3 {
		checkMaterial(t, ms[2], &promoted)
		if ms[2].RotationType != store.RotationOnDemand {
			t.Errorf("promoted material rotation type = %q, want %q", ms[2].RotationType, store.RotationOnDemand)
		}
	}
}

func testKeysWithExpiredMaterial(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id string, validTo time.Time, state string) {
		k := newKey(id, account, region)
		k.Origin = "EXTERNAL"
		k.MaterialValidTo = validTo
		k.State = state
		mustCreateKey(t, s, k, nil)
	}
	mk("a", base.Add(2*time.Hour), "Enabled")
	mk("b", base.Add(time.Hour), "Disabled")
	mk("c", base.Add(5*time.Hour), "Enabled")
	mk("d", time.Time{}, "Enabled")
	mk("e", base, "PendingImport")
	keys, err := s.KeysWithExpiredMaterial(ctx, base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "KeysWithExpiredMaterial", keyIDs(keys), []string{"b", "a"})
}

func testImportParams(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	p := &store.ImportParams{KeyID: "k1", ID: materialID("token", 1), WrappedPrivateKey: []byte("wrapped\x00private"),
		WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048", Created: base, ValidTo: base.Add(24 * time.Hour)}
	if err := s.PutImportParams(ctx, p); err != nil {
		t.Fatal(err)
	}
	checkErrIs(t, "PutImportParams twice", s.PutImportParams(ctx, p), store.ErrExists)
	missing := *p
	missing.KeyID = "missing"
	checkErrIs(t, "PutImportParams of a missing key", s.PutImportParams(ctx, &missing), store.ErrNotFound)
	got, err := s.GetImportParams(ctx, "k1", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkTime(t, "Created", got.Created, p.Created)
	checkTime(t, "ValidTo", got.ValidTo, p.ValidTo)
	if string(got.WrappedPrivateKey) != string(p.WrappedPrivateKey) || got.WrappingAlgorithm != p.WrappingAlgorithm ||
		got.WrappingKeySpec != p.WrappingKeySpec || got.KeyID != "k1" || got.ID != p.ID {
		t.Errorf("GetImportParams = %+v, want %+v", got, p)
	}
	_, err = s.GetImportParams(ctx, "k2", p.ID)
	checkErrIs(t, "GetImportParams of another key", err, store.ErrNotFound)

	later := *p
	later.ID = materialID("token", 2)
	later.ValidTo = base.Add(48 * time.Hour)
	if err := s.PutImportParams(ctx, &later); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredImportParams(ctx, base.Add(24*time.Hour-time.Millisecond)); n != 0 || err != nil {
		t.Errorf("DeleteExpiredImportParams before expiry = %d, %v; want 0", n, err)
	}
	if n, err := s.DeleteExpiredImportParams(ctx, base.Add(24*time.Hour)); n != 1 || err != nil {
		t.Errorf("DeleteExpiredImportParams = %d, %v; want 1", n, err)
	}
	_, err = s.GetImportParams(ctx, "k1", p.ID)
	checkErrIs(t, "GetImportParams of expired parameters", err, store.ErrNotFound)
	p = &later
	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetImportParams(ctx, "k1", p.ID)
	checkErrIs(t, "GetImportParams after DeleteKey", err, store.ErrNotFound)
}
