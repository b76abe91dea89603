// Package storetest is the conformance suite of package store: every backend
// runs it from its own tests, so that all backends behave alike.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := mybackend.Open(t.Context(), ...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Besides the contracts of store.Store, the suite pins down these
// behaviours, which callers may rely on:
//
//   - Times round-trip exactly at millisecond precision (finer precision is
//     backend-specific) and come back in UTC. The zero time round-trips.
//   - Tags keep their order; no tags may come back as nil or empty.
//   - UpdateKey and UpdateCustomKeyStore do not call fn for a missing
//     record (store.ErrNotFound).
//   - Records returned share no memory with the store or with each other.
//   - A call that fails inside Update writes nothing, as outside, and fn may
//     go on and commit the rest.
//   - The change feed holds one change per row written: ReplaceMaterial
//     removing a material and adding one records two ChangeMaterial;
//     DeleteKey records one per material, alias and grant it removes. The
//     order of the changes of one write is the backend's. A ChangeKey's
//     KeyID is the key's ID. Account and Region are the key's for its key,
//     materials and grants, the alias's own for an alias, the custom key
//     store's own for it, the account alone for an access key, and empty
//     for a setting. Import parameters and key usage, cached nowhere,
//     record nothing.
//   - UpdateWrapped records the material (ChangeMaterial), access key or
//     custom key store it rewraps, and a rewrapped custom key store password
//     is one more revision of the custom key store.
//   - The enumerations (ListAllKeys, ListAllAccessKeys, ListSettings,
//     ListImportParams, ListAliasesOfKey) sort in byte order ("B" before
//     "a") whatever the database's collation, list records in every state
//     and, inside Update, see its writes; a write outside the Update waits
//     until it ends, so that one Update reads one state of the store (what
//     a backup relies on).
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// the test it is given and arrange for the store to be closed (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGetKey", testCreateGetKey},
		{"CreateKeyExists", testCreateKeyExists},
		{"CreateKeyWithMaterialIsAtomic", testCreateKeyAtomic},
		{"GetKeyNotFound", testGetKeyNotFound},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"Tags", testTags},
		{"ReturnedRecordsAreCopies", testCopies},
		{"UpdateKey", testUpdateKey},
		{"UpdateKeyNotFound", testUpdateKeyNotFound},
		{"UpdateKeyFnErrorRollsBack", testUpdateKeyRollback},
		{"UpdateKeyImmutableFields", testUpdateKeyImmutable},
		{"UpdateKeyConcurrent", testUpdateKeyConcurrent},
		{"DeleteKey", testDeleteKey},
		{"DeleteKeyCascades", testDeleteKeyCascades},
		{"ListKeys", testListKeys},
		{"ListKeysPagination", testListKeysPagination},
		{"KeysPendingDeletion", testKeysPendingDeletion},
		{"Materials", testMaterials},
		{"MaterialErrors", testMaterialErrors},
		{"Aliases", testAliases},
		{"AliasErrors", testAliasErrors},
		{"UpdateAlias", testUpdateAlias},
		{"ListAliases", testListAliases},
		{"AccessKeys", testAccessKeys},
		{"CountKeysByState", testCountKeysByState},
		{"CountKeysOutsideRegions", testCountKeysOutsideRegions},
		{"Grants", testGrants},
		{"RotationFields", testRotationFields},
		{"RotateKey", testRotateKey},
		{"RotateKeyRefusedWritesNothing", testRotateKeyRefused},
		{"RotateKeyConcurrentCompareAndSet", testRotateKeyConcurrent},
		{"KeysDueForRotation", testKeysDueForRotation},
		{"ImportFields", testImportFields},
		{"ReplaceMaterial", testReplaceMaterial},
		{"PromotePendingMaterial", testPromotePendingMaterial},
		{"KeysWithExpiredMaterial", testKeysWithExpiredMaterial},
		{"ImportParams", testImportParams},
		{"Wrapped", testWrapped},
		{"CustomKeyStores", testCustomKeyStores},
		{"CustomKeyStoreConflicts", testCustomKeyStoreConflicts},
		{"ListCustomKeyStores", testListCustomKeyStores},
		{"UpdateCustomKeyStore", testUpdateCustomKeyStore},
		{"UpdateCustomKeyStoreErrors", testUpdateCustomKeyStoreErrors},
		{"DeleteCustomKeyStore", testDeleteCustomKeyStore},
		{"CountKeysInCustomKeyStore", testCountKeysInCustomKeyStore},
		{"KeyCustomKeyStoreID", testKeyCustomKeyStoreID},
		{"WrappedCustomKeyStorePassword", testWrappedCustomKeyStorePassword},
		{"KeyRevisions", testKeyRevisions},
		{"DeleteKeyCompareAndSet", testDeleteKeyCompareAndSet},
		{"AliasRevisions", testAliasRevisions},
		{"AliasCompareAndSet", testAliasCompareAndSet},
		{"CustomKeyStoreRevisions", testCustomKeyStoreRevisions},
		{"Settings", testSettings},
		{"ChangeFeed", testChangeFeed},
		{"ChangeFeedFailedWrites", testChangeFeedFailedWrites},
		{"ChangesPaging", testChangesPaging},
		{"PruneChanges", testPruneChanges},
		{"UpdateCommits", testUpdateCommits},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"UpdateFailedCallInside", testUpdateFailedCallInside},
		{"UpdateConcurrentCompareAndSet", testUpdateConcurrentCompareAndSet},
		{"ListAllKeys", testListAllKeys},
		{"ListImportParams", testListImportParams},
		{"ListAliasesOfKey", testListAliasesOfKey},
		{"ListAllAccessKeys", testListAllAccessKeys},
		{"ListSettings", testListSettings},
		{"EnumerateInUpdate", testEnumerateInUpdate},
		{"MultiRegionKeys", testMultiRegionKeys},
		{"KeyUsage", testKeyUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

const (
	account  = "111122223333"
	account2 = "444455556666"
	region   = "us-east-1"
	region2  = "eu-west-1"
)

// base is a fixed, millisecond-precise instant the tests build times from.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// newKey returns a key with every field set.
func newKey(id, acct, reg string) *store.Key {
	return &store.Key{
		ID:              id,
		Account:         acct,
		Region:          reg,
		Description:     "test key " + id + ` with "quotes", 'apostrophes' and ünïcödé`,
		KeySpec:         "SYMMETRIC_DEFAULT",
		KeyUsage:        "ENCRYPT_DECRYPT",
		Origin:          "AWS_KMS",
		KeyManager:      "CUSTOMER",
		State:           "Enabled",
		Created:         base,
		Policy:          `{"Version":"2012-10-17","Statement":[]}`,
		Tags:            []store.Tag{{Key: "team", Value: "crypto"}, {Key: "env", Value: "test"}},
		CurrentMaterial: materialID(id, 0),
	}
}

// materialID returns a deterministic 64-hex-character material ID.
func materialID(keyID string, n int) string {
	s := fmt.Sprintf("%x", fmt.Sprintf("%s/%d", keyID, n))
	for len(s) < 64 {
		s += "0"
	}
	return s[:64]
}

func newMaterial(keyID string, n int) *store.Material {
	return &store.Material{
		KeyID:   keyID,
		ID:      materialID(keyID, n),
		Wrapped: []byte(fmt.Sprintf("wrapped\x00\xff material %d of %s", n, keyID)),
		Created: base.Add(time.Duration(n) * time.Hour),
	}
}

func mustCreateKey(t *testing.T, s store.Store, k *store.Key, m *store.Material) {
	t.Helper()
	if err := s.CreateKey(t.Context(), k, m); err != nil {
		t.Fatalf("CreateKey(%s): %v", k.ID, err)
	}
}

func mustGetKey(t *testing.T, s store.Store, id string) *store.Key {
	t.Helper()
	k, err := s.GetKey(t.Context(), id)
	if err != nil {
		t.Fatalf("GetKey(%s): %v", id, err)
	}
	return k
}

// checkTime fails unless got is want, in UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// checkKey fails unless got equals want field by field, comparing times
// with Equal and treating nil and empty tags alike. A want.Revision of 0
// (the tests that build records with newKey) matches any revision; the
// revision tests set it.
func checkKey(t *testing.T, got, want *store.Key) {
	t.Helper()
	if got == nil {
		t.Fatalf("key is nil, want %s", want.ID)
	}
	checkTime(t, "key "+want.ID+" Created", got.Created, want.Created)
	checkTime(t, "key "+want.ID+" DeletionDate", got.DeletionDate, want.DeletionDate)
	checkTime(t, "key "+want.ID+" NextRotation", got.NextRotation, want.NextRotation)
	checkTime(t, "key "+want.ID+" MaterialValidTo", got.MaterialValidTo, want.MaterialValidTo)
	g, w := *got, *want
	if w.Revision == 0 {
		g.Revision = 0
	}
	g.Created, w.Created = time.Time{}, time.Time{}
	g.DeletionDate, w.DeletionDate = time.Time{}, time.Time{}
	g.NextRotation, w.NextRotation = time.Time{}, time.Time{}
	g.MaterialValidTo, w.MaterialValidTo = time.Time{}, time.Time{}
	if len(g.Tags) == 0 {
		g.Tags = nil
	}
	if len(w.Tags) == 0 {
		w.Tags = nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("key mismatch:\n got %+v\nwant %+v", g, w)
	}
}

func checkMaterial(t *testing.T, got, want *store.Material) {
	t.Helper()
	if got == nil {
		t.Fatalf("material is nil, want %s", want.ID)
	}
	checkTime(t, "material "+want.ID+" Created", got.Created, want.Created)
	if got.KeyID != want.KeyID || got.ID != want.ID || string(got.Wrapped) != string(want.Wrapped) {
		t.Errorf("material = {%s %s %q}, want {%s %s %q}", got.KeyID, got.ID, got.Wrapped, want.KeyID, want.ID, want.Wrapped)
	}
}

// checkAlias is checkKey for aliases.
func checkAlias(t *testing.T, got, want *store.Alias) {
	t.Helper()
	if got == nil {
		t.Fatalf("alias is nil, want %s", want.Name)
	}
	if want.Revision != 0 && got.Revision != want.Revision {
		t.Errorf("alias %s Revision = %d, want %d", want.Name, got.Revision, want.Revision)
	}
	checkTime(t, "alias "+want.Name+" Created", got.Created, want.Created)
	checkTime(t, "alias "+want.Name+" Updated", got.Updated, want.Updated)
	if got.Account != want.Account || got.Region != want.Region || got.Name != want.Name || got.KeyID != want.KeyID {
		t.Errorf("alias = %+v, want %+v", got, want)
	}
}

func checkErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want %v", what, err, target)
	}
}

