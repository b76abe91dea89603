//go:build cgo

package kms

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
	"github.com/kmsd/kmsd/internal/softhsmtest"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// Decrypt with a cold and a warm material cache, on the PKCS#11 root of
// trust (SoftHSM2) and, for comparison, on the file root (issue 8).
//
// Every sub-benchmark decrypts the same ciphertexts, one per key, cycling
// through decryptBenchKeys keys in order; key metadata is cached in all of
// them. Only the material cache differs:
//
//   - warm: the cache holds every key's material (primed before the timer),
//     so a Decrypt never reaches the keystore;
//   - cold: the cache holds a single material and the keys are cycled in
//     order, so each Decrypt evicts the previous key's material and misses:
//     it reads the wrapped material from the store and unwraps it in the
//     keystore (for PKCS#11 one C_DecryptInit + C_Decrypt in the token);
//   - cold-parallel: cold from many goroutines at once (b.RunParallel), so
//     the PKCS#11 session pool (benchSessions sessions) is exercised.
//
// Each reports misses/op (from Service.CacheStats) and unwraps/op (counted
// at the keystore), and fails if warm ever misses or cold does not miss
// every time, so that neither can silently measure the wrong thing.
//
//	go test -run '^$' -bench 'DecryptPKCS11|DecryptFileRoot' -benchtime 2000x ./internal/kms/

const (
	// decryptBenchKeys is the number of keys cycled through. Much more than
	// the cold cache's single entry and than the parallel goroutines, so
	// that a key comes around again only long after its material was
	// evicted.
	decryptBenchKeys = 64
	// benchSessions is the PKCS#11 session pool size.
	benchSessions = 8
)

func BenchmarkDecryptPKCS11(b *testing.B) {
	const token = "kmsd-bench"
	softhsmtest.Token(b, token)
	ks, err := pkcs11.Open(context.Background(), pkcs11.Config{
		Module:     softhsmtest.Module,
		TokenLabel: token,
		PIN:        softhsmtest.PIN,
		KeyLabel:   "kmsd-bench-root",
		Sessions:   benchSessions,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ks.Close() })
	benchDecryptCache(b, ks)
}

func BenchmarkDecryptFileRoot(b *testing.B) {
	ks, err := keystore.OpenFile(filepath.Join(b.TempDir(), "root.key"))
	if err != nil {
		b.Fatal(err)
	}
	benchDecryptCache(b, ks)
}

// countingKeystore counts the Unwrap calls that reach the real keystore.
type countingKeystore struct {
	keystore.Keystore
	unwraps atomic.Uint64
}

func (c *countingKeystore) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	c.unwraps.Add(1)
	return c.Keystore.Unwrap(ctx, wrapped, aad)
}

// decryptBench is a store holding decryptBenchKeys keys and one ciphertext
// under each, shared by the sub-benchmarks (each builds its own Service on
// it, with its own material cache).
type decryptBench struct {
	st     store.Store
	ks     *countingKeystore
	inputs []*DecryptInput
	want   []byte
}

func benchDecryptCache(b *testing.B, root keystore.Keystore) {
	ctx := context.Background()
	st, err := backend.Open(ctx, backend.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	d := &decryptBench{st: st, ks: &countingKeystore{Keystore: root}, want: bytes.Repeat([]byte{0x5a}, 32)}
	setup := d.service(b, 0)
	ec := map[string]string{"tenant": "t1"}
	for range decryptBenchKeys {
		ck, err := setup.CreateKey(ctx, admin, &CreateKeyInput{})
		if err != nil {
			b.Fatal(err)
		}
		enc, err := setup.Encrypt(ctx, admin, &EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: d.want, EncryptionContext: ec})
		if err != nil {
			b.Fatal(err)
		}
		d.inputs = append(d.inputs, &DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	}

	b.Run("warm", func(b *testing.B) { d.run(b, 0, false) })
	b.Run("cold", func(b *testing.B) { d.run(b, 1, false) })
	b.Run("cold-parallel", func(b *testing.B) { d.run(b, 1, true) })
}

// service returns a new Service on the shared store and keystore, with
// its own (empty) caches.
func (d *decryptBench) service(b *testing.B, cacheSize int) *Service {
	s, err := New(Config{Store: d.st, Keystore: d.ks, MaterialCacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// run measures Decrypt of the shared ciphertexts on a Service whose
// material cache holds cacheSize materials (0: the default, room for all).
func (d *decryptBench) run(b *testing.B, cacheSize int, parallel bool) {
	ctx := context.Background()
	cold := cacheSize == 1
	s := d.service(b, cacheSize)
	// Prime: every key's metadata, and (warm) every key's material. Cold,
	// only the last key's material stays cached, and the loop starts at
	// the first key.
	for _, in := range d.inputs {
		out, err := s.Decrypt(ctx, admin, in)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(out.Plaintext, d.want) {
			b.Fatalf("Decrypt returned %x, want %x", out.Plaintext, d.want)
		}
	}
	hits0, misses0 := s.CacheStats()
	unwraps0 := d.ks.unwraps.Load()

	b.ReportAllocs()
	if parallel {
		b.SetParallelism(max(1, benchSessions/runtime.GOMAXPROCS(0)))
		var next atomic.Uint64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				in := d.inputs[(next.Add(1)-1)%decryptBenchKeys]
				if _, err := s.Decrypt(ctx, admin, in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		i := 0
		for b.Loop() {
			if _, err := s.Decrypt(ctx, admin, d.inputs[i]); err != nil {
				b.Fatal(err)
			}
			if i++; i == decryptBenchKeys {
				i = 0
			}
		}
	}
	b.StopTimer()

	hits1, misses1 := s.CacheStats()
	hits, misses := hits1-hits0, misses1-misses0
	unwraps := d.ks.unwraps.Load() - unwraps0
	n := float64(b.N)
	b.ReportMetric(float64(misses)/n, "misses/op")
	b.ReportMetric(float64(unwraps)/n, "unwraps/op")

	if unwraps != misses {
		b.Fatalf("%d keystore unwraps for %d cache misses", unwraps, misses)
	}
	switch {
	case !cold && misses != 0:
		b.Fatalf("warm cache: %d misses in %d decrypts (%d hits)", misses, b.N, hits)
	case cold && !parallel && misses != uint64(b.N):
		b.Fatalf("cold cache: %d misses in %d decrypts (%d hits), want one per decrypt", misses, b.N, hits)
	case cold && parallel && float64(misses) < 0.99*n:
		// Concurrent requests could in theory hit a material another
		// goroutine just put; with decryptBenchKeys keys that is rare.
		b.Fatalf("cold cache: %d misses in %d parallel decrypts (%d hits), want (nearly) one per decrypt", misses, b.N, hits)
	}
}
