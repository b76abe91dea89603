package sqlite

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
)

// The hot paths of the store: a key read on a cache miss, a key written.

func BenchmarkGetKey(b *testing.B) {
	s := openBench(b)
	if err := s.CreateKey(b.Context(), testKey("k1"), testMaterial("k1")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.GetKey(b.Context(), "k1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetMaterial(b *testing.B) {
	s := openBench(b)
	m := testMaterial("k1")
	if err := s.CreateKey(b.Context(), testKey("k1"), m); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.GetMaterial(b.Context(), "k1", m.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateKey(b *testing.B) {
	s := openBench(b)
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("k%d", i)
		if err := s.CreateKey(b.Context(), testKey(id), testMaterial(id)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateKeyParallel writes keys from 16 goroutines: the group
// commit makes one WAL sync serve every write that waited for the last.
func BenchmarkCreateKeyParallel(b *testing.B) {
	s := openBench(b)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("k%d", n.Add(1))
			if err := s.CreateKey(b.Context(), testKey(id), testMaterial(id)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateKey(b *testing.B) {
	s := openBench(b)
	if err := s.CreateKey(b.Context(), testKey("k1"), nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.UpdateKey(b.Context(), "k1", func(k *store.Key) error {
			k.PendingWindowDays++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.Context(), b.TempDir()+"/kmsd.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