// checkConflictOnly checks that err is a refused compare and set of a
// record that still exists: ErrConflict, and not ErrNotFound.
func checkConflictOnly(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: error = %v, want ErrConflict only", what, err)
	}
}

func keyIDs(keys []*store.Key) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

func aliasNames(aliases []*store.Alias) []string {
	names := make([]string, len(aliases))
	for i, a := range aliases {
		names[i] = a.Name
	}
	return names
}

func checkStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func testCreateGetKey(t *testing.T, s store.Store) {
	k := newKey("k1", account, region)
	k.Policy = strings.Repeat(`{"Sid":"x"}`, 3000) // a policy of 32 KiB
	mustCreateKey(t, s, k, newMaterial("k1", 0))
	checkKey(t, mustGetKey(t, s, "k1"), k)
	m, err := s.GetMaterial(t.Context(), "k1", materialID("k1", 0))
	if err != nil {
		t.Fatalf("GetMaterial: %v", err)
	}
	checkMaterial(t, m, newMaterial("k1", 0))

	// A key without material, with empty optional fields.
	bare := &store.Key{ID: "k2", Account: account, Region: region, State: "PendingImport", Created: base}
	mustCreateKey(t, s, bare, nil)
	checkKey(t, mustGetKey(t, s, "k2"), bare)
}

func testCreateKeyExists(t *testing.T, s store.Store) {
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	for _, k := range []*store.Key{newKey("k1", account, region), newKey("k1", account2, region2)} {
		err := s.CreateKey(t.Context(), k, nil)
		checkErrIs(t, "CreateKey of a taken ID", err, store.ErrExists)
	}
	checkKey(t, mustGetKey(t, s, "k1"), newKey("k1", account, region))
}

func testCreateKeyAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))

	// The key exists: the new material must not be stored either.
	err := s.CreateKey(ctx, newKey("k1", account, region), newMaterial("k1", 1))
	checkErrIs(t, "CreateKey of a taken ID", err, store.ErrExists)
	_, err = s.GetMaterial(ctx, "k1", materialID("k1", 1))
	checkErrIs(t, "GetMaterial after a failed CreateKey", err, store.ErrNotFound)
}

func testGetKeyNotFound(t *testing.T, s store.Store) {
	_, err := s.GetKey(t.Context(), "missing")
	checkErrIs(t, "GetKey(missing)", err, store.ErrNotFound)
	_, err = s.GetKey(t.Context(), "")
	checkErrIs(t, `GetKey("")`, err, store.ErrNotFound)
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	est := time.FixedZone("EST", -5*3600)
	cases := []struct {
		created, deletion time.Time
	}{
		{base, time.Time{}},
		{base.In(est), base.Add(30 * 24 * time.Hour).In(est)},
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
		{time.Date(1969, 7, 20, 20, 17, 40, 1_000_000, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)},
		// The current time, in the local zone.
		{time.Now().Truncate(time.Millisecond), time.Time{}},
	}
	for i, c := range cases {
		k := newKey(fmt.Sprintf("k%d", i), account, region)
		k.Created = c.created
		k.DeletionDate = c.deletion
		mustCreateKey(t, s, k, nil)
		checkKey(t, mustGetKey(t, s, k.ID), k)
	}

	m := newMaterial("k0", 7)
	m.Created = base.In(est)
	if err := s.AddMaterial(ctx, m); err != nil {
		t.Fatalf("AddMaterial: %v", err)
	}
	gm, err := s.GetMaterial(ctx, m.KeyID, m.ID)
	if err != nil {
		t.Fatalf("GetMaterial: %v", err)
	}
	checkMaterial(t, gm, m)

	a := &store.Alias{Account: account, Region: region, Name: "alias/t", KeyID: "k0", Created: base.In(est), Updated: base.Add(time.Millisecond)}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	ga, err := s.GetAlias(ctx, account, region, a.Name)
	if err != nil {
		t.Fatalf("GetAlias: %v", err)
	}
	checkAlias(t, ga, a)

	ak := &store.AccessKey{ID: "AKIATIME", Account: account, PrincipalARN: "arn:aws:iam::111122223333:root", WrappedSecret: []byte{1}, Created: base.In(est)}
	if err := s.PutAccessKey(ctx, ak); err != nil {
		t.Fatalf("PutAccessKey: %v", err)
	}
	gak, err := s.GetAccessKey(ctx, ak.ID)
	if err != nil {
		t.Fatalf("GetAccessKey: %v", err)
	}
	checkTime(t, "access key Created", gak.Created, ak.Created)
}

func testTags(t *testing.T, s store.Store) {
	cases := map[string][]store.Tag{
		"nil":   nil,
		"empty": {},
		"one":   {{Key: "k", Value: "v"}},
		// Order is kept, not sorted; empty values and odd characters survive.
		"many": {
			{Key: "zeta", Value: ""},
			{Key: "alpha", Value: `"quoted" \ back\slash`},
			{Key: "ключ", Value: "значение 🔑"},
			{Key: "aws:x", Value: "{\"json\":[1,2]}\n"},
		},
	}
	for name, tags := range cases {
		k := newKey("key-"+name, account, region)
		k.Tags = tags
		mustCreateKey(t, s, k, nil)
		checkKey(t, mustGetKey(t, s, k.ID), k)
	}
}

func testCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	mustCreateKey(t, s, k, newMaterial("k1", 0))

	// Changing the caller's records after a write must not matter.
	k.Tags[0].Value = "changed"
	k.Description = "changed"
	got := mustGetKey(t, s, "k1")
	checkKey(t, got, newKey("k1", account, region))

	// Nor must changing a returned record.
	got.Tags[0].Value = "changed again"
	checkKey(t, mustGetKey(t, s, "k1"), newKey("k1", account, region))

	var seen *store.Key
	updated, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		seen = k
		k.Description = "updated"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	seen.Tags[1].Value = "changed by fn after the update"
	if updated.Tags[1].Value != "test" {
		t.Errorf("UpdateKey result shares tags with the copy given to fn")
	}

	m, err := s.GetMaterial(ctx, "k1", materialID("k1", 0))
	if err != nil {
		t.Fatalf("GetMaterial: %v", err)
	}
	m.Wrapped[0] ^= 0xff
	checkMaterialAgain, err := s.GetMaterial(ctx, "k1", materialID("k1", 0))
	if err != nil {
		t.Fatalf("GetMaterial: %v", err)
	}
	checkMaterial(t, checkMaterialAgain, newMaterial("k1", 0))
}

func testUpdateKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := newKey("k1", account, region)
	mustCreateKey(t, s, k, nil)

	want := newKey("k1", account, region)
	want.Description = "new description"
	want.State = "PendingDeletion"
	want.DeletionDate = base.Add(7 * 24 * time.Hour)
	want.PendingWindowDays = 7
	want.Policy = `{"new":"policy"}`
	want.Tags = []store.Tag{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}}
	want.CurrentMaterial = materialID("k1", 1)
	want.KeySpec = "HMAC_256"
	want.KeyUsage = "GENERATE_VERIFY_MAC"
	want.Origin = "EXTERNAL"
	want.KeyManager = "AWS"
	want.Created = base.Add(-time.Hour)

	calls := 0
	got, err := s.UpdateKey(ctx, "k1", func(c *store.Key) error {
		calls++
		checkKey(t, c, k)
		c.Description = want.Description
		c.State = want.State
		c.DeletionDate = want.DeletionDate
		c.PendingWindowDays = want.PendingWindowDays
		c.Policy = want.Policy
		c.Tags = want.Tags
		c.CurrentMaterial = want.CurrentMaterial
		c.KeySpec, c.KeyUsage, c.Origin, c.KeyManager = want.KeySpec, want.KeyUsage, want.Origin, want.KeyManager
		c.Created = want.Created
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	checkKey(t, got, want)
	checkKey(t, mustGetKey(t, s, "k1"), want)

	// Back out of PendingDeletion: zero DeletionDate and no tags.
	want.State = "Disabled"
	want.DeletionDate = time.Time{}
	want.PendingWindowDays = 0
	want.Tags = nil
	got, err = s.UpdateKey(ctx, "k1", func(c *store.Key) error {
		c.State = want.State
		c.DeletionDate = time.Time{}
		c.PendingWindowDays = 0
		c.Tags = nil
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	checkKey(t, got, want)
	checkKey(t, mustGetKey(t, s, "k1"), want)
}

func testUpdateKeyNotFound(t *testing.T, s store.Store) {
	called := false
	_, err := s.UpdateKey(t.Context(), "missing", func(*store.Key) error {
		called = true
		return nil
	})
	checkErrIs(t, "UpdateKey(missing)", err, store.ErrNotFound)
	if called {
		t.Error("UpdateKey called fn for a missing key")
	}
}

// updateError is an error type a caller of UpdateKey would look for with
// errors.As.
type updateError struct{ reason string }

func (e *updateError) Error() string { return "refused: " + e.reason }

func testUpdateKeyRollback(t *testing.T, s store.Store) {
	k := newKey("k1", account, region)
	mustCreateKey(t, s, k, nil)

	fnErr := &updateError{reason: "key is disabled"}
	got, err := s.UpdateKey(t.Context(), "k1", func(c *store.Key) error {
		c.State = "Disabled"
		c.Description = "must not be written"
		c.Tags = append(c.Tags, store.Tag{Key: "x", Value: "y"})
		return fnErr
	})
	if err != error(fnErr) {
		t.Errorf("UpdateKey error = %v (%T), want fn's error itself", err, err)
	}
	var ue *updateError
	if !errors.As(err, &ue) || ue.reason != "key is disabled" {
		t.Errorf("errors.As(%v, *updateError) failed", err)
	}
	if got != nil {
		t.Errorf("UpdateKey returned key %+v with an error", got)
	}
	checkKey(t, mustGetKey(t, s, "k1"), k)

	// The store stays usable for writes after a rollback.
	if _, err := s.UpdateKey(t.Context(), "k1", func(c *store.Key) error {
		c.Description = "after rollback"
		return nil
	}); err != nil {
		t.Fatalf("UpdateKey after a rollback: %v", err)
	}
	if d := mustGetKey(t, s, "k1").Description; d != "after rollback" {
		t.Errorf("Description = %q, want %q", d, "after rollback")
	}
}

func testUpdateKeyImmutable(t *testing.T, s store.Store) {
	k := newKey("k1", account, region)
	mustCreateKey(t, s, k, nil)
	changes := map[string]func(*store.Key){
		"ID":               func(c *store.Key) { c.ID = "k2" },
		"Account":          func(c *store.Key) { c.Account = account2 },
		"Region":           func(c *store.Key) { c.Region = region2 },
		"MultiRegionKeyID": func(c *store.Key) { c.MultiRegionKeyID = "mrk-0123456789abcdef0123456789abcdef" },
	}
	for field, change := range changes {
		_, err := s.UpdateKey(t.Context(), "k1", func(c *store.Key) error {
			c.Description = "must not be written"
			change(c)
			return nil
		})
		if err == nil {
			t.Errorf("UpdateKey changing %s succeeded, want an error", field)
		}
		checkKey(t, mustGetKey(t, s, "k1"), k)
	}
	_, err := s.GetKey(t.Context(), "k2")
	checkErrIs(t, "GetKey(k2)", err, store.ErrNotFound)
}

func testUpdateKeyConcurrent(t *testing.T, s store.Store) {
	const workers = 20
	mustCreateKey(t, s, &store.Key{ID: "k1", Account: account, Region: region, State: "Enabled", Created: base}, nil)

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			_, err := s.UpdateKey(t.Context(), "k1", func(c *store.Key) error {
				c.PendingWindowDays++
				c.Tags = append(c.Tags, store.Tag{Key: fmt.Sprintf("w%02d", i), Value: "x"})
				return nil
			})
			if err != nil {
				errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		})
		// Readers run alongside the writers and must not disturb them.
		wg.Go(func() {
			if _, err := s.GetKey(t.Context(), "k1"); err != nil {
				errs <- fmt.Errorf("reader %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	k := mustGetKey(t, s, "k1")
	if k.PendingWindowDays != workers {
		t.Errorf("PendingWindowDays = %d after %d increments", k.PendingWindowDays, workers)
	}
	var tags []string
	for _, tag := range k.Tags {
		tags = append(tags, tag.Key)
	}
	sort.Strings(tags)
	var want []string
	for i := range workers {
		want = append(want, fmt.Sprintf("w%02d", i))
	}
	checkStrings(t, "tags after concurrent appends", tags, want)
}

func testDeleteKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	_, err := s.GetKey(ctx, "k1")
	checkErrIs(t, "GetKey after DeleteKey", err, store.ErrNotFound)
	checkErrIs(t, "DeleteKey twice", s.DeleteKey(ctx, "k1", 1), store.ErrNotFound)
	checkErrIs(t, "DeleteKey(missing)", s.DeleteKey(ctx, "missing", 1), store.ErrNotFound)
	mustGetKey(t, s, "k2")
}

func testDeleteKeyCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	mustCreateKey(t, s, newKey("k2", account, region), newMaterial("k2", 0))
	if err := s.AddMaterial(ctx, newMaterial("k1", 1)); err != nil {
		t.Fatalf("AddMaterial: %v", err)
	}
	for _, a := range []*store.Alias{
		{Account: account, Region: region, Name: "alias/one", KeyID: "k1", Created: base, Updated: base},
		{Account: account, Region: region, Name: "alias/two", KeyID: "k1", Created: base, Updated: base},
		{Account: account, Region: region, Name: "alias/other", KeyID: "k2", Created: base, Updated: base},
	} {
		if err := s.CreateAlias(ctx, a); err != nil {
			t.Fatalf("CreateAlias(%s): %v", a.Name, err)
		}
	}

	if err := s.DeleteKey(ctx, "k1", mustGetKey(t, s, "k1").Revision); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	for n := range 2 {
		_, err := s.GetMaterial(ctx, "k1", materialID("k1", n))
		checkErrIs(t, "GetMaterial after DeleteKey", err, store.ErrNotFound)
	}
	for _, name := range []string{"alias/one", "alias/two"} {
		_, err := s.GetAlias(ctx, account, region, name)
		checkErrIs(t, "GetAlias after DeleteKey", err, store.ErrNotFound)
	}
	if n, err := s.CountAliases(ctx, "k1"); err != nil || n != 0 {
		t.Errorf("CountAliases after DeleteKey = %d, %v; want 0", n, err)
	}

	// The other key keeps its material and alias.
	if _, err := s.GetMaterial(ctx, "k2", materialID("k2", 0)); err != nil {
		t.Errorf("GetMaterial of another key: %v", err)
	}
	if _, err := s.GetAlias(ctx, account, region, "alias/other"); err != nil {
		t.Errorf("GetAlias of another key: %v", err)
	}

	// A new key with the old ID starts with nothing.
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	_, err := s.GetMaterial(ctx, "k1", materialID("k1", 1))
	checkErrIs(t, "GetMaterial of a re-created key", err, store.ErrNotFound)
	if n, err := s.CountAliases(ctx, "k1"); err != nil || n != 0 {
		t.Errorf("CountAliases of a re-created key = %d, %v; want 0", n, err)
	}
}

func testListKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Inserted out of order; listed by ID, scoped by account and region.
	for _, id := range []string{"c", "a", "b"} {
		mustCreateKey(t, s, newKey(id, account, region), nil)
	}
	mustCreateKey(t, s, newKey("a2", account2, region), nil)
	mustCreateKey(t, s, newKey("a3", account, region2), nil)

	keys, err := s.ListKeys(ctx, account, region, "", 100)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	checkStrings(t, "ListKeys", keyIDs(keys), []string{"a", "b", "c"})
	for _, k := range keys {
		checkKey(t, k, newKey(k.ID, account, region))
	}

	for _, c := range []struct {
		acct, reg string
		want      []string
	}{
		{account2, region, []string{"a2"}},
		{account, region2, []string{"a3"}},
		{account2, region2, nil},
		{"999999999999", region, nil},
	} {
		keys, err := s.ListKeys(ctx, c.acct, c.reg, "", 100)
		if err != nil {
			t.Fatalf("ListKeys(%s, %s): %v", c.acct, c.reg, err)
		}
		checkStrings(t, "ListKeys("+c.acct+", "+c.reg+")", keyIDs(keys), c.want)
	}
}

func testListKeysPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := []string{"k3", "k1", "k5", "k2", "k4"}
	for _, id := range ids {
		mustCreateKey(t, s, newKey(id, account, region), nil)
	}
	list := func(after string, limit int) []string {
		t.Helper()
		keys, err := s.ListKeys(ctx, account, region, after, limit)
		if err != nil {
			t.Fatalf("ListKeys(after %q, limit %d): %v", after, limit, err)
		}
		return keyIDs(keys)
	}

	// Walk in pages of two.
	var all []string
	after := ""
	for range 10 {
		page := list(after, 2)
		if len(page) > 2 {
			t.Fatalf("page of %d keys with limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	checkStrings(t, "keys walked in pages of 2", all, []string{"k1", "k2", "k3", "k4", "k5"})

	for _, c := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 5, []string{"k1", "k2", "k3", "k4", "k5"}}, // limit == count
		{"", 6, []string{"k1", "k2", "k3", "k4", "k5"}}, // limit > count
		{"", 1, []string{"k1"}},                         // limit 1
		{"k1", 1, []string{"k2"}},                       // after is exclusive
		{"k4", 5, []string{"k5"}},                       // last partial page
		{"k5", 5, nil},                                  // after the last
		{"k2x", 2, []string{"k3", "k4"}},                // after need not exist
		{"a", 2, []string{"k1", "k2"}},                  // after before the first
		{"zzz", 2, nil},                                 // after beyond the last
		{"", 0, []string{"k1", "k2", "k3", "k4", "k5"}}, // no limit
		{"k3", -1, []string{"k4", "k5"}},                // no limit
	} {
		checkStrings(t, fmt.Sprintf("ListKeys(after %q, limit %d)", c.after, c.limit), list(c.after, c.limit), c.want)
	}
}

func testKeysPendingDeletion(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := base
	pending := func(id, acct string, date time.Time) {
		t.Helper()
		k := newKey(id, acct, region)
		k.State = "PendingDeletion"
		k.DeletionDate = date
		k.PendingWindowDays = 7
		mustCreateKey(t, s, k, nil)
	}
	pending("due-earlier", account, now.Add(-time.Hour))
	pending("due-now", account, now)
	pending("due-other-account", account2, now.Add(-48*time.Hour))
	pending("not-yet", account, now.Add(time.Millisecond))
	pending("far-future", account, now.Add(30*24*time.Hour))
	// Wrong state, though a deletion date has passed.
	for _, state := range []string{"Enabled", "Disabled", "PendingImport"} {
		k := newKey("state-"+state, account, region)
		k.State = state
		k.DeletionDate = now.Add(-time.Hour)
		mustCreateKey(t, s, k, nil)
	}
	mustCreateKey(t, s, newKey("enabled-no-date", account, region), nil)

	query := func(at time.Time) []string {
		t.Helper()
		keys, err := s.KeysPendingDeletion(ctx, at)
		if err != nil {
			t.Fatalf("KeysPendingDeletion(%v): %v", at, err)
		}
		for _, k := range keys {
			if k.State != "PendingDeletion" {
				t.Errorf("KeysPendingDeletion returned %s in state %s", k.ID, k.State)
			}
		}
		ids := keyIDs(keys)
		sort.Strings(ids)
		return ids
	}
	checkStrings(t, "KeysPendingDeletion(now)", query(now), []string{"due-earlier", "due-now", "due-other-account"})
	checkStrings(t, "KeysPendingDeletion(now-1ms)", query(now.Add(-time.Millisecond)), []string{"due-earlier", "due-other-account"})
	checkStrings(t, "KeysPendingDeletion(now+1ms)", query(now.Add(time.Millisecond)), []string{"due-earlier", "due-now", "due-other-account", "not-yet"})
	checkStrings(t, "KeysPendingDeletion(long ago)", query(now.Add(-365*24*time.Hour)), nil)
	checkStrings(t, "KeysPendingDeletion(year 9999)", query(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)),
		[]string{"due-earlier", "due-now", "due-other-account", "far-future", "not-yet"})
	checkStrings(t, "KeysPendingDeletion(zero time)", query(time.Time{}), nil)

	// The time is compared as an instant, whatever its zone.
	checkStrings(t, "KeysPendingDeletion(now in another zone)", query(now.In(time.FixedZone("X", 9*3600))),
		[]string{"due-earlier", "due-now", "due-other-account"})

	// A key that leaves PendingDeletion drops out.
	if _, err := s.UpdateKey(ctx, "due-now", func(k *store.Key) error {
		k.State = "Disabled"
		k.DeletionDate = time.Time{}
		k.PendingWindowDays = 0
		return nil
	}); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	checkStrings(t, "KeysPendingDeletion(now) after cancel", query(now), []string{"due-earlier", "due-other-account"})

	// Records come back complete.
	keys, err := s.KeysPendingDeletion(ctx, now.Add(-47*time.Hour))
	if err != nil {
		t.Fatalf("KeysPendingDeletion: %v", err)
	}
	want := newKey("due-other-account", account2, region)
	want.State = "PendingDeletion"
	want.DeletionDate = now.Add(-48 * time.Hour)
	want.PendingWindowDays = 7
	if len(keys) != 1 {
		t.Fatalf("KeysPendingDeletion returned %q, want [due-other-account]", keyIDs(keys))
	}
	checkKey(t, keys[0], want)
}

func testMaterials(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	for n := 1; n <= 3; n++ {
		if err := s.AddMaterial(ctx, newMaterial("k1", n)); err != nil {
			t.Fatalf("AddMaterial(%d): %v", n, err)
		}
	}
	big := &store.Material{KeyID: "k2", ID: materialID("k2", 0), Wrapped: make([]byte, 64<<10), Created: base}
	for i := range big.Wrapped {
		big.Wrapped[i] = byte(i * 7)
	}
	if err := s.AddMaterial(ctx, big); err != nil {
		t.Fatalf("AddMaterial(big): %v", err)
	}

	for n := 0; n <= 3; n++ {
		m, err := s.GetMaterial(ctx, "k1", materialID("k1", n))
		if err != nil {
			t.Fatalf("GetMaterial(%d): %v", n, err)
		}
		checkMaterial(t, m, newMaterial("k1", n))
	}
	m, err := s.GetMaterial(ctx, "k2", big.ID)
	if err != nil {
		t.Fatalf("GetMaterial(big): %v", err)
	}
	checkMaterial(t, m, big)

	// A material ID belongs to its key only.
	_, err = s.GetMaterial(ctx, "k2", materialID("k1", 0))
	checkErrIs(t, "GetMaterial with another key's material ID", err, store.ErrNotFound)
	// The same material ID may exist under two keys.
	same := newMaterial("k2", 9)
	same.ID = materialID("k1", 1)
	if err := s.AddMaterial(ctx, same); err != nil {
		t.Fatalf("AddMaterial with an ID another key uses: %v", err)
	}
}

func testMaterialErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), newMaterial("k1", 0))

	checkErrIs(t, "AddMaterial of a taken ID", s.AddMaterial(ctx, newMaterial("k1", 0)), store.ErrExists)
	checkErrIs(t, "AddMaterial to a missing key", s.AddMaterial(ctx, newMaterial("missing", 0)), store.ErrNotFound)
	_, err := s.GetMaterial(ctx, "k1", materialID("k1", 5))
	checkErrIs(t, "GetMaterial(missing material)", err, store.ErrNotFound)
	_, err = s.GetMaterial(ctx, "missing", materialID("k1", 0))
	checkErrIs(t, "GetMaterial(missing key)", err, store.ErrNotFound)

	// The failed AddMaterial left the first material alone.
	m, err := s.GetMaterial(ctx, "k1", materialID("k1", 0))
	if err != nil {
		t.Fatalf("GetMaterial: %v", err)
	}
	checkMaterial(t, m, newMaterial("k1", 0))
}

