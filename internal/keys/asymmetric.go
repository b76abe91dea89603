package keys

// Asymmetric keys: RSA, ECDSA and ECDH on the NIST curves, ECDSA on
// secp256k1, Ed25519, ML-DSA and ML-KEM, under the AWS KMS names of their
// key specs and algorithms.
//
// Storage format. A private key is stored (wrapped by the keystore) and
// handed out by GenerateDataKeyPair as DER PKCS #8:
//
//   - RSA, NIST ECC, Ed25519: what crypto/x509.MarshalPKCS8PrivateKey writes
//     (Ed25519 as its 32-byte seed, RFC 8410);
//   - secp256k1: id-ecPublicKey with the secp256k1 curve OID and an RFC 5915
//     ECPrivateKey including the public key, as OpenSSL writes it;
//   - ML-DSA (RFC 9881) and ML-KEM (RFC 9935): the seed-only form, a
//     32-byte ξ for ML-DSA and the 64-byte d || z for ML-KEM.
//
// Public keys are DER SubjectPublicKeyInfo, derived from the private key.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/mlkem"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"filippo.io/mldsa"
	"filippo.io/mldsa/mldsacrypto"
	"github.com/cloudflare/circl/kem/mlkem/mlkem512"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Key specs (AWS KeySpec and DataKeyPairSpec values) implemented here.
const (
	SpecRSA2048      = "RSA_2048"
	SpecRSA3072      = "RSA_3072"
	SpecRSA4096      = "RSA_4096"
	SpecP256         = "ECC_NIST_P256"
	SpecP384         = "ECC_NIST_P384"
	SpecP521         = "ECC_NIST_P521"
	SpecSecp256k1    = "ECC_SECG_P256K1"
	SpecEd25519      = "ECC_NIST_EDWARDS25519"
	SpecMLDSA44      = "ML_DSA_44"
	SpecMLDSA65      = "ML_DSA_65"
	SpecMLDSA87      = "ML_DSA_87"
	SpecMLKEM512     = "ML_KEM_512"
	SpecMLKEM768     = "ML_KEM_768"
	SpecMLKEM1024    = "ML_KEM_1024"
	SpecHMAC224      = "HMAC_224"
	SpecHMAC256      = "HMAC_256"
	SpecHMAC384      = "HMAC_384"
	SpecHMAC512      = "HMAC_512"
	SpecSymmetric    = "SYMMETRIC_DEFAULT"
	SpecSM2          = "SM2"
	SigRSAPSS256     = "RSASSA_PSS_SHA_256"
	SigRSAPSS384     = "RSASSA_PSS_SHA_384"
	SigRSAPSS512     = "RSASSA_PSS_SHA_512"
	SigRSAPKCS1256   = "RSASSA_PKCS1_V1_5_SHA_256"
	SigRSAPKCS1384   = "RSASSA_PKCS1_V1_5_SHA_384"
	SigRSAPKCS1512   = "RSASSA_PKCS1_V1_5_SHA_512"
	SigECDSA256      = "ECDSA_SHA_256"
	SigECDSA384      = "ECDSA_SHA_384"
	SigECDSA512      = "ECDSA_SHA_512"
	SigEd25519       = "ED25519_SHA_512"
	SigEd25519ph     = "ED25519_PH_SHA_512"
	SigMLDSA         = "ML_DSA_SHAKE_256"
	EncOAEPSHA1      = "RSAES_OAEP_SHA_1"
	EncOAEPSHA256    = "RSAES_OAEP_SHA_256"
	AgreeECDH        = "ECDH"
	EncapsulateMLKEM = "ML_KEM"
	MessageRaw       = "RAW"
	MessageDigest    = "DIGEST"
	MessageMu        = "EXTERNAL_MU"
)

// MaxRawMessage is the largest message Sign and Verify accept whole.
const MaxRawMessage = 4096

