package snapshot

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

var update = flag.Bool("update", false, "rewrite testdata/v2.snapshot")

// base is a fixed instant the test records are dated from.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.UTC)

// openSQLite opens a new SQLite store in a folder of its own.
func openSQLite(t *testing.T) store.Store {
	t.Helper()
	return openStore(t, backend.Config{Type: backend.SQLite, DataDir: t.TempDir()})
}

// openPostgres opens a new PostgreSQL database (skipped without a test
// server, see pgtest).
func openPostgres(t *testing.T) store.Store {
	t.Helper()
	return openStore(t, backend.Config{Type: backend.Postgres, DSN: pgtest.DSN(t)})
}

func openStore(t *testing.T, cfg backend.Config) store.Store {
	t.Helper()
	st, err := backend.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// populate writes records of every kind with every field set into st,
// through the store's own methods, and changes some of them afterwards so
// that revisions are above 1.
func populate(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hex64 := func(c string) string { return strings.Repeat(c, 64) }
	for _, name := range []string{store.SettingRootManifest, "B-setting"} {
		_, err := st.PutSetting(ctx, name, []byte(`{"current":{"kind":"file","file":"root.key"}}`+"\x00\xff"), 0)
		must(err)
	}
	_, err := st.PutSetting(ctx, "B-setting", nil, 1)
	must(err)
	must(st.CreateCustomKeyStore(ctx, &store.CustomKeyStore{ID: "cks-0123456789abcdef0", Account: "111122223333", Region: "us-east-1",
		Name: "hsm one", Type: "AWS_CLOUDHSM", ClusterID: "cluster-1234567890a", TrustAnchor: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		WrappedPassword: []byte("wrapped\x00pin"), Created: base, ConnectionState: "FAILED", ConnectionErrorCode: "NETWORK_ERRORS"}))
	_, err = st.UpdateCustomKeyStore(ctx, "cks-0123456789abcdef0", func(c *store.CustomKeyStore) error { c.Name = "hsm <one> & \u2028"; return nil })
	must(err)
	for i, acct := range []string{"444455556666", "111122223333"} {
		must(st.PutAccessKey(ctx, &store.AccessKey{ID: "AKIA00000000000000" + string(rune('B'-i)), Account: acct,
			PrincipalARN: "arn:aws:iam::" + acct + ":user/admin", WrappedSecret: []byte{0, 1, 2, byte(i)}, Created: base.Add(time.Duration(i) * time.Second)}))
	}

	// A symmetric key rotated twice, with its first material not first in
	// ID order, grants and aliases in two accounts.
	sym := &store.Key{ID: "11111111-aaaa-4bbb-8ccc-000000000001", Account: "111122223333", Region: "us-east-1",
		Description: "symmetric \"quoted\" ünïcödé\ttab", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
		KeyManager: "CUSTOMER", State: "Enabled", Created: base, Policy: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}`,
		Tags: []store.Tag{{Key: "z", Value: "last"}, {Key: "a", Value: ""}}, CurrentMaterial: hex64("c"),
		RotationEnabled: true, RotationPeriodDays: 90, NextRotation: base.Add(90 * 24 * time.Hour)}
	must(st.CreateKey(ctx, sym, &store.Material{ID: hex64("c"), Wrapped: []byte("m0"), Created: base}))
	for i, id := range []string{hex64("a"), hex64("b")} {
		rt := store.RotationAutomatic
		if i == 1 {
			rt = store.RotationOnDemand
		}
		_, err := st.RotateKey(ctx, sym.ID, &store.Material{ID: id, Wrapped: []byte("m" + id[:1]), Created: base.Add(time.Duration(i+1) * time.Hour), RotationType: rt},
			func(k *store.Key) error { k.CurrentMaterial = id; k.OnDemandRotations = i; return nil })
		must(err)
	}
	for _, g := range []*store.Grant{
		{ID: hex64("f"), KeyID: sym.ID, Name: "second", GranteePrincipal: "arn:aws:iam::111122223333:user/alice",
			IssuingAccount: "arn:aws:iam::111122223333:root", Operations: []string{"Encrypt", "Decrypt"}, TokenHash: []byte{9, 9}, Created: base},
		{ID: hex64("e"), KeyID: sym.ID, Name: "first", GranteePrincipal: "arn:aws:iam::111122223333:role/app",
			RetiringPrincipal: "arn:aws:iam::111122223333:user/bob", IssuingAccount: "arn:aws:iam::111122223333:root",
			Operations: []string{"Decrypt"}, EncryptionContextEquals: map[string]string{"b": "2", "a": "1"},
			EncryptionContextSubset: map[string]string{"dept": "x"}, TokenHash: []byte{1}, Created: base.Add(time.Minute)},
	} {
		must(st.CreateGrant(ctx, g))
	}
	other := &store.Key{ID: "22222222-aaaa-4bbb-8ccc-000000000002", Account: "111122223333", Region: "us-east-1",
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", KeyManager: "CUSTOMER", State: "Enabled",
		Created: base, CurrentMaterial: hex64("d")}
	must(st.CreateKey(ctx, other, &store.Material{ID: hex64("d"), Wrapped: []byte("md"), Created: base}))
	for _, a := range []*store.Alias{
		{Account: "111122223333", Region: "us-east-1", Name: "alias/b", KeyID: other.ID, Created: base, Updated: base},
		{Account: "111122223333", Region: "us-east-1", Name: "alias/A", KeyID: sym.ID, Created: base, Updated: base},
		{Account: "111122223333", Region: "eu-west-1", Name: "alias/b", KeyID: sym.ID, Created: base, Updated: base},
	} {
		must(st.CreateAlias(ctx, a))
	}
	// alias/b moves to sym: revision 2.
	must(st.UpdateAlias(ctx, "111122223333", "us-east-1", "alias/b", other.ID, sym.ID, base.Add(time.Hour)))

	// An EXTERNAL key with imported material that expires, a pending
	// material and import parameters; one pending deletion; one in a
	// custom key store; one waiting for its material.
	ext := &store.Key{ID: "33333333-aaaa-4bbb-8ccc-000000000003", Account: "111122223333", Region: "us-east-1",
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "EXTERNAL", KeyManager: "CUSTOMER", State: "Enabled",
		Created: base, CurrentMaterial: hex64("9"), MaterialValidTo: base.Add(48 * time.Hour), ExpirationModel: "KEY_MATERIAL_EXPIRES"}
	must(st.CreateKey(ctx, ext, &store.Material{ID: hex64("9"), Wrapped: []byte("imported"), Created: base}))
	must(st.AddMaterial(ctx, &store.Material{KeyID: ext.ID, ID: hex64("1"), Wrapped: []byte("pending"), Created: base.Add(time.Hour), RotationType: store.RotationPending}))
	for _, id := range []string{hex64("8"), hex64("2")} {
		must(st.PutImportParams(ctx, &store.ImportParams{KeyID: ext.ID, ID: id, WrappedPrivateKey: []byte("wrapping " + id[:1]),
			WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048", Created: base, ValidTo: base.Add(24 * time.Hour)}))
	}
	for _, k := range []*store.Key{
		{ID: "44444444-aaaa-4bbb-8ccc-000000000004", Account: "444455556666", Region: "eu-west-1", KeySpec: "ECC_NIST_P256",
			KeyUsage: "SIGN_VERIFY", Origin: "AWS_KMS", KeyManager: "CUSTOMER", State: "PendingDeletion", Created: base,
			DeletionDate: base.Add(7 * 24 * time.Hour), PendingWindowDays: 7, CurrentMaterial: hex64("4")},
		{ID: "55555555-aaaa-4bbb-8ccc-000000000005", Account: "111122223333", Region: "us-east-1", KeySpec: "SYMMETRIC_DEFAULT",
			KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_CLOUDHSM", KeyManager: "CUSTOMER", State: "Enabled", Created: base,
			CurrentMaterial: hex64("5"), CustomKeyStoreID: "cks-0123456789abcdef0"},
		{ID: "66666666-aaaa-4bbb-8ccc-000000000006", Account: "111122223333", Region: "us-east-1", KeySpec: "HMAC_256",
			KeyUsage: "GENERATE_VERIFY_MAC", Origin: "EXTERNAL", KeyManager: "CUSTOMER", State: "PendingImport", Created: base},
	} {
		var m *store.Material
		if k.CurrentMaterial != "" {
			m = &store.Material{ID: k.CurrentMaterial, Wrapped: []byte("w" + k.ID[:1]), Created: base}
		}
		must(st.CreateKey(ctx, k, m))
	}

	// A multi-Region key: its primary in us-east-1 and replicas in two
	// other Regions, each a record of its own with its own copy of the
	// material, sharing the mrk- id and naming the primary's Region.
	const mrk = "mrk-0123456789abcdef0123456789abcdef"
	for _, reg := range []string{"us-east-1", "eu-central-1", "ap-northeast-1"} {
		k := &store.Key{ID: mrk + "/" + reg, Account: "111122223333", Region: reg, KeySpec: "HMAC_256",
			KeyUsage: "GENERATE_VERIFY_MAC", Origin: "AWS_KMS", KeyManager: "CUSTOMER", State: "Enabled", Created: base,
			CurrentMaterial: hex64("7"), MultiRegionKeyID: mrk, PrimaryRegion: "us-east-1"}
		must(st.CreateKey(ctx, k, &store.Material{ID: hex64("7"), Wrapped: []byte("copy for " + reg), Created: base}))
	}

	// Last uses (GetKeyLastUsage) of two keys, one a replica.
	must(st.RecordKeyUsage(ctx, []*store.KeyUse{
		{KeyID: sym.ID, Operation: "Decrypt", Time: base.Add(2 * time.Hour), RequestID: "req-1", EventID: "event-1"},
		{KeyID: mrk + "/eu-central-1", Operation: "GenerateMac", Time: base.Add(3*time.Hour + 1), RequestID: "req-2", EventID: "event-2"},
	}))
}

// mustTake takes a snapshot of st, failing the test on error.
func mustTake(t *testing.T, st store.Store) *Snapshot {
	t.Helper()
	s, err := Take(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func encode(t *testing.T, s *Snapshot) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restored is s as a restore makes it: every revision 1, settings dated
// at the restore (here: zero), and the snapshot's own time dropped.
func restored(s *Snapshot) *Snapshot {
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		panic(err)
	}
	c, err := Decode(&buf)
	if err != nil {
		panic(err)
	}
	c.Created = time.Time{}
	for _, st := range c.Settings {
		st.Revision, st.Updated = 1, time.Time{}
	}
	for _, cks := range c.CustomKeyStores {
		cks.Revision = 1
	}
	for _, k := range c.Keys {
		k.Key.Revision = 1
		for _, a := range k.Aliases {
			a.Revision = 1
		}
	}
	return c
}

// TestRoundTrip takes a snapshot of a store holding records of every kind,
// encodes and decodes it, restores it into empty stores of both backends,
// and takes a snapshot of each again: the records are the same, but for
// what a restore resets (revisions, settings' times).
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	sources := map[string]func(*testing.T) store.Store{"sqlite": openSQLite, "postgres": openPostgres}
	for srcName, openSrc := range sources {
		for dstName, openDst := range sources {
			t.Run(srcName+" to "+dstName, func(t *testing.T) {
				src := openSrc(t)
				populate(t, src)
				s := mustTake(t, src)
				want := Counts{Settings: 2, CustomKeyStores: 1, AccessKeys: 2, Keys: 9, Materials: 11, ImportParams: 2, Grants: 2, Aliases: 3, KeyUsage: 2}
				if got := s.Counts(); got != want {
					t.Fatalf("Counts = %+v, want %+v", got, want)
				}
				if k := s.Keys[0]; k.Key.Revision != 3 || k.Materials[0].ID != strings.Repeat("c", 64) || k.Aliases[2].Revision != 2 {
					t.Fatalf("first key as taken: %+v (materials %v, aliases %+v)", k.Key, k.Materials, k.Aliases)
				}

				enc := encode(t, s)
				dec, err := Decode(bytes.NewReader(enc))
				if err != nil {
					t.Fatalf("Decode of Encode: %v", err)
				}
				if !bytes.Equal(encode(t, dec), enc) {
					t.Fatal("Encode(Decode(Encode(s))) differs from Encode(s)")
				}

				dst := openDst(t)
				if err := Restore(ctx, dst, dec); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				again := mustTake(t, dst)
				// The restore marks the store as restored (one audit log
				// may start anew on it); the rest is the snapshot's.
				marked := false
				again.Settings = slices.DeleteFunc(again.Settings, func(st *store.Setting) bool {
					if st.Name == store.SettingRestored {
						marked = true
						return true
					}
					return false
				})
				if !marked {
					t.Errorf("the restored store has no %s setting", store.SettingRestored)
				}
				for _, st := range again.Settings {
					if st.Updated.IsZero() {
						t.Errorf("restored setting %s has no Updated time", st.Name)
					}
				}
				if got, want := restored(again), restored(s); !reflect.DeepEqual(got, want) {
					t.Errorf("restored store differs:\n got %s\nwant %s", encode(t, got), encode(t, want))
				}
				// What the service reads of them: the related keys of the
				// multi-Region key, the last uses and the start of tracking.
				const mrk = "mrk-0123456789abcdef0123456789abcdef"
				related, err := dst.ListMultiRegionKeys(ctx, mrk)
				if err != nil {
					t.Fatal(err)
				}
				var regions []string
				for _, k := range related {
					if k.PrimaryRegion != "us-east-1" {
						t.Errorf("restored %s: PrimaryRegion %q, want us-east-1", k.ID, k.PrimaryRegion)
					}
					regions = append(regions, k.Region)
				}
				if want := []string{"ap-northeast-1", "eu-central-1", "us-east-1"}; !slices.Equal(regions, want) {
					t.Errorf("ListMultiRegionKeys after the restore: Regions %v, want %v", regions, want)
				}
				if u, err := dst.GetKeyUsage(ctx, mrk+"/eu-central-1"); err != nil || u.Operation != "GenerateMac" ||
					!u.Time.Equal(base.Add(3*time.Hour+1)) || u.EventID != "event-2" {
					t.Errorf("restored last use of the replica = %+v, %v", u, err)
				}
				srcSince, _ := src.KeyUsageSince(ctx)
				if since, err := dst.KeyUsageSince(ctx); err != nil || !since.Equal(srcSince) || srcSince.IsZero() {
					t.Errorf("restored KeyUsageSince = %v, %v; want the source's %v", since, err, srcSince)
				}

				// The restored store's change feed holds the restore's own
				// changes, one per record written (import parameters record
				// none).
				changes, err := dst.Changes(ctx, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				byKind := map[string]int{}
				for _, c := range changes {
					byKind[c.Kind]++
				}
				wantKinds := map[string]int{store.ChangeSetting: 3, store.ChangeCustomKeyStore: 1, store.ChangeAccessKey: 2,
					store.ChangeKey: 9, store.ChangeMaterial: 11, store.ChangeGrant: 2, store.ChangeAlias: 3}
				if !reflect.DeepEqual(byKind, wantKinds) {
					t.Errorf("changes recorded by the restore = %v, want %v", byKind, wantKinds)
				}
			})
		}
	}
}

// TestRestoreRefusesNonEmptyStore restores into stores that hold one record
// of each kind a store can start with: each is refused, and left as it was.
func TestRestoreRefusesNonEmptyStore(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	populate(t, src)
	s := mustTake(t, src)
	for _, tc := range []struct {
		holds string
		write func(store.Store) error
	}{
		{"keys", func(st store.Store) error {
			return st.CreateKey(ctx, &store.Key{ID: "k", Account: "111122223333", Region: "us-east-1", State: "PendingImport"}, nil)
		}},
		{"access keys", func(st store.Store) error {
			return st.PutAccessKey(ctx, &store.AccessKey{ID: "AKIAX", Account: "111122223333", PrincipalARN: "p", WrappedSecret: []byte("w")})
		}},
		{"custom key stores", func(st store.Store) error {
			return st.CreateCustomKeyStore(ctx, &store.CustomKeyStore{ID: "cks-1", Account: "1", Region: "r", Name: "n", ClusterID: "c"})
		}},
		{"settings", func(st store.Store) error { _, err := st.PutSetting(ctx, "x", []byte("y"), 0); return err }},
	} {
		t.Run(tc.holds, func(t *testing.T) {
			dst := openSQLite(t)
			if err := tc.write(dst); err != nil {
				t.Fatal(err)
			}
			before := encode(t, restored(mustTake(t, dst)))
			last, err := dst.LastChange(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = Restore(ctx, dst, s)
			if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "holds "+tc.holds) {
				t.Fatalf("Restore into a store holding %s: %v, want ErrNotEmpty naming them", tc.holds, err)
			}
			if after := encode(t, restored(mustTake(t, dst))); !bytes.Equal(after, before) {
				t.Errorf("the refused restore changed the store:\n%s", after)
			}
			if l, err := dst.LastChange(ctx); err != nil || l != last {
				t.Errorf("LastChange after the refused restore = %d, %v; want %d", l, err, last)
			}
		})
	}
}

// TestRestoreFailureWritesNothing restores a snapshot that the store
// refuses halfway (an alias name taken twice in one account and region, by
// two keys): nothing of it stays.
func TestRestoreFailureWritesNothing(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(*testing.T) store.Store{"sqlite": openSQLite, "postgres": openPostgres} {
		t.Run(name, func(t *testing.T) {
			src := openSQLite(t)
			populate(t, src)
			s := mustTake(t, src)
			last := s.Keys[len(s.Keys)-1]
			dup := *s.Keys[0].Aliases[0]
			dup.KeyID = last.Key.ID
			last.Aliases = append(last.Aliases, &dup)

			dst := open(t)
			err := Restore(ctx, dst, s)
			if !errors.Is(err, store.ErrExists) {
				t.Fatalf("Restore with an alias taken twice: %v, want ErrExists", err)
			}
			empty := mustTake(t, dst)
			if c := empty.Counts(); c != (Counts{}) {
				t.Errorf("after a failed restore the store holds %+v", c)
			}
			if l, err := dst.LastChange(ctx); err != nil || l != 0 {
				t.Errorf("LastChange after a failed restore = %d, %v; want 0", l, err)
			}
			// And the store is still empty enough to restore into.
			last.Aliases = last.Aliases[:len(last.Aliases)-1]
			if err := Restore(ctx, dst, s); err != nil {
				t.Fatalf("Restore after the failed one: %v", err)
			}
		})
	}
}

// goldenV1 is the snapshot testdata/v1.snapshot holds: every kind and field
// of format version 1, which every later kmsd reads, so that file never
// changes.
func goldenV1() *Snapshot {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	key := &store.Key{ID: "1234abcd-12ab-34cd-56ef-1234567890ab", Account: "111122223333", Region: "us-east-1",
		Description: "<b>&\"x\"\u2028\n", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "EXTERNAL",
		KeyManager: "CUSTOMER", State: "Enabled", Created: t0, Policy: `{"Version":"2012-10-17"}`,
		Tags: []store.Tag{{Key: "env", Value: "prod"}}, CurrentMaterial: strings.Repeat("a", 64), RotationEnabled: true,
		RotationPeriodDays: 365, NextRotation: t0.Add(365 * 24 * time.Hour), OnDemandRotations: 1,
		MaterialValidTo: t0.Add(time.Hour + 123), ExpirationModel: "KEY_MATERIAL_EXPIRES", Revision: 4}
	return &Snapshot{
		Created:  t0,
		Settings: []*store.Setting{{Name: store.SettingRootManifest, Value: []byte(`{"current":{}}`), Revision: 2, Updated: t0}},
		CustomKeyStores: []*store.CustomKeyStore{{ID: "cks-0123456789abcdef0", Account: "111122223333", Region: "us-east-1", Name: "hsm",
			Type: "AWS_CLOUDHSM", ClusterID: "cluster-1234567890a", TrustAnchor: "PEM", WrappedPassword: []byte{1, 2, 3}, Created: t0,
			ConnectionState: "DISCONNECTED", Revision: 1}},
		AccessKeys: []*store.AccessKey{{ID: "AKIAIOSFODNN7EXAMPLE", Account: "111122223333", PrincipalARN: "arn:aws:iam::111122223333:user/admin",
			WrappedSecret: []byte{0xff, 0}, Created: t0}},
		Keys: []*Key{{
			Key: key,
			Materials: []*store.Material{
				{KeyID: key.ID, ID: strings.Repeat("b", 64), Wrapped: []byte("first"), Created: t0},
				{KeyID: key.ID, ID: strings.Repeat("a", 64), Wrapped: []byte("second"), Created: t0.Add(time.Hour), RotationType: store.RotationOnDemand},
			},
			ImportParams: []*store.ImportParams{{KeyID: key.ID, ID: strings.Repeat("c", 64), WrappedPrivateKey: []byte("rsa"),
				WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048", Created: t0, ValidTo: t0.Add(24 * time.Hour)}},
			Grants: []*store.Grant{{ID: strings.Repeat("d", 64), KeyID: key.ID, Name: "g", GranteePrincipal: "arn:aws:iam::111122223333:role/app",
				IssuingAccount: "arn:aws:iam::111122223333:root", Operations: []string{"Decrypt"},
				EncryptionContextSubset: map[string]string{"b": "2", "a": "1"}, TokenHash: []byte{7}, Created: t0}},
			Aliases: []*store.Alias{{Account: "111122223333", Region: "us-east-1", Name: "alias/app", KeyID: key.ID, Created: t0, Updated: t0, Revision: 1}},
		}},
	}
}

// golden is a snapshot with every kind and field of the current format
// (version 2), built without a store, whose encoding testdata/v2.snapshot
// pins: each version is read by every later kmsd, so its bytes never
// change. It is goldenV1 with the start of key usage tracking, a last use
// and a multi-Region replica key.
func golden() *Snapshot {
	s := goldenV1()
	t0 := s.Created
	s.KeyUsageSince = t0.Add(-24*time.Hour + 7)
	k := s.Keys[0]
	k.Usage = &store.KeyUse{KeyID: k.Key.ID, Operation: "Decrypt", Time: t0.Add(time.Minute), RequestID: "req-<1>", EventID: "ev-1"}
	const mrk = "mrk-1234abcd12ab34cd56ef1234567890ab"
	replica := &store.Key{ID: mrk + "/eu-central-1", Account: "111122223333", Region: "eu-central-1", KeySpec: "SYMMETRIC_DEFAULT",
		KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", KeyManager: "CUSTOMER", State: "Enabled", Created: t0,
		Policy: `{"Version":"2012-10-17"}`, CurrentMaterial: strings.Repeat("e", 64), Revision: 1,
		MultiRegionKeyID: mrk, PrimaryRegion: "us-east-1"}
	s.Keys = append(s.Keys, &Key{Key: replica, Materials: []*store.Material{
		{KeyID: replica.ID, ID: strings.Repeat("e", 64), Wrapped: []byte("copy"), Created: t0}}})
	return s
}

const (
	goldenFile   = "testdata/v2.snapshot"
	goldenV1File = "testdata/v1.snapshot"
)

// TestGoldenV1 checks that a snapshot of format version 1 (of a kmsd
// before multi-Region keys) still decodes to what it was made from, and
// re-encodes as version 2 holding the same records.
func TestGoldenV1(t *testing.T) {
	in, err := os.ReadFile(goldenV1File)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if g := goldenV1(); !reflect.DeepEqual(dec, g) {
		t.Errorf("Decode(%s) =\n%+v\nwant\n%+v", goldenV1File, dec, g)
	}
	enc := encode(t, dec)
	if !bytes.HasPrefix(enc, []byte(`{"format":"kmsd-snapshot","version":2,`)) {
		t.Errorf("a decoded version 1 snapshot encodes as %.60q, want version 2", enc)
	}
	again, err := Decode(bytes.NewReader(enc))
	if err != nil || !reflect.DeepEqual(again, dec) {
		t.Errorf("version 1 snapshot re-encoded as version 2 decodes to %+v, %v", again, err)
	}
}

// TestGolden checks that the current version encodes as it always did, and
// that the fixed file decodes to the snapshot it was made from.
func TestGolden(t *testing.T) {
	enc := encode(t, golden())
	if *update {
		if err := os.WriteFile(goldenFile, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("Encode(golden()) differs from %s:\n%s", goldenFile, enc)
	}
	dec, err := Decode(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if g := golden(); !reflect.DeepEqual(dec, g) {
		t.Errorf("Decode(%s) =\n%+v\nwant\n%+v", goldenFile, dec, g)
	}
}

// TestDecodeRefuses alters a valid snapshot in every way that must be
// refused: each fails with ErrFormat.
func TestDecodeRefuses(t *testing.T) {
	good, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	lines = lines[:len(lines)-1] // after the last "\n"
	join := func(ls ...string) []byte { return []byte(strings.Join(ls, "")) }
	replaceLine := func(i int, old, new string) []byte {
		ls := append([]string{}, lines...)
		if !strings.Contains(ls[i], old) {
			t.Fatalf("line %d lacks %q", i, old)
		}
		ls[i] = strings.Replace(ls[i], old, new, 1)
		return join(ls...)
	}
	n := len(lines)
	cases := map[string][]byte{
		"empty":                  nil,
		"not a snapshot":         []byte("SQLite format 3\x00"),
		"newer version":          replaceLine(0, `"version":2`, `"version":3`),
		"older version":          replaceLine(0, `"version":2`, `"version":1`),
		"key usage twice":        join(append(append([]string{}, lines[:n-3]...), lines[n-4], lines[n-3], lines[n-2], lines[n-1])...),
		"key usage of other key": replaceLine(n-4, `"key_id":"1234abcd`, `"key_id":"0234abcd`),
		"key usage before alias": join(append(append([]string{}, lines[:n-5]...), lines[n-4], lines[n-5], lines[n-3], lines[n-2], lines[n-1])...),
		"header only":            join(lines[0]),
		"truncated at a line":    join(lines[:n-1]...),
		"truncated mid-line":     good[:len(good)-10],
		"no final newline":       good[:len(good)-1],
		"altered blob":           replaceLine(1, `"value":"ey`, `"value":"eX`),
		"altered count":          replaceLine(n-1, `"key":2`, `"key":3`),
		"altered sum":            replaceLine(n-1, `"sha256":"`, `"sha256":"0`),
		"unknown kind":           replaceLine(1, `"kind":"setting"`, `"kind":"settings"`),
		"unknown member":         replaceLine(3, `"created"`, `"extra":1,"created"`),
		"member out of order":    replaceLine(1, `{"kind":"setting","name":"root-manifest"`, `{"name":"root-manifest","kind":"setting"`),
		"space":                  replaceLine(1, `"kind":"setting"`, `"kind": "setting"`),
		"time not in UTC":        replaceLine(0, `"2026-01-02T03:04:05.6Z"`, `"2026-01-02T04:04:05.6+01:00"`),
		"time with extra zeros":  replaceLine(0, `"2026-01-02T03:04:05.6Z"`, `"2026-01-02T03:04:05.600Z"`),
		"null blob":              replaceLine(3, `"wrapped_secret":"/wA="`, `"wrapped_secret":null`),
		"records out of order":   join(append([]string{lines[0], lines[2], lines[1]}, lines[3:]...)...),
		"record repeated":        join(append([]string{lines[0], lines[1], lines[1]}, lines[2:]...)...),
		"material before key":    join(append([]string{lines[0], lines[1], lines[2], lines[3], lines[5], lines[4]}, lines[6:]...)...),
		"data after the end":     join(append(append([]string{}, lines...), lines[1])...),
		"empty line":             join(append([]string{lines[0], "\n"}, lines[1:]...)...),
		"material of other key":  replaceLine(5, `"key_id":"1234abcd`, `"key_id":"0234abcd`),
		"escaped html":           replaceLine(4, `<b>`, `\u003cb>`),
		"invalid utf-8":          replaceLine(4, `<b>`, "\xff"),
		"duplicate member":       replaceLine(3, `"created"`, `"id":"AKIAIOSFODNN7EXAMPLE","created"`),
		"number not an integer":  replaceLine(1, `"revision":2`, `"revision":2.0`),
		"upper-case member name": replaceLine(1, `"kind":"setting"`, `"KIND":"setting"`),
	}
	for name, input := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Decode(bytes.NewReader(input))
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode = %v, %v; want ErrFormat", s, err)
			}
		})
	}
}

// TestEncodeRefusesInvalidUTF8 checks that a string JSON cannot carry is
// an error rather than a silently different snapshot.
func TestEncodeRefusesInvalidUTF8(t *testing.T) {
	s := golden()
	s.Keys[0].Key.Description = "bad \xff byte"
	if err := Encode(&bytes.Buffer{}, s); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("Encode of an invalid UTF-8 description: %v", err)
	}
	s = golden()
	s.Keys[0].Grants = append(s.Keys[0].Grants, s.Keys[0].Grants[0])
	if err := Encode(&bytes.Buffer{}, s); err == nil {
		t.Fatal("Encode of a grant listed twice succeeded")
	}
}

// FuzzSnapshot feeds Decode arbitrary input: it never panics, and what it
// accepts encodes back to the very same bytes.
func FuzzSnapshot(f *testing.F) {
	good, err := os.ReadFile(goldenFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(encodeOrPanic(&Snapshot{Created: time.Unix(0, 1).UTC()}))
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"format":"kmsd-snapshot","version":2,"created":null,"key_usage_since":null}` + "\n"))
	seeds, _ := filepath.Glob("testdata/*.snapshot")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Decode(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode error does not wrap ErrFormat: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, s); err != nil {
			t.Fatalf("Encode of a decoded snapshot: %v", err)
		}
		// Version 1 is re-encoded as the current version, holding the
		// same records; the current version as the very same bytes.
		if bytes.HasPrefix(in, []byte(`{"format":"kmsd-snapshot","version":1,`)) {
			again, err := Decode(bytes.NewReader(buf.Bytes()))
			if err != nil || !reflect.DeepEqual(again, s) {
				t.Fatalf("version 1 snapshot re-encoded decodes to %+v, %v; want %+v", again, err, s)
			}
			return
		}
		if !bytes.Equal(buf.Bytes(), in) {
			t.Fatalf("re-encoded snapshot differs:\n in %q\nout %q", in, buf.Bytes())
		}
	})
}

