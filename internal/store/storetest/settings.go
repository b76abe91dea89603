package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Settings: shared documents written by compare and set on their revision.

func testSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	const name = store.SettingRootManifest
	_, err := s.GetSetting(ctx, name)
	checkErrIs(t, "GetSetting of a missing setting", err, store.ErrNotFound)

	check := func(what string, wantValue []byte, wantRevision int64) {
		t.Helper()
		got, err := s.GetSetting(ctx, name)
		if err != nil {
			t.Fatalf("GetSetting %s: %v", what, err)
		}
		if got.Name != name || !bytes.Equal(got.Value, wantValue) || got.Revision != wantRevision {
			t.Errorf("GetSetting %s = {%s %q %d}, want {%s %q %d}", what, got.Name, got.Value, got.Revision, name, wantValue, wantRevision)
		}
		if got.Updated.IsZero() || got.Updated.Location() != time.UTC {
			t.Errorf("GetSetting %s: Updated %v, want a time in UTC", what, got.Updated)
		}
	}
	put := func(value []byte, revision, want int64) {
		t.Helper()
		got, err := s.PutSetting(ctx, name, value, revision)
		if err != nil || got != want {
			t.Fatalf("PutSetting(%q, revision %d) = %d, %v; want %d", value, revision, got, err, want)
		}
	}

	v1 := []byte(`{"roots":["a"]}`)
	put(v1, 0, 1)
	check("after the first PutSetting", v1, 1)

	// Writes naming another revision than the stored one are refused.
	for _, r := range []int64{0, 2, -1} {
		_, err := s.PutSetting(ctx, name, []byte("refused"), r)
		checkErrIs(t, fmt.Sprintf("PutSetting at revision %d of a setting at 1", r), err, store.ErrConflict)
	}
	check("after refused writes", v1, 1)

	v2 := append(bytes.Repeat([]byte{0, 0xff, 'x'}, 20000), '!') // binary, 60 KiB
	put(v2, 1, 2)
	check("after the second PutSetting", v2, 2)
	_, err = s.PutSetting(ctx, name, []byte("stale"), 1)
	checkErrIs(t, "PutSetting at a stale revision", err, store.ErrConflict)
	check("after a stale PutSetting", v2, 2)

	// A missing setting must be created at revision 0.
	_, err = s.PutSetting(ctx, "other", []byte("x"), 1)
	checkErrIs(t, "PutSetting of a missing setting at revision 1", err, store.ErrConflict)
	_, err = s.GetSetting(ctx, "other")
	checkErrIs(t, "GetSetting after a refused creation", err, store.ErrNotFound)

	// An empty value round-trips; settings are independent.
	if r, err := s.PutSetting(ctx, "empty", nil, 0); err != nil || r != 1 {
		t.Fatalf("PutSetting(empty) = %d, %v; want 1", r, err)
	}
	if got, err := s.GetSetting(ctx, "empty"); err != nil || len(got.Value) != 0 || got.Revision != 1 {
		t.Errorf("GetSetting(empty) = %+v, %v", got, err)
	}
	check("after another setting was written", v2, 2)

	// Values share no memory with the store.
	v3 := []byte("v3")
	put(v3, 2, 3)
	v3[0] = 'X'
	got, err := s.GetSetting(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	got.Value[0] = 'Y'
	check("after changing the caller's slices", []byte("v3"), 3)
}