// Errors of the asymmetric operations that a client can cause. Callers map
// them to AWS exceptions; each is returned wrapped with a precise reason.
var (
	// ErrMessage: the message does not fit the algorithm and message type
	// (a digest of the wrong length, a message type the algorithm refuses).
	ErrMessage = errors.New("keys: invalid message for the signing algorithm")
	// ErrAlgorithm: the algorithm does not belong to the key.
	ErrAlgorithm = errors.New("keys: algorithm not valid for this key")
	// ErrDecrypt: an RSA ciphertext did not decrypt.
	ErrDecrypt = errors.New("keys: decryption failed")
	// ErrPlaintextSize: the plaintext is too long for RSA-OAEP.
	ErrPlaintextSize = errors.New("keys: plaintext too long")
	// ErrPeerKey: the peer public key of a key agreement is not usable.
	ErrPeerKey = errors.New("keys: invalid peer public key")
	// ErrCiphertextSize: an ML-KEM ciphertext has the wrong length.
	ErrCiphertextSize = errors.New("keys: wrong ML-KEM ciphertext size")
)

// PrivateKey is a parsed asymmetric private key of one key spec. It is safe
// for concurrent use.
type PrivateKey struct {
	spec string
	pub  []byte // DER SubjectPublicKeyInfo

	rsa     *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	k1      *secp256k1.PrivateKey
	ed      ed25519.PrivateKey
	mldsa   *mldsa.PrivateKey
	kem512  *mlkem512.PrivateKey
	kem768  *mlkem.DecapsulationKey768
	kem1024 *mlkem.DecapsulationKey1024

	verifier publicKey // the public half of a signing key
}

// Spec returns the key spec of k.
func (k *PrivateKey) Spec() string { return k.spec }

// PublicKey returns the DER SubjectPublicKeyInfo of k (a fresh copy).
func (k *PrivateKey) PublicKey() []byte { return slices.Clone(k.pub) }

// Destroy drops the key's secret parts, zeroing those Go lets us reach
// (Ed25519 and secp256k1 scalars, RSA's D and primes). The internal
// representations the standard library precomputes cannot be wiped; they
// become garbage. k must not be used afterwards.
func (k *PrivateKey) Destroy() {
	clear(k.ed)
	if k.k1 != nil {
		k.k1.Zero()
	}
	if k.rsa != nil {
		k.rsa.D.SetInt64(0)
		for _, p := range k.rsa.Primes {
			p.SetInt64(0)
		}
	}
	*k = PrivateKey{spec: k.spec}
}

func rsaBits(spec string) int {
	switch spec {
	case SpecRSA2048:
		return 2048
	case SpecRSA3072:
		return 3072
	case SpecRSA4096:
		return 4096
	}
	return 0
}

func nistCurve(spec string) elliptic.Curve {
	switch spec {
	case SpecP256:
		return elliptic.P256()
	case SpecP384:
		return elliptic.P384()
	case SpecP521:
		return elliptic.P521()
	}
	return nil
}

func mldsaParamsOf(spec string) (mldsa.Parameters, *mldsaParams, asn1.ObjectIdentifier, bool) {
	switch spec {
	case SpecMLDSA44:
		return mldsa.MLDSA44(), &mldsa44Params, oidMLDSA44, true
	case SpecMLDSA65:
		return mldsa.MLDSA65(), &mldsa65Params, oidMLDSA65, true
	case SpecMLDSA87:
		return mldsa.MLDSA87(), &mldsa87Params, oidMLDSA87, true
	}
	return mldsa.Parameters{}, nil, nil, false
}

func mlkemOID(spec string) asn1.ObjectIdentifier {
	switch spec {
	case SpecMLKEM512:
		return oidMLKEM512
	case SpecMLKEM768:
		return oidMLKEM768
	case SpecMLKEM1024:
		return oidMLKEM1024
	}
	return nil
}

// IsAsymmetric reports whether spec is an asymmetric key spec this package
// implements (SM2 is not one of them).
func IsAsymmetric(spec string) bool {
	return rsaBits(spec) != 0 || nistCurve(spec) != nil || spec == SpecSecp256k1 || spec == SpecEd25519 ||
		mlkemOID(spec) != nil || spec == SpecMLDSA44 || spec == SpecMLDSA65 || spec == SpecMLDSA87
}

