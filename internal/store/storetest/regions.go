package storetest

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// testCountKeysOutsideRegions counts keys by Region outside a set of
// Regions: across accounts (whose Regions interleave, so that the walk from
// one account's last Region to the next account's first goes back in byte
// order), in every state, with Regions that differ only in case or by a
// suffix, and inside Update.
func testCountKeysOutsideRegions(t *testing.T, s store.Store) {
	ctx := t.Context()
	count := func(regions []string) map[string]int {
		t.Helper()
		got, err := s.CountKeysOutsideRegions(ctx, regions)
		if err != nil {
			t.Fatalf("CountKeysOutsideRegions(%q): %v", regions, err)
		}
		return got
	}
	if got := count(nil); len(got) != 0 {
		t.Fatalf("CountKeysOutsideRegions of an empty store = %v, want none", got)
	}

	layout := []struct {
		account, region string
		n               int
	}{
		{account, "us-west-2", 3},
		{account, "us-east-1", 2},
		{account, "us-east-10", 1},
		{account, "ap-south-1", 1},
		{account2, "af-south-1", 2}, // before every Region of the first account
		{account2, "us-east-1", 4},
		{account2, "zz-test-9", 1},
		{"999999999999", "US-EAST-1", 1}, // not us-east-1: Regions compare byte for byte
	}
	states := []string{"Enabled", "Disabled", "PendingDeletion", "PendingImport", "PendingReplicaDeletion"}
	i := 0
	for _, l := range layout {
		for range l.n {
			i++
			k := newKey(fmt.Sprintf("k%03d", i), l.account, l.region)
			k.State = states[i%len(states)]
			mustCreateKey(t, s, k, nil)
		}
	}
	all := map[string]int{"us-west-2": 3, "us-east-1": 6, "us-east-10": 1, "ap-south-1": 1, "af-south-1": 2, "zz-test-9": 1, "US-EAST-1": 1}
	for _, tc := range []struct {
		regions []string
		want    map[string]int
	}{
		{nil, all},
		{[]string{}, all},
		{[]string{"eu-central-1"}, all},
		{[]string{"us-west-2", "us-east-1", "us-east-10", "ap-south-1", "af-south-1", "zz-test-9", "US-EAST-1"}, map[string]int{}},
		{[]string{"us-east-1"}, map[string]int{"us-west-2": 3, "us-east-10": 1, "ap-south-1": 1, "af-south-1": 2, "zz-test-9": 1, "US-EAST-1": 1}},
		{[]string{"us-east-1", "us-west-2", "af-south-1", "eu-west-1"}, map[string]int{"us-east-10": 1, "ap-south-1": 1, "zz-test-9": 1, "US-EAST-1": 1}},
		{[]string{"US-EAST-1", "us-east-10", "zz-test-9", "ap-south-1"}, map[string]int{"us-west-2": 3, "us-east-1": 6, "af-south-1": 2}},
	} {
		if got := count(tc.regions); !maps.Equal(got, tc.want) {
			t.Errorf("CountKeysOutsideRegions(%q) = %v, want %v", tc.regions, got, tc.want)
		}
	}

	// Inside Update it sees the transaction's writes, a deleted key among
	// them.
	stop := errors.New("roll back")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateKey(ctx, newKey("k-new", account, "eu-north-1"), nil); err != nil {
			return err
		}
		k, err := tx.GetKey(ctx, "k001")
		if err != nil {
			return err
		}
		if err := tx.DeleteKey(ctx, k.ID, k.Revision); err != nil {
			return err
		}
		got, err := tx.CountKeysOutsideRegions(ctx, []string{"us-east-1", "US-EAST-1", "us-east-10", "ap-south-1", "af-south-1", "zz-test-9"})
		if err != nil {
			return err
		}
		if want := map[string]int{"us-west-2": 2, "eu-north-1": 1}; !maps.Equal(got, want) {
			t.Errorf("CountKeysOutsideRegions inside Update = %v, want %v", got, want)
		}
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Update: %v", err)
	}
	if got := count([]string{"eu-central-1"}); !maps.Equal(got, all) {
		t.Errorf("CountKeysOutsideRegions after a rolled back Update = %v, want %v", got, all)
	}
}