func testAliases(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	a := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base.Add(time.Second)}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	got, err := s.GetAlias(ctx, account, region, "alias/app")
	if err != nil {
		t.Fatalf("GetAlias: %v", err)
	}
	checkAlias(t, got, a)
	if n, err := s.CountAliases(ctx, "k1"); err != nil || n != 1 {
		t.Errorf("CountAliases = %d, %v; want 1", n, err)
	}

	// The same name in another account or region is another alias, even
	// for the same key (the store does not check key ownership).
	for _, scope := range [][2]string{{account2, region}, {account, region2}} {
		other := *a
		other.Account, other.Region = scope[0], scope[1]
		if err := s.CreateAlias(ctx, &other); err != nil {
			t.Fatalf("CreateAlias in %s/%s: %v", scope[0], scope[1], err)
		}
	}
	if n, err := s.CountAliases(ctx, "k1"); err != nil || n != 3 {
		t.Errorf("CountAliases = %d, %v; want 3", n, err)
	}
	if n, err := s.CountAliases(ctx, "missing"); err != nil || n != 0 {
		t.Errorf("CountAliases(missing) = %d, %v; want 0", n, err)
	}

	if err := s.DeleteAlias(ctx, account, region, "alias/app", "k1"); err != nil {
		t.Fatalf("DeleteAlias: %v", err)
	}
	_, err = s.GetAlias(ctx, account, region, "alias/app")
	checkErrIs(t, "GetAlias after DeleteAlias", err, store.ErrNotFound)
	if _, err := s.GetAlias(ctx, account2, region, "alias/app"); err != nil {
		t.Errorf("GetAlias in another account after DeleteAlias: %v", err)
	}
	if n, err := s.CountAliases(ctx, "k1"); err != nil || n != 2 {
		t.Errorf("CountAliases = %d, %v; want 2", n, err)
	}
	// The key itself is untouched.
	mustGetKey(t, s, "k1")
}

func testAliasErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	a := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}

	dup := *a
	dup.KeyID = "k2"
	checkErrIs(t, "CreateAlias of a taken name", s.CreateAlias(ctx, &dup), store.ErrExists)
	noKey := *a
	noKey.Name = "alias/nokey"
	noKey.KeyID = "missing"
	checkErrIs(t, "CreateAlias for a missing key", s.CreateAlias(ctx, &noKey), store.ErrNotFound)
	_, err := s.GetAlias(ctx, account, region, "alias/nokey")
	checkErrIs(t, "GetAlias after a failed CreateAlias", err, store.ErrNotFound)

	got, err := s.GetAlias(ctx, account, region, "alias/app")
	if err != nil {
		t.Fatalf("GetAlias: %v", err)
	}
	checkAlias(t, got, a)

	_, err = s.GetAlias(ctx, account, region, "alias/missing")
	checkErrIs(t, "GetAlias(missing)", err, store.ErrNotFound)
	_, err = s.GetAlias(ctx, account, region2, "alias/app")
	checkErrIs(t, "GetAlias in another region", err, store.ErrNotFound)
	checkErrIs(t, "DeleteAlias(missing)", s.DeleteAlias(ctx, account, region, "alias/missing", "k1"), store.ErrNotFound)
	checkErrIs(t, "DeleteAlias in another account", s.DeleteAlias(ctx, account2, region, "alias/app", "k1"), store.ErrNotFound)
}

