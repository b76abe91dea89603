package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// p384CoordLen is the byte length of a P-384 coordinate.
const p384CoordLen = 48

// newSigningKey returns a fresh P-384 key for one message (or one cached
// set of materials) and the base64 compressed public key that goes into the
// encryption context as aws-crypto-public-key.
func newSigningKey() (*ecdsa.PrivateKey, string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generating signing key: %w", err)
	}
	pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, "", fmt.Errorf("encoding public key: %w", err)
	}
	// SEC 1 compressed form: 0x02 or 0x03 (the parity of Y) then X.
	comp := make([]byte, 1+p384CoordLen)
	comp[0] = 0x02 | pub[len(pub)-1]&1
	copy(comp[1:], pub[1:1+p384CoordLen])
	return k, base64.StdEncoding.EncodeToString(comp), nil
}

// parseVerificationKey decodes the aws-crypto-public-key context value: a
// standard, padded base64 compressed P-384 point. The point is checked to be
// on the curve.
func parseVerificationKey(s string) (*ecdsa.PublicKey, error) {
	comp, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %v", ErrMalformed, publicKeyContextKey, err)
	}
	if len(comp) != 1+p384CoordLen || (comp[0] != 0x02 && comp[0] != 0x03) {
		return nil, fmt.Errorf("%w: %s is not a compressed P-384 point", ErrMalformed, publicKeyContextKey)
	}
	x, y := elliptic.UnmarshalCompressed(elliptic.P384(), comp)
	if x == nil {
		return nil, fmt.Errorf("%w: %s is not a point on P-384", ErrMalformed, publicKeyContextKey)
	}
	unc := make([]byte, 1+2*p384CoordLen)
	unc[0] = 0x04
	x.FillBytes(unc[1 : 1+p384CoordLen])
	y.FillBytes(unc[1+p384CoordLen:])
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), unc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, publicKeyContextKey, err)
	}
	return pub, nil
}
