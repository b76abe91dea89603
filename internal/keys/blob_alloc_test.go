package keys

import (
	"testing"

	"github.com/kmsd/kmsd/internal/testalloc"
)

// TestBlobAllocs holds the allocation budgets of sealing and opening a
// ciphertext blob: the cryptography of every Encrypt, GenerateDataKey and
// Decrypt. Figures of Go 1.26, 32-byte plaintext, one context pair
// (BenchmarkSeal and BenchmarkOpen measure the time).
func TestBlobAllocs(t *testing.T) {
	material := make([]byte, MaterialSize)
	plaintext := make([]byte, 32)
	encCtx := map[string]string{"purpose": "bench"}
	blob, err := Seal(nil, material, testHeader, plaintext, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	// 26 today (30 before CanonicalContext sorted the keys of a small
	// context on the stack): HKDF-SHA256 of the per-message key 18
	// (crypto/hkdf makes a new HMAC and its hashes for Extract and again
	// for Expand), CanonicalContext 1 (the encoding), aes.NewCipher
	// and cipher.NewGCM 2 (a new AEAD per message: the key is derived per
	// salt), the additional data 1, the blob and its nonce 2 or so.
	testalloc.Budget(t, "Seal", 28, func() {
		if _, err := Seal(nil, material, testHeader, plaintext, encCtx); err != nil {
			t.Fatal(err)
		}
	})
	// 29 today (33 before): the same derivation, context and AEAD as Seal, plus the
	// plaintext and the hex key and material ids of the parsed header.
	testalloc.Budget(t, "Open", 31, func() {
		if _, err := Open(material, blob, encCtx); err != nil {
			t.Fatal(err)
		}
	})
}
