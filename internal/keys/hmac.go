package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"io"
)

// MAC algorithms (AWS MacAlgorithmSpec values).
const (
	MacSHA224 = "HMAC_SHA_224"
	MacSHA256 = "HMAC_SHA_256"
	MacSHA384 = "HMAC_SHA_384"
	MacSHA512 = "HMAC_SHA_512"
)

// hmacSpecs maps an HMAC key spec to its one algorithm, its hash and its
// key size: AWS KMS HMAC keys are as long as the hash output.
var hmacSpecs = map[string]struct {
	alg  string
	hash func() hash.Hash
	size int
}{
	SpecHMAC224: {MacSHA224, sha256.New224, 28},
	SpecHMAC256: {MacSHA256, sha256.New, 32},
	SpecHMAC384: {MacSHA384, sha512.New384, 48},
	SpecHMAC512: {MacSHA512, sha512.New, 64},
}

// IsHMAC reports whether spec is an HMAC key spec.
func IsHMAC(spec string) bool {
	_, ok := hmacSpecs[spec]
	return ok
}

// MacAlgorithms returns the MAC algorithms of an HMAC key spec.
func MacAlgorithms(spec string) []string {
	if s, ok := hmacSpecs[spec]; ok {
		return []string{s.alg}
	}
	return nil
}

// GenerateHMACKey returns fresh key material for an HMAC key spec. The
// caller owns the slice and should clear it when done.
func GenerateHMACKey(spec string, rand io.Reader) ([]byte, error) {
	s, ok := hmacSpecs[spec]
	if !ok {
		return nil, fmt.Errorf("keys: %q is not an HMAC key spec", spec)
	}
	k := make([]byte, s.size)
	if _, err := io.ReadFull(orDefault(rand), k); err != nil {
		return nil, fmt.Errorf("keys: reading random HMAC key: %w", err)
	}
	return k, nil
}

// MAC returns the HMAC of msg under key, an HMAC key of spec, with alg,
// which must be the spec's algorithm (else ErrAlgorithm).
func MAC(spec, alg string, key, msg []byte) ([]byte, error) {
	s, ok := hmacSpecs[spec]
	if !ok || s.alg != alg {
		return nil, fmt.Errorf("%w: %s keys do not compute %s", ErrAlgorithm, spec, alg)
	}
	if len(key) != s.size {
		return nil, fmt.Errorf("keys: %s key material is %d bytes, want %d", spec, len(key), s.size)
	}
	m := hmac.New(s.hash, key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// VerifyMAC reports whether tag is the HMAC of msg, comparing in constant
// time. An error means the algorithm does not fit the key.
func VerifyMAC(spec, alg string, key, msg, tag []byte) (bool, error) {
	want, err := MAC(spec, alg, key, msg)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(want, tag) == 1, nil
}