// GenerateKey returns a fresh private key of spec as DER PKCS #8. The
// caller owns the slice and should clear it when done. Seeds and scalars
// are read from rand where the algorithm takes one (nil means
// crypto/rand.Reader); RSA and NIST ECDSA key generation always use the
// system's secure source, as crypto/rsa and crypto/ecdsa do since Go 1.26.
func GenerateKey(spec string, rand io.Reader) ([]byte, error) {
	rand = orDefault(rand)
	var key any
	switch {
	case rsaBits(spec) != 0:
		k, err := rsa.GenerateKey(rand, rsaBits(spec))
		if err != nil {
			return nil, fmt.Errorf("keys: generating %s key: %w", spec, err)
		}
		key = k
	case nistCurve(spec) != nil:
		k, err := ecdsa.GenerateKey(nistCurve(spec), rand)
		if err != nil {
			return nil, fmt.Errorf("keys: generating %s key: %w", spec, err)
		}
		key = k
	case spec == SpecEd25519:
		_, k, err := ed25519.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("keys: generating %s key: %w", spec, err)
		}
		defer clear(k)
		key = k
	case spec == SpecSecp256k1:
		k, err := generateSecp256k1(rand)
		if err != nil {
			return nil, err
		}
		defer k.Zero()
		return marshalSecp256k1PKCS8(k)
	case mlkemOID(spec) != nil:
		return generateSeedKey(rand, mlkemOID(spec), mlkem.SeedSize)
	default:
		if _, _, oid, ok := mldsaParamsOf(spec); ok {
			return generateSeedKey(rand, oid, mldsa.PrivateKeySize)
		}
		return nil, fmt.Errorf("keys: key spec %q is not an asymmetric spec kmsd implements", spec)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding %s key: %w", spec, err)
	}
	return der, nil
}

func generateSeedKey(rand io.Reader, oid asn1.ObjectIdentifier, size int) ([]byte, error) {
	seed := make([]byte, size)
	defer clear(seed)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("keys: reading random key seed: %w", err)
	}
	return marshalSeedPKCS8(oid, seed)
}

// ParsePrivateKey parses a DER PKCS #8 private key that must be of spec, and
// derives its public key. It does not keep der.
func ParsePrivateKey(spec string, der []byte) (*PrivateKey, error) {
	k := &PrivateKey{spec: spec}
	var err error
	switch {
	case rsaBits(spec) != 0 || nistCurve(spec) != nil || spec == SpecEd25519:
		var key any
		key, err = x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("keys: parsing %s private key: %w", spec, err)
		}
		switch key := key.(type) {
		case *rsa.PrivateKey:
			if key.N.BitLen() != rsaBits(spec) {
				return nil, fmt.Errorf("keys: RSA key of %d bits is not a %s key", key.N.BitLen(), spec)
			}
			k.rsa = key
		case *ecdsa.PrivateKey:
			if key.Curve != nistCurve(spec) {
				return nil, fmt.Errorf("keys: %s key is not a %s key", key.Curve.Params().Name, spec)
			}
			k.ec = key
		case ed25519.PrivateKey:
			if spec != SpecEd25519 {
				return nil, fmt.Errorf("keys: Ed25519 key is not a %s key", spec)
			}
			k.ed = key
		default:
			return nil, fmt.Errorf("keys: %T is not a %s key", key, spec)
		}
		if k.pub, err = x509.MarshalPKIXPublicKey(k.public()); err != nil {
			return nil, fmt.Errorf("keys: encoding %s public key: %w", spec, err)
		}
		switch {
		case k.rsa != nil:
			k.verifier.rsa = &k.rsa.PublicKey
		case k.ec != nil:
			k.verifier.ec = &k.ec.PublicKey
		default:
			k.verifier.ed = k.ed.Public().(ed25519.PublicKey)
		}
	case spec == SpecSecp256k1:
		if k.k1, err = parseSecp256k1PKCS8(der); err != nil {
			return nil, err
		}
		k.verifier.k1 = k.k1.PubKey()
		if k.pub, err = marshalSecp256k1SPKI(k.verifier.k1); err != nil {
			return nil, err
		}
	case mlkemOID(spec) != nil:
		seed, err := parseSeedPKCS8(der, mlkemOID(spec), mlkem.SeedSize)
		if err != nil {
			return nil, err
		}
		var ek []byte
		switch spec {
		case SpecMLKEM512:
			pk, sk := mlkem512.NewKeyFromSeed(seed)
			k.kem512 = sk
			ek = make([]byte, mlkem512.PublicKeySize)
			pk.Pack(ek)
		case SpecMLKEM768:
			if k.kem768, err = mlkem.NewDecapsulationKey768(seed); err != nil {
				return nil, fmt.Errorf("keys: parsing %s private key: %w", spec, err)
			}
			ek = k.kem768.EncapsulationKey().Bytes()
		case SpecMLKEM1024:
			if k.kem1024, err = mlkem.NewDecapsulationKey1024(seed); err != nil {
				return nil, fmt.Errorf("keys: parsing %s private key: %w", spec, err)
			}
			ek = k.kem1024.EncapsulationKey().Bytes()
		}
		if k.pub, err = marshalSPKI(mlkemOID(spec), nil, ek); err != nil {
			return nil, err
		}
	default:
		params, p, oid, ok := mldsaParamsOf(spec)
		if !ok {
			return nil, fmt.Errorf("keys: key spec %q is not an asymmetric spec kmsd implements", spec)
		}
		seed, err := parseSeedPKCS8(der, oid, mldsa.PrivateKeySize)
		if err != nil {
			return nil, err
		}
		if k.mldsa, err = mldsa.NewPrivateKey(params, seed); err != nil {
			return nil, fmt.Errorf("keys: parsing %s private key: %w", spec, err)
		}
		k.verifier.mldsa, k.verifier.mldsaP = k.mldsa.PublicKey(), p
		if k.pub, err = marshalSPKI(oid, nil, k.verifier.mldsa.Bytes()); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// public returns the crypto/x509 public key of an RSA, NIST or Ed25519 key.
func (k *PrivateKey) public() crypto.PublicKey {
	switch {
	case k.rsa != nil:
		return &k.rsa.PublicKey
	case k.ec != nil:
		return &k.ec.PublicKey
	default:
		return k.ed.Public()
	}
}

// hashOf returns the hash function of a signing or encryption algorithm.
func hashOf(alg string) crypto.Hash {
	switch alg {
	case SigRSAPSS256, SigRSAPKCS1256, SigECDSA256, EncOAEPSHA256:
		return crypto.SHA256
	case SigRSAPSS384, SigRSAPKCS1384, SigECDSA384:
		return crypto.SHA384
	case SigRSAPSS512, SigRSAPKCS1512, SigECDSA512, SigEd25519, SigEd25519ph:
		return crypto.SHA512
	case EncOAEPSHA1:
		return crypto.SHA1
	}
	return 0
}

func newHash(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New()
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	default:
		return sha512.New()
	}
}

