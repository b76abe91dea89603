package datafolder

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backendtest"
	"strings"
)

// noCounting is a store whose CountKeysByState fails: ReadStoreFacts runs
// at every start and must not read every key (a million keys is a
// supported size) to learn whether there is one.
type noCounting struct{ store.Store }

func (noCounting) CountKeysByState(context.Context) (map[string]int, error) {
	return nil, errors.New("CountKeysByState reads every key")
}

// TestReadStoreFacts: whether the store is in use, from one row of each
// kind: any key (of any account, Region or state), any access key, the
// installation record.
func TestReadStoreFacts(t *testing.T) {
	ctx := context.Background()
	st := noCounting{backendtest.Open(t, t.TempDir())}
	facts, err := ReadStoreFacts(ctx, st)
	if err != nil || facts.InUse() || facts.AnyKey {
		t.Fatalf("empty store: %+v, %v", facts, err)
	}
	// A disabled key of another account and Region, with no material.
	k := &store.Key{ID: "0b7f4c1e-0000-4000-8000-000000000001", Account: "444455556666", Region: "eu-west-3",
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", KeyManager: "CUSTOMER",
		State: "Disabled", Created: time.Now(), Policy: `{"Version":"2012-10-17","Statement":[]}`}
	if err := st.CreateKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	if facts, err = ReadStoreFacts(ctx, st); err != nil || !facts.AnyKey || !facts.InUse() || facts.Installation != nil {
		t.Fatalf("store with a key: %+v, %v", facts, err)
	}
	if err := RecordInstallation(ctx, st, "eu-west-3", time.Now()); err != nil {
		t.Fatal(err)
	}
	if facts, err = ReadStoreFacts(ctx, st); err != nil || facts.Installation == nil || facts.Installation.Region != "eu-west-3" {
		t.Fatalf("store with its installation record: %+v, %v", facts, err)
	}
}

// TestLoadRecordRefusesInvalid: a record of the store that does not
// decode, holds members kmsd does not know, or names another record than
// the one asked for is refused, naming it; a missing one is none.
func TestLoadRecordRefusesInvalid(t *testing.T) {
	ctx := context.Background()
	st := backendtest.Open(t, t.TempDir())
	put := func(name, value string) {
		t.Helper()
		if _, err := st.PutSetting(ctx, name, []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	put(store.SettingAuditNodePrefix+"n1", `{"node":"n2","logId":"a","since":"T"}`)
	put(store.SettingAuditLostPrefix+"a", `{"logId":"a","later":1}`)
	put(store.SettingAuditAnchorPrefix+"b", `{"logId":"b",`)
	put(store.SettingInstallation, `{"created":"T"}`)
	for _, tc := range []struct {
		name string
		load func() error
		want string // "" for no error
	}{
		{"another node's record", func() error { _, _, err := LoadNode(ctx, st, "n1"); return err }, "the record of node n1 in the store is not valid"},
		{"no record", func() error { r, _, err := LoadNode(ctx, st, "n3"); return errors.Join(err, nilOr(r == nil)) }, ""},
		{"an unknown member", func() error { _, err := LoadLost(ctx, st, "a"); return err }, "the record of lost log a in the store is not valid"},
		{"not JSON", func() error { _, _, err := AnchorsIn(st).LoadAnchor(ctx, "b"); return err }, "the audit anchor of log b in the store is not valid"},
		{"no anchor", func() error { _, _, err := AnchorsIn(st).LoadAnchor(ctx, "c"); return err }, "no anchor is stored"},
		{"an installation without its Region", func() error { _, _, err := LoadInstallation(ctx, st); return err }, "the installation record in the store is not valid"},
	} {
		err := tc.load()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// nilOr is nil when ok, else an error.
func nilOr(ok bool) error {
	if ok {
		return nil
	}
	return errors.New("want none")
}
