package envelope

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
)

// Throughput of Encrypt and Decrypt on 64 MiB with a local keyring (the
// 1 GiB comparison with age is bench/envelope/run.sh).
func BenchmarkEnvelope(b *testing.B) {
	kr := testKeyring(b)
	pt := pattern(64 << 20)
	for _, s := range suites {
		b.Run(fmt.Sprintf("encrypt/%04x", uint16(s)), func(b *testing.B) {
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := Encrypt(context.Background(), io.Discard, bytes.NewReader(pt), EncryptOptions{Keyring: kr, Suite: s}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decrypt/%04x", uint16(s)), func(b *testing.B) {
			ct := encrypt(b, pt, EncryptOptions{Keyring: kr, Suite: s})
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := Decrypt(context.Background(), io.Discard, bytes.NewReader(ct), DecryptOptions{Keyring: kr}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