func testUpdateAlias(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	a := &store.Alias{Account: account, Region: region, Name: "alias/app", KeyID: "k1", Created: base, Updated: base}
	if err := s.CreateAlias(ctx, a); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}

	later := base.Add(time.Hour)
	if err := s.UpdateAlias(ctx, account, region, "alias/app", "k1", "k2", later); err != nil {
		t.Fatalf("UpdateAlias: %v", err)
	}
	want := *a
	want.KeyID = "k2"
	want.Updated = later
	got, err := s.GetAlias(ctx, account, region, "alias/app")
	if err != nil {
		t.Fatalf("GetAlias: %v", err)
	}
	checkAlias(t, got, &want)
	for id, n := range map[string]int{"k1": 0, "k2": 1} {
		if c, err := s.CountAliases(ctx, id); err != nil || c != n {
			t.Errorf("CountAliases(%s) = %d, %v; want %d", id, c, err, n)
		}
	}

	checkErrIs(t, "UpdateAlias to a missing key",
		s.UpdateAlias(ctx, account, region, "alias/app", "k2", "missing", later.Add(time.Hour)), store.ErrNotFound)
	checkErrIs(t, "UpdateAlias of a missing alias",
		s.UpdateAlias(ctx, account, region, "alias/missing", "k2", "k1", later), store.ErrNotFound)
	checkErrIs(t, "UpdateAlias in another region",
		s.UpdateAlias(ctx, account, region2, "alias/app", "k2", "k1", later), store.ErrNotFound)

	// The failed updates changed nothing.
	got, err = s.GetAlias(ctx, account, region, "alias/app")
	if err != nil {
		t.Fatalf("GetAlias: %v", err)
	}
	checkAlias(t, got, &want)
	_, err = s.GetAlias(ctx, account, region, "alias/missing")
	checkErrIs(t, "GetAlias after UpdateAlias of a missing alias", err, store.ErrNotFound)
}

func testListAliases(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	for _, a := range []struct{ name, key, acct, reg string }{
		{"alias/d", "k1", account, region},
		{"alias/b", "k2", account, region},
		{"alias/a", "k1", account, region},
		{"alias/c", "k2", account, region},
		{"alias/e", "k1", account, region},
		{"alias/a", "k1", account2, region},
		{"alias/z", "k1", account, region2},
	} {
		err := s.CreateAlias(ctx, &store.Alias{Account: a.acct, Region: a.reg, Name: a.name, KeyID: a.key, Created: base, Updated: base})
		if err != nil {
			t.Fatalf("CreateAlias(%s): %v", a.name, err)
		}
	}
	list := func(acct, reg, keyID, after string, limit int) []string {
		t.Helper()
		aliases, err := s.ListAliases(ctx, acct, reg, keyID, after, limit)
		if err != nil {
			t.Fatalf("ListAliases: %v", err)
		}
		for _, a := range aliases {
			if a.Account != acct || a.Region != reg || (keyID != "" && a.KeyID != keyID) {
				t.Errorf("ListAliases(%s, %s, %q) returned %+v", acct, reg, keyID, a)
			}
		}
		return aliasNames(aliases)
	}
	for _, c := range []struct {
		acct, reg, key, after string
		limit                 int
		want                  []string
	}{
		{account, region, "", "", 100, []string{"alias/a", "alias/b", "alias/c", "alias/d", "alias/e"}},
		{account, region, "", "", 2, []string{"alias/a", "alias/b"}},
		{account, region, "", "alias/b", 2, []string{"alias/c", "alias/d"}},
		{account, region, "", "alias/d", 2, []string{"alias/e"}},
		{account, region, "", "alias/e", 2, nil},
		{account, region, "", "alias/bb", 1, []string{"alias/c"}},
		{account, region, "", "", 0, []string{"alias/a", "alias/b", "alias/c", "alias/d", "alias/e"}},
		{account, region, "k1", "", 100, []string{"alias/a", "alias/d", "alias/e"}},
		{account, region, "k1", "", 2, []string{"alias/a", "alias/d"}},
		{account, region, "k1", "alias/d", 2, []string{"alias/e"}},
		{account, region, "k2", "", 100, []string{"alias/b", "alias/c"}},
		{account, region, "missing", "", 100, nil},
		{account2, region, "", "", 100, []string{"alias/a"}},
		{account, region2, "k1", "", 100, []string{"alias/z"}},
		{account2, region2, "", "", 100, nil},
	} {
		checkStrings(t, fmt.Sprintf("ListAliases(%s, %s, key %q, after %q, limit %d)", c.acct, c.reg, c.key, c.after, c.limit),
			list(c.acct, c.reg, c.key, c.after, c.limit), c.want)
	}

	aliases, err := s.ListAliases(ctx, account, region, "k2", "", 1)
	if err != nil {
		t.Fatalf("ListAliases: %v", err)
	}
	if len(aliases) != 1 {
		t.Fatalf("ListAliases returned %d aliases, want 1", len(aliases))
	}
	checkAlias(t, aliases[0], &store.Alias{Account: account, Region: region, Name: "alias/b", KeyID: "k2", Created: base, Updated: base})
}

func testAccessKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	keys := []*store.AccessKey{
		{ID: "AKIAZZZ", Account: account, PrincipalARN: "arn:aws:iam::111122223333:user/admin", WrappedSecret: []byte("secret-z\x00"), Created: base},
		{ID: "AKIAAAA", Account: account, PrincipalARN: "arn:aws:iam::111122223333:role/app", WrappedSecret: []byte("secret-a"), Created: base.Add(time.Minute)},
		{ID: "AKIAMMM", Account: account2, PrincipalARN: "arn:aws:iam::444455556666:root", WrappedSecret: []byte("secret-m"), Created: base},
	}
	for _, a := range keys {
		if err := s.PutAccessKey(ctx, a); err != nil {
			t.Fatalf("PutAccessKey(%s): %v", a.ID, err)
		}
	}
	dup := *keys[0]
	dup.Account = account2
	checkErrIs(t, "PutAccessKey of a taken ID", s.PutAccessKey(ctx, &dup), store.ErrExists)

	check := func(got, want *store.AccessKey) {
		t.Helper()
		checkTime(t, "access key "+want.ID+" Created", got.Created, want.Created)
		if got.ID != want.ID || got.Account != want.Account || got.PrincipalARN != want.PrincipalARN ||
			string(got.WrappedSecret) != string(want.WrappedSecret) {
			t.Errorf("access key = %+v, want %+v", got, want)
		}
	}
	for _, want := range keys {
		got, err := s.GetAccessKey(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetAccessKey(%s): %v", want.ID, err)
		}
		check(got, want)
	}
	_, err := s.GetAccessKey(ctx, "AKIAMISSING")
	checkErrIs(t, "GetAccessKey(missing)", err, store.ErrNotFound)

	list, err := s.ListAccessKeys(ctx, account)
	if err != nil {
		t.Fatalf("ListAccessKeys: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("ListAccessKeys returned %d keys, want 2", len(list))
	}
	check(list[0], keys[1])
	check(list[1], keys[0])
	list, err = s.ListAccessKeys(ctx, "999999999999")
	if err != nil || len(list) != 0 {
		t.Errorf("ListAccessKeys(unknown account) = %v, %v; want none", list, err)
	}
}

func testCountKeysByState(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	counts, err := s.CountKeysByState(ctx)
	if err != nil || len(counts) != 0 {
		t.Fatalf("CountKeysByState on an empty store = %v, %v", counts, err)
	}
	for i, state := range []string{"Enabled", "Enabled", "Disabled", "PendingDeletion", "Enabled"} {
		k := newKey(fmt.Sprintf("k%d", i), account, region)
		k.State = state
		mustCreateKey(t, s, k, nil)
	}
	mustCreateKey(t, s, newKey("other", account2, region2), nil)
	counts, err = s.CountKeysByState(ctx)
	if err != nil {
		t.Fatalf("CountKeysByState: %v", err)
	}
	want := map[string]int{"Enabled": 4, "Disabled": 1, "PendingDeletion": 1}
	if len(counts) != len(want) {
		t.Fatalf("CountKeysByState = %v, want %v", counts, want)
	}
	for st, n := range want {
		if counts[st] != n {
			t.Fatalf("CountKeysByState = %v, want %v", counts, want)
		}
	}
}

func testGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateKey(t, s, newKey("k1", account, region), nil)
	mustCreateKey(t, s, newKey("k2", account, region), nil)
	g := func(id, key, name, retiring string) *store.Grant {
		return &store.Grant{
			ID: id, KeyID: key, Name: name,
			GranteePrincipal:        "arn:aws:iam::111122223333:role/app",
			RetiringPrincipal:       retiring,
			IssuingAccount:          "arn:aws:iam::111122223333:root",
			Operations:              []string{"Encrypt", "Decrypt"},
			EncryptionContextSubset: map[string]string{"tenant": "t1"},
			TokenHash:               []byte{1, 2, 3},
			Created:                 base,
		}
	}
	for _, gr := range []*store.Grant{g("g3", "k1", "n", "r1"), g("g1", "k1", "", "r1"), g("g2", "k1", "n", "r2"), g("g4", "k2", "", "r1")} {
		if err := s.CreateGrant(ctx, gr); err != nil {
			t.Fatalf("CreateGrant(%s): %v", gr.ID, err)
		}
	}
	if err := s.CreateGrant(ctx, g("g1", "k1", "", "")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate grant: %v", err)
	}
	if err := s.CreateGrant(ctx, g("g9", "missing", "", "")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant on a missing key: %v", err)
	}
	got, err := s.GetGrant(ctx, "g3")
	if err != nil {
		t.Fatal(err)
	}
	want := g("g3", "k1", "n", "r1")
	if got.Name != want.Name || got.GranteePrincipal != want.GranteePrincipal || got.RetiringPrincipal != "r1" ||
		got.IssuingAccount != want.IssuingAccount || !slices.Equal(got.Operations, want.Operations) ||
		got.EncryptionContextSubset["tenant"] != "t1" || got.EncryptionContextEquals != nil ||
		!slices.Equal(got.TokenHash, want.TokenHash) || !got.Created.Equal(base) {
		t.Fatalf("GetGrant = %+v, want %+v", got, want)
	}
	if _, err := s.GetGrant(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetGrant(nope): %v", err)
	}
	ids := func(gs []*store.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	l, err := s.ListGrants(ctx, "k1", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "ListGrants(k1)", ids(l), []string{"g1", "g2", "g3"})
	l, _ = s.ListGrants(ctx, "k1", "", "g1", 1)
	checkStrings(t, "ListGrants(k1, after g1, 1)", ids(l), []string{"g2"})
	l, _ = s.ListGrants(ctx, "k1", "n", "", 100)
	checkStrings(t, "ListGrants(k1, name n)", ids(l), []string{"g2", "g3"})
	l, _ = s.ListRetirableGrants(ctx, "r1", "", 100)
	checkStrings(t, "ListRetirableGrants(r1)", ids(l), []string{"g1", "g3", "g4"})

	if err := s.DeleteGrant(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGrant(ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteGrant: %v", err)
	}
	// Deleting a key deletes its grants.
	if err := s.DeleteKey(ctx, "k2", mustGetKey(t, s, "k2").Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGrant(ctx, "g4"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant survived its key: %v", err)
	}
}
