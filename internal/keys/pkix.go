package keys

// DER encodings that crypto/x509 does not cover: secp256k1 keys (RFC 5480
// and RFC 5915 with the SEC 2 curve OID), ML-DSA keys (RFC 9881) and ML-KEM
// keys (RFC 9935). The private keys of the last two are stored in the
// seed-only PKCS #8 form, "seed [0] IMPLICIT OCTET STRING", which is what
// both RFCs recommend and what OpenSSL 3.5 and later read and write.

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

	oidMLDSA44 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 17}
	oidMLDSA65 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
	oidMLDSA87 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}

	oidMLKEM512  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 4, 1}
	oidMLKEM768  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 4, 2}
	oidMLKEM1024 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 4, 3}
)

// pkcs8 is the OneAsymmetricKey structure of RFC 5958 without the optional
// attributes and public key, which kmsd never writes.
type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// spki is SubjectPublicKeyInfo (RFC 5280, section 4.1).
type spki struct {
	Algo      pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// ecPrivateKey is the ECPrivateKey structure of RFC 5915. Inside PKCS #8 the
// curve is named by the outer AlgorithmIdentifier, so Parameters is left out
// when kmsd writes one (as crypto/x509 and OpenSSL do) and ignored on read
// unless it contradicts the outer one.
type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Parameters asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// marshalSPKI encodes a public key under an algorithm without parameters
// (ML-DSA, ML-KEM) or with the given parameters.
func marshalSPKI(oid asn1.ObjectIdentifier, params []byte, pub []byte) ([]byte, error) {
	algo := pkix.AlgorithmIdentifier{Algorithm: oid}
	if params != nil {
		algo.Parameters = asn1.RawValue{FullBytes: params}
	}
	der, err := asn1.Marshal(spki{Algo: algo, PublicKey: asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}})
	if err != nil {
		return nil, fmt.Errorf("keys: encoding public key: %w", err)
	}
	return der, nil
}

// parseSPKI decodes a SubjectPublicKeyInfo and returns its algorithm, the
// DER of its parameters (nil when absent) and the public key bytes.
func parseSPKI(der []byte) (asn1.ObjectIdentifier, []byte, []byte, error) {
	var s spki
	rest, err := asn1.Unmarshal(der, &s)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("keys: public key is not a DER SubjectPublicKeyInfo: %w", err)
	}
	if len(rest) != 0 {
		return nil, nil, nil, errors.New("keys: trailing data after the public key")
	}
	if s.PublicKey.BitLength%8 != 0 {
		return nil, nil, nil, errors.New("keys: public key bit string is not whole bytes")
	}
	return s.Algo.Algorithm, s.Algo.Parameters.FullBytes, s.PublicKey.Bytes, nil
}

// marshalSeedPKCS8 encodes an ML-DSA or ML-KEM private key seed in the
// seed-only PKCS #8 form: the privateKey octet string holds [0] IMPLICIT
// OCTET STRING (tag 0x80) and the seed.
func marshalSeedPKCS8(oid asn1.ObjectIdentifier, seed []byte) ([]byte, error) {
	inner := make([]byte, 0, 2+len(seed))
	inner = append(append(inner, 0x80, byte(len(seed))), seed...)
	der, err := asn1.Marshal(pkcs8{Algo: pkix.AlgorithmIdentifier{Algorithm: oid}, PrivateKey: inner})
	clear(inner)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding private key: %w", err)
	}
	return der, nil
}

// parseSeedPKCS8 returns the seed of a seed-only PKCS #8 key of algorithm
// oid. The expanded and "both" forms are refused: kmsd never writes them.
func parseSeedPKCS8(der []byte, oid asn1.ObjectIdentifier, seedSize int) ([]byte, error) {
	var p pkcs8
	rest, err := asn1.Unmarshal(der, &p)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("keys: private key is not DER PKCS #8")
	}
	if !p.Algo.Algorithm.Equal(oid) || len(p.Algo.Parameters.FullBytes) != 0 {
		return nil, fmt.Errorf("keys: private key algorithm is %v, want %v", p.Algo.Algorithm, oid)
	}
	k := p.PrivateKey
	if len(k) != 2+seedSize || k[0] != 0x80 || int(k[1]) != seedSize {
		return nil, errors.New("keys: private key is not in the seed-only form")
	}
	return k[2:], nil
}
