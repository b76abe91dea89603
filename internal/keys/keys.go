// Package keys implements kmsd's cryptographic algorithms and formats.
//
// The symmetric ciphertext blob (blob.go) is what Encrypt returns to clients
// and Decrypt accepts back. Its layout is fixed forever once released: it is
// documented byte by byte in docs/ciphertext-format.md and pinned by the test
// vectors in testdata/. Any change to Seal, Open, CanonicalContext or the
// constants below that alters a single output byte is a compatibility break
// and must come as a new format version, never as an edit of version 1.
//
// Functions that need randomness take an io.Reader so that tests can be
// deterministic; production callers pass crypto/rand.Reader (a nil reader is
// treated as crypto/rand.Reader).
package keys

import (
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// MaterialSize is the size in bytes of a symmetric backing key (AES-256).
const MaterialSize = 32

// MaterialIDSize is the size in bytes of a key material id. Clients see it
// as 64 lowercase hex characters (the KeyMaterialId of the KMS API).
const MaterialIDSize = 32

// ErrInvalidCiphertext is returned (possibly wrapped, with a short reason)
// by ParseHeader and Open for every blob that cannot be parsed or
// authenticated. The KMS layer maps it to InvalidCiphertextException.
//
// The reasons deliberately do not say which authentication input was wrong
// (material, context, or a flipped bit): GCM cannot tell them apart, and
// telling callers more would only help an attacker.
var ErrInvalidCiphertext = errors.New("keys: invalid ciphertext")

// NewMaterial returns MaterialSize fresh random bytes read from rand, for
// use as a symmetric backing key. The caller owns the slice and should
// clear() it when done.
func NewMaterial(rand io.Reader) ([]byte, error) {
	m := make([]byte, MaterialSize)
	if _, err := io.ReadFull(orDefault(rand), m); err != nil {
		return nil, fmt.Errorf("keys: reading random key material: %w", err)
	}
	return m, nil
}

// NewMaterialID returns a fresh random key material id as 64 lowercase hex
// characters. Material ids are not secret; 256 random bits make collisions
// between backing keys of any key impossible in practice.
func NewMaterialID(rand io.Reader) (string, error) {
	var id [MaterialIDSize]byte
	if _, err := io.ReadFull(orDefault(rand), id[:]); err != nil {
		return "", fmt.Errorf("keys: reading random material id: %w", err)
	}
	return hex.EncodeToString(id[:]), nil
}

// orDefault returns r, or crypto/rand.Reader when r is nil.
func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}