func encodeOrPanic(s *Snapshot) []byte {
	var buf bytes.Buffer
	if err := Encode(&buf, s); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// fill sets every field of the struct v points to to a value that is not
// its zero value, by reflection, so that a field added to a store record
// is in the snapshot below without anyone adding it by hand.
func fill(t *testing.T, v any, t0 time.Time) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f, name := rv.Field(i), rv.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(t0.Add(time.Duration(i) * time.Second)))
		case f.Type() == reflect.TypeOf([]store.Tag{}):
			f.Set(reflect.ValueOf([]store.Tag{{Key: "k", Value: "v"}}))
		case f.Type() == reflect.TypeOf([]string{}):
			f.Set(reflect.ValueOf([]string{"Decrypt"}))
		case f.Type() == reflect.TypeOf(map[string]string{}):
			f.Set(reflect.ValueOf(map[string]string{"a": name}))
		case f.Type() == reflect.TypeOf([]byte{}):
			f.SetBytes([]byte(name))
		case f.Kind() == reflect.String:
			f.SetString(name)
		case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
			f.SetInt(int64(i + 1))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("fill: field %s of %T has a type (%s) the test does not know: teach fill and the snapshot format", name, v, f.Type())
		}
	}
}

// TestEveryFieldCarried puts records with every field set into a snapshot:
// each comes back from Encode and Decode as it was. A field added to a store
// record and forgotten by the format (as the multi-Region key id and last
// uses once were) fails here.
func TestEveryFieldCarried(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var (
		setting store.Setting
		cks     store.CustomKeyStore
		ak      store.AccessKey
		key     store.Key
		mat     store.Material
		params  store.ImportParams
		grant   store.Grant
		alias   store.Alias
		use     store.KeyUse
	)
	for _, v := range []any{&setting, &cks, &ak, &key, &mat, &params, &grant, &alias, &use} {
		fill(t, v, t0)
	}
	for _, id := range []*string{&mat.KeyID, &params.KeyID, &grant.KeyID, &alias.KeyID, &use.KeyID} {
		*id = key.ID
	}
	s := &Snapshot{Created: t0, KeyUsageSince: t0.Add(-time.Hour), Settings: []*store.Setting{&setting},
		CustomKeyStores: []*store.CustomKeyStore{&cks}, AccessKeys: []*store.AccessKey{&ak},
		Keys: []*Key{{Key: &key, Materials: []*store.Material{&mat}, ImportParams: []*store.ImportParams{&params},
			Grants: []*store.Grant{&grant}, Aliases: []*store.Alias{&alias}, Usage: &use}}}
	got, err := Decode(bytes.NewReader(encode(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("a snapshot with every field set comes back as\n%s\nwant\n%s", encode(t, got), encode(t, s))
	}
}
