package keys

// secp256k1 (ECC_SECG_P256K1) is not in the standard library: the curve
// arithmetic and ECDSA come from github.com/decred/dcrd/dcrec/secp256k1/v4,
// the DER encodings are written here.

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// secp256k1Params is the DER of the namedCurve parameter.
var secp256k1Params = mustMarshal(oidSecp256k1)

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func generateSecp256k1(rand io.Reader) (*secp256k1.PrivateKey, error) {
	k, err := secp256k1.GeneratePrivateKeyFromRand(orDefault(rand))
	if err != nil {
		return nil, fmt.Errorf("keys: generating secp256k1 key: %w", err)
	}
	return k, nil
}

// marshalSecp256k1PKCS8 encodes k as PKCS #8 holding an RFC 5915
// ECPrivateKey with its public key.
func marshalSecp256k1PKCS8(k *secp256k1.PrivateKey) ([]byte, error) {
	scalar := k.Key.Bytes()
	defer clear(scalar[:])
	pub := k.PubKey().SerializeUncompressed()
	inner, err := asn1.Marshal(ecPrivateKey{
		Version:    1,
		PrivateKey: scalar[:],
		PublicKey:  asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)},
	})
	if err != nil {
		return nil, fmt.Errorf("keys: encoding secp256k1 key: %w", err)
	}
	defer clear(inner)
	der, err := asn1.Marshal(pkcs8{
		Algo:       pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: secp256k1Params}},
		PrivateKey: inner,
	})
	if err != nil {
		return nil, fmt.Errorf("keys: encoding secp256k1 key: %w", err)
	}
	return der, nil
}

// parseSecp256k1PKCS8 decodes what marshalSecp256k1PKCS8 writes, and the
// same structure from other encoders (OpenSSL adds the curve inside too).
func parseSecp256k1PKCS8(der []byte) (*secp256k1.PrivateKey, error) {
	var p pkcs8
	if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) != 0 {
		return nil, errors.New("keys: private key is not DER PKCS #8")
	}
	if !p.Algo.Algorithm.Equal(oidECPublicKey) || !bytes.Equal(p.Algo.Parameters.FullBytes, secp256k1Params) {
		return nil, errors.New("keys: private key is not a secp256k1 key")
	}
	var ec ecPrivateKey
	if rest, err := asn1.Unmarshal(p.PrivateKey, &ec); err != nil || len(rest) != 0 {
		return nil, errors.New("keys: secp256k1 private key is not a DER ECPrivateKey")
	}
	defer clear(ec.PrivateKey)
	if ec.Version != 1 || len(ec.PrivateKey) > 32 || (len(ec.Parameters) != 0 && !ec.Parameters.Equal(oidSecp256k1)) {
		return nil, errors.New("keys: malformed secp256k1 ECPrivateKey")
	}
	var scalar secp256k1.ModNScalar
	// RFC 5915 wants the full 32 bytes, but some encoders strip leading
	// zeros; SetByteSlice reads either. Overflow or zero is not a key.
	if overflow := scalar.SetByteSlice(ec.PrivateKey); overflow || scalar.IsZero() {
		return nil, errors.New("keys: secp256k1 private key is out of range")
	}
	return secp256k1.NewPrivateKey(&scalar), nil
}

func marshalSecp256k1SPKI(pub *secp256k1.PublicKey) ([]byte, error) {
	return marshalSPKI(oidECPublicKey, secp256k1Params, pub.SerializeUncompressed())
}

// signSecp256k1 returns the DER ECDSA signature of digest. The nonce is
// derived as in RFC 6979, so it does not depend on a random source.
func signSecp256k1(k *secp256k1.PrivateKey, digest []byte) []byte {
	return k1ecdsa.Sign(k, digest).Serialize()
}

// verifySecp256k1 accepts any valid DER signature, including the high-S
// form that other signers (not kmsd, which always writes low S) produce.
func verifySecp256k1(pub *secp256k1.PublicKey, digest, sig []byte) bool {
	s, err := k1ecdsa.ParseDERSignature(sig)
	if err != nil {
		return false
	}
	return s.Verify(digest, pub)
}

// secp256k1ParsePubKey parses a SEC 1 encoded secp256k1 point.
func secp256k1ParsePubKey(b []byte) (*secp256k1.PublicKey, error) {
	pk, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return nil, fmt.Errorf("keys: parsing secp256k1 public key: %w", err)
	}
	return pk, nil
}