// SigningAlgorithms returns the signing algorithms of spec, in the order
// AWS KMS lists them.
func SigningAlgorithms(spec string) []string {
	switch {
	case rsaBits(spec) != 0:
		return []string{SigRSAPKCS1256, SigRSAPKCS1384, SigRSAPKCS1512, SigRSAPSS256, SigRSAPSS384, SigRSAPSS512}
	case spec == SpecP256 || spec == SpecSecp256k1:
		return []string{SigECDSA256}
	case spec == SpecP384:
		return []string{SigECDSA384}
	case spec == SpecP521:
		return []string{SigECDSA512}
	case spec == SpecEd25519:
		return []string{SigEd25519, SigEd25519ph}
	case spec == SpecMLDSA44 || spec == SpecMLDSA65 || spec == SpecMLDSA87:
		return []string{SigMLDSA}
	}
	return nil
}

// CheckMessage checks that msg and msgType ("" means RAW) suit the signing
// algorithm alg, following the AWS rules: a DIGEST is exactly as long as the
// algorithm's hash, Ed25519 signs RAW messages and Ed25519ph DIGESTs, and
// EXTERNAL_MU (a 64-byte μ) is for ML-DSA only. Errors wrap ErrMessage.
func CheckMessage(alg, msgType string, msg []byte) error {
	switch msgType {
	case "", MessageRaw:
		if len(msg) > MaxRawMessage {
			return fmt.Errorf("%w: a RAW message is at most %d bytes", ErrMessage, MaxRawMessage)
		}
		if alg == SigEd25519ph {
			return fmt.Errorf("%w: %s requires MessageType DIGEST", ErrMessage, alg)
		}
	case MessageDigest:
		if alg == SigEd25519 || alg == SigMLDSA {
			return fmt.Errorf("%w: %s does not accept MessageType DIGEST", ErrMessage, alg)
		}
		if h := hashOf(alg); h != 0 && len(msg) != h.Size() {
			return fmt.Errorf("%w: Digest is invalid length for algorithm %s: it must be %d bytes", ErrMessage, alg, h.Size())
		}
	case MessageMu:
		if alg != SigMLDSA {
			return fmt.Errorf("%w: MessageType EXTERNAL_MU is valid only with %s", ErrMessage, SigMLDSA)
		}
		if len(msg) != MLDSAMuSize {
			return fmt.Errorf("%w: an EXTERNAL_MU message is exactly %d bytes", ErrMessage, MLDSAMuSize)
		}
	default:
		return fmt.Errorf("%w: unknown MessageType %q", ErrMessage, msgType)
	}
	return nil
}

