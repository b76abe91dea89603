package main

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// TestUnservedKeys counts the keys of Regions not served, by Region and in
// all.
func TestUnservedKeys(t *testing.T) {
	ctx := context.Background()
	st, err := backend.Open(ctx, backend.Config{Type: backend.SQLite, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	regions := map[string]int{"us-east-1": 3, "eu-central-1": 2, "ap-south-1": 4}
	i := 0
	for r, n := range regions {
		for range n {
			i++
			k := &store.Key{ID: fmt.Sprintf("k%02d", i), Account: "111122223333", Region: r, State: "PendingImport"}
			if err := st.CreateKey(ctx, k, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		served []string
		want   map[string]int
	}{
		{[]string{"us-east-1", "eu-central-1", "ap-south-1"}, map[string]int{}},
		{[]string{"eu-central-1", "us-west-2"}, map[string]int{"us-east-1": 3, "ap-south-1": 4}},
		{[]string{"us-west-2"}, regions},
	} {
		got, total, err := unservedKeys(ctx, st, tc.served)
		wantTotal := 0
		for _, n := range tc.want {
			wantTotal += n
		}
		if err != nil || !maps.Equal(got, tc.want) || total != wantTotal {
			t.Errorf("unservedKeys(%v) = %v, %d, %v; want %v, %d", tc.served, got, total, err, tc.want, wantTotal)
		}
	}
}