// digest returns what the algorithm signs: the hash of a RAW message, or
// the DIGEST as given. Ed25519ph hashes even a DIGEST: AWS KMS applies the
// SHA-512 prehash of FIPS 186-5 section 7.8.1 to whatever it is sent.
func digest(alg, msgType string, msg []byte) []byte {
	h := hashOf(alg)
	if msgType == MessageDigest && alg != SigEd25519ph {
		return msg
	}
	d := newHash(h)
	d.Write(msg)
	return d.Sum(nil)
}

func (k *PrivateKey) checkSigning(alg, msgType string, msg []byte) error {
	if !slices.Contains(SigningAlgorithms(k.spec), alg) {
		return fmt.Errorf("%w: %s cannot sign with %s", ErrAlgorithm, k.spec, alg)
	}
	return CheckMessage(alg, msgType, msg)
}

// Sign signs msg (of msgType, "" meaning RAW) with algorithm alg. rand is
// used where the algorithm is randomized (nil means crypto/rand.Reader).
func (k *PrivateKey) Sign(rand io.Reader, alg, msgType string, msg []byte) ([]byte, error) {
	if err := k.checkSigning(alg, msgType, msg); err != nil {
		return nil, err
	}
	rand = orDefault(rand)
	var sig []byte
	var err error
	switch {
	case k.mldsa != nil:
		if msgType == MessageMu {
			// mldsacrypto.MLDSAMu as the hash tells the signer that msg is
			// already μ (FIPS 204 section 6.2, external μ).
			sig, err = k.mldsa.Sign(rand, msg, mldsacrypto.MLDSAMu)
		} else {
			sig, err = k.mldsa.Sign(rand, msg, nil)
		}
	case k.ed != nil:
		if alg == SigEd25519 {
			return ed25519.Sign(k.ed, msg), nil
		}
		return signEd25519ph(k.ed, msg)
	case k.rsa != nil:
		d := digest(alg, msgType, msg)
		switch alg {
		case SigRSAPSS256, SigRSAPSS384, SigRSAPSS512:
			// AWS KMS uses a salt as long as the hash.
			sig, err = rsa.SignPSS(rand, k.rsa, hashOf(alg), d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		default:
			sig, err = rsa.SignPKCS1v15(rand, k.rsa, hashOf(alg), d)
		}
	case k.ec != nil:
		sig, err = ecdsa.SignASN1(rand, k.ec, digest(alg, msgType, msg))
	case k.k1 != nil:
		sig = signSecp256k1(k.k1, digest(alg, msgType, msg))
	default:
		return nil, fmt.Errorf("%w: %s keys do not sign", ErrAlgorithm, k.spec)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: signing with %s: %w", alg, err)
	}
	return sig, nil
}

// Verify reports whether sig is a valid signature of msg (of msgType)
// under the public part of k with algorithm alg. An error (wrapping
// ErrAlgorithm or ErrMessage) means the request itself was unfit.
func (k *PrivateKey) Verify(alg, msgType string, msg, sig []byte) (bool, error) {
	if err := k.checkSigning(alg, msgType, msg); err != nil {
		return false, err
	}
	return k.verifier.verify(alg, msgType, msg, sig), nil
}

// publicKey is the verifying half of a signing key.
type publicKey struct {
	rsa    *rsa.PublicKey
	ec     *ecdsa.PublicKey
	k1     *secp256k1.PublicKey
	ed     ed25519.PublicKey
	mldsa  *mldsa.PublicKey
	mldsaP *mldsaParams
}

// verify checks a signature whose algorithm and message the caller has
// checked against the key (checkSigning).
func (p *publicKey) verify(alg, msgType string, msg, sig []byte) bool {
	switch {
	case p.mldsa != nil:
		if msgType == MessageMu {
			return verifyMLDSAMu(p.mldsaP, p.mldsa.Bytes(), msg, sig)
		}
		return mldsa.Verify(p.mldsa, msg, sig, nil) == nil
	case p.ed != nil:
		if alg == SigEd25519 {
			return ed25519.Verify(p.ed, msg, sig)
		}
		return ed25519.VerifyWithOptions(p.ed, digest(alg, msgType, msg), sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
	case p.rsa != nil:
		d := digest(alg, msgType, msg)
		switch alg {
		case SigRSAPSS256, SigRSAPSS384, SigRSAPSS512:
			// Strict: the salt must be as long as the hash, as kmsd and
			// AWS KMS make it.
			return rsa.VerifyPSS(p.rsa, hashOf(alg), d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		default:
			return rsa.VerifyPKCS1v15(p.rsa, hashOf(alg), d, sig) == nil
		}
	case p.ec != nil:
		return ecdsa.VerifyASN1(p.ec, digest(alg, msgType, msg), sig)
	case p.k1 != nil:
		return verifySecp256k1(p.k1, digest(alg, msgType, msg), sig)
	}
	return false
}

// signEd25519ph returns the Ed25519ph signature (RFC 8032, 5.1) of m,
// whose SHA-512 prehash it computes.
func signEd25519ph(k ed25519.PrivateKey, m []byte) ([]byte, error) {
	ph := sha512.Sum512(m)
	sig, err := k.Sign(nil, ph[:], &ed25519.Options{Hash: crypto.SHA512})
	if err != nil {
		return nil, fmt.Errorf("keys: signing with Ed25519ph: %w", err)
	}
	return sig, nil
}

// EncryptionAlgorithms returns the encryption algorithms of an asymmetric
// spec (RSA only).
func EncryptionAlgorithms(spec string) []string {
	if rsaBits(spec) != 0 {
		return []string{EncOAEPSHA1, EncOAEPSHA256}
	}
	return nil
}

// MaxPlaintext returns the longest plaintext RSA-OAEP with alg can encrypt
// under an RSA key of spec: k - 2*hLen - 2 bytes (RFC 8017, 7.1.1).
func MaxPlaintext(spec, alg string) int {
	h := hashOf(alg)
	if rsaBits(spec) == 0 || (alg != EncOAEPSHA1 && alg != EncOAEPSHA256) {
		return 0
	}
	return rsaBits(spec)/8 - 2*h.Size() - 2
}

func (k *PrivateKey) checkEncryption(alg string) error {
	if k.rsa == nil || !slices.Contains(EncryptionAlgorithms(k.spec), alg) {
		return fmt.Errorf("%w: %s cannot encrypt with %s", ErrAlgorithm, k.spec, alg)
	}
	return nil
}

// Encrypt encrypts plaintext to the public key with RSA-OAEP (MGF1 with the
// same hash, empty label), as AWS KMS does.
func (k *PrivateKey) Encrypt(rand io.Reader, alg string, plaintext []byte) ([]byte, error) {
	if err := k.checkEncryption(alg); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintext(k.spec, alg) {
		return nil, fmt.Errorf("%w: %s with %s encrypts at most %d bytes", ErrPlaintextSize, k.spec, alg, MaxPlaintext(k.spec, alg))
	}
	ct, err := rsa.EncryptOAEP(newHash(hashOf(alg)), orDefault(rand), &k.rsa.PublicKey, plaintext, nil)
	if err != nil {
		return nil, fmt.Errorf("keys: RSA-OAEP encryption: %w", err)
	}
	return ct, nil
}

// Decrypt decrypts an RSA-OAEP ciphertext. Every failure is ErrDecrypt,
// without detail: OAEP padding errors must not be told apart.
func (k *PrivateKey) Decrypt(alg string, ciphertext []byte) ([]byte, error) {
	if err := k.checkEncryption(alg); err != nil {
		return nil, err
	}
	pt, err := rsa.DecryptOAEP(newHash(hashOf(alg)), nil, k.rsa, ciphertext, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// KeyAgreementAlgorithms returns the key agreement algorithms of spec.
func KeyAgreementAlgorithms(spec string) []string {
	if nistCurve(spec) != nil {
		return []string{AgreeECDH}
	}
	return nil
}

// DeriveSharedSecret runs ECDH between k and the peer's public key, a DER
// SubjectPublicKeyInfo on the same curve, and returns the raw shared secret
// (the x-coordinate, as SP 800-56A and OpenSSL's pkeyutl -derive give it).
func (k *PrivateKey) DeriveSharedSecret(peerSPKI []byte) ([]byte, error) {
	if k.ec == nil {
		return nil, fmt.Errorf("%w: %s keys do not agree keys", ErrAlgorithm, k.spec)
	}
	pub, err := x509.ParsePKIXPublicKey(peerSPKI)
	if err != nil {
		return nil, fmt.Errorf("%w: not a DER SubjectPublicKeyInfo of a NIST curve point", ErrPeerKey)
	}
	ecPub, ok := pub.(*ecdsa.PublicKey)
	if !ok || ecPub.Curve != k.ec.Curve {
		return nil, fmt.Errorf("%w: the peer key must be a %s public key", ErrPeerKey, k.ec.Curve.Params().Name)
	}
	peer, err := ecPub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeerKey, err)
	}
	priv, err := k.ec.ECDH()
	if err != nil {
		return nil, fmt.Errorf("keys: converting %s key for ECDH: %w", k.spec, err)
	}
	secret, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeerKey, err)
	}
	return secret, nil
}

// EncapsulationAlgorithms returns the key encapsulation algorithms of spec.
func EncapsulationAlgorithms(spec string) []string {
	if mlkemOID(spec) != nil {
		return []string{EncapsulateMLKEM}
	}
	return nil
}

// MLKEMCiphertextSize returns the size of an ML-KEM ciphertext of spec.
func MLKEMCiphertextSize(spec string) int {
	switch spec {
	case SpecMLKEM512:
		return mlkem512.CiphertextSize
	case SpecMLKEM768:
		return mlkem.CiphertextSize768
	case SpecMLKEM1024:
		return mlkem.CiphertextSize1024
	}
	return 0
}

// Encapsulate returns a fresh 32-byte shared secret and its encapsulation
// under the public part of k. rand seeds ML-KEM-512 only: crypto/mlkem
// always draws from the system's secure source.
func (k *PrivateKey) Encapsulate(rand io.Reader) (secret, ciphertext []byte, err error) {
	switch {
	case k.kem512 != nil:
		seed := make([]byte, mlkem512.EncapsulationSeedSize)
		defer clear(seed)
		if _, err := io.ReadFull(orDefault(rand), seed); err != nil {
			return nil, nil, fmt.Errorf("keys: reading encapsulation seed: %w", err)
		}
		secret = make([]byte, mlkem512.SharedKeySize)
		ciphertext = make([]byte, mlkem512.CiphertextSize)
		k.kem512.Public().(*mlkem512.PublicKey).EncapsulateTo(ciphertext, secret, seed)
		return secret, ciphertext, nil
	case k.kem768 != nil:
		secret, ciphertext = k.kem768.EncapsulationKey().Encapsulate()
		return secret, ciphertext, nil
	case k.kem1024 != nil:
		secret, ciphertext = k.kem1024.EncapsulationKey().Encapsulate()
		return secret, ciphertext, nil
	}
	return nil, nil, fmt.Errorf("%w: %s keys do not encapsulate", ErrAlgorithm, k.spec)
}

// Decapsulate recovers the shared secret of an ML-KEM ciphertext. A
// ciphertext of the right size always yields a secret (ML-KEM's implicit
// rejection gives a pseudorandom one for a forged ciphertext); only a wrong
// size is an error (ErrCiphertextSize).
func (k *PrivateKey) Decapsulate(ciphertext []byte) ([]byte, error) {
	if mlkemOID(k.spec) == nil {
		return nil, fmt.Errorf("%w: %s keys do not decapsulate", ErrAlgorithm, k.spec)
	}
	if len(ciphertext) != MLKEMCiphertextSize(k.spec) {
		return nil, fmt.Errorf("%w: %s ciphertexts are %d bytes", ErrCiphertextSize, k.spec, MLKEMCiphertextSize(k.spec))
	}
	switch {
	case k.kem512 != nil:
		secret := make([]byte, mlkem512.SharedKeySize)
		k.kem512.DecapsulateTo(secret, ciphertext)
		return secret, nil
	case k.kem768 != nil:
		return k.kem768.Decapsulate(ciphertext)
	default:
		return k.kem1024.Decapsulate(ciphertext)
	}
}
