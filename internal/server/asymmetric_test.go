package server_test

// Asymmetric, HMAC, key agreement and ML-KEM keys through aws-sdk-go-v2:
// every key spec and algorithm, checked against independent verifiers
// (the Go standard library, filippo.io/mldsa, decred's secp256k1,
// cloudflare/circl), and every error the new operations can send.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"

	"filippo.io/mldsa"
	mldsax509 "filippo.io/mldsa/x509"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/cloudflare/circl/kem/mlkem/mlkem512"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// specUsage is one kind of key: a spec with one of its usages.
type specUsage struct {
	spec  types.KeySpec
	usage types.KeyUsageType
}

// every kind of key AWS offers outside China, with the algorithms AWS
// reports for it.
var everyKind = []struct {
	specUsage
	signing, encryption, mac, agreement, encapsulation []string
}{
	{specUsage{"RSA_2048", "SIGN_VERIFY"}, rsaSigning, nil, nil, nil, nil},
	{specUsage{"RSA_3072", "SIGN_VERIFY"}, rsaSigning, nil, nil, nil, nil},
	{specUsage{"RSA_4096", "SIGN_VERIFY"}, rsaSigning, nil, nil, nil, nil},
	{specUsage{"RSA_2048", "ENCRYPT_DECRYPT"}, nil, rsaEncryption, nil, nil, nil},
	{specUsage{"RSA_3072", "ENCRYPT_DECRYPT"}, nil, rsaEncryption, nil, nil, nil},
	{specUsage{"RSA_4096", "ENCRYPT_DECRYPT"}, nil, rsaEncryption, nil, nil, nil},
	{specUsage{"ECC_NIST_P256", "SIGN_VERIFY"}, []string{"ECDSA_SHA_256"}, nil, nil, nil, nil},
	{specUsage{"ECC_NIST_P384", "SIGN_VERIFY"}, []string{"ECDSA_SHA_384"}, nil, nil, nil, nil},
	{specUsage{"ECC_NIST_P521", "SIGN_VERIFY"}, []string{"ECDSA_SHA_512"}, nil, nil, nil, nil},
	{specUsage{"ECC_NIST_P256", "KEY_AGREEMENT"}, nil, nil, nil, []string{"ECDH"}, nil},
	{specUsage{"ECC_NIST_P384", "KEY_AGREEMENT"}, nil, nil, nil, []string{"ECDH"}, nil},
	{specUsage{"ECC_NIST_P521", "KEY_AGREEMENT"}, nil, nil, nil, []string{"ECDH"}, nil},
	{specUsage{"ECC_SECG_P256K1", "SIGN_VERIFY"}, []string{"ECDSA_SHA_256"}, nil, nil, nil, nil},
	{specUsage{"ECC_NIST_EDWARDS25519", "SIGN_VERIFY"}, []string{"ED25519_SHA_512", "ED25519_PH_SHA_512"}, nil, nil, nil, nil},
	{specUsage{"ML_DSA_44", "SIGN_VERIFY"}, []string{"ML_DSA_SHAKE_256"}, nil, nil, nil, nil},
	{specUsage{"ML_DSA_65", "SIGN_VERIFY"}, []string{"ML_DSA_SHAKE_256"}, nil, nil, nil, nil},
	{specUsage{"ML_DSA_87", "SIGN_VERIFY"}, []string{"ML_DSA_SHAKE_256"}, nil, nil, nil, nil},
	{specUsage{"ML_KEM_512", "ENCAPSULATE_DECAPSULATE"}, nil, nil, nil, nil, []string{"ML_KEM"}},
	{specUsage{"ML_KEM_768", "ENCAPSULATE_DECAPSULATE"}, nil, nil, nil, nil, []string{"ML_KEM"}},
	{specUsage{"ML_KEM_1024", "ENCAPSULATE_DECAPSULATE"}, nil, nil, nil, nil, []string{"ML_KEM"}},
	{specUsage{"HMAC_224", "GENERATE_VERIFY_MAC"}, nil, nil, []string{"HMAC_SHA_224"}, nil, nil},
	{specUsage{"HMAC_256", "GENERATE_VERIFY_MAC"}, nil, nil, []string{"HMAC_SHA_256"}, nil, nil},
	{specUsage{"HMAC_384", "GENERATE_VERIFY_MAC"}, nil, nil, []string{"HMAC_SHA_384"}, nil, nil},
	{specUsage{"HMAC_512", "GENERATE_VERIFY_MAC"}, nil, nil, []string{"HMAC_SHA_512"}, nil, nil},
}

var (
	rsaSigning = []string{"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
		"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"}
	rsaEncryption = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
)

// asymEnv is one kmsd with one key of every kind, shared by the tests of
// this file and openssl_test.go: RSA 4096 key generation takes seconds.
type asymEnv struct {
	*kmstest.Env
	keys map[specUsage]*types.KeyMetadata
}

var (
	sharedAsymOnce sync.Once
	sharedAsym     *asymEnv
	sharedAsymErr  error
)

// keysOfEveryKind returns the shared environment. It lives until the test
// binary exits (its data folder is under the first caller's TempDir only
// in name: kmstest.StartIn with a folder of its own).
func keysOfEveryKind(t *testing.T) *asymEnv {
	t.Helper()
	sharedAsymOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			sharedAsymErr = err
			return
		}
		env := kmstest.StartIn(noCleanupTB{t}, dir)
		ae := &asymEnv{Env: env, keys: map[specUsage]*types.KeyMetadata{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, len(everyKind))
		for _, k := range everyKind {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := env.Client.CreateKey(context.Background(), &awskms.CreateKeyInput{KeySpec: k.spec, KeyUsage: k.usage, Description: aws.String(string(k.spec))})
				if err != nil {
					errs <- fmt.Errorf("CreateKey(%s, %s): %w", k.spec, k.usage, err)
					return
				}
				mu.Lock()
				ae.keys[k.specUsage] = out.KeyMetadata
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			sharedAsymErr = err
		}
		sharedAsym = ae
	})
	if sharedAsymErr != nil {
		t.Fatal(sharedAsymErr)
	}
	return sharedAsym
}

func (e *asymEnv) key(spec types.KeySpec, usage types.KeyUsageType) *types.KeyMetadata {
	return e.keys[specUsage{spec, usage}]
}

// newKey creates a key of its own for a test that changes its state.
func newKey(t *testing.T, c *awskms.Client, spec types.KeySpec, usage types.KeyUsageType) *types.KeyMetadata {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{KeySpec: spec, KeyUsage: usage})
	if err != nil {
		t.Fatalf("CreateKey(%s, %s): %v", spec, usage, err)
	}
	return out.KeyMetadata
}

func strs[T ~string](v []T) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = string(s)
	}
	return out
}

func TestKeySpecsMetadata(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	cmk := []string{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"}
	for _, k := range everyKind {
		t.Run(string(k.spec)+"/"+string(k.usage), func(t *testing.T) {
			md := env.key(k.spec, k.usage)
			d, err := env.Client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []*types.KeyMetadata{md, d.KeyMetadata} {
				if m.KeySpec != k.spec || m.KeyUsage != k.usage || m.KeyState != types.KeyStateEnabled {
					t.Fatalf("metadata %+v", m)
				}
				wantCMK := ""
				if slices.Contains(cmk, string(k.spec)) {
					wantCMK = string(k.spec)
				}
				if string(m.CustomerMasterKeySpec) != wantCMK {
					t.Errorf("CustomerMasterKeySpec = %q, want %q", m.CustomerMasterKeySpec, wantCMK)
				}
				for name, pair := range map[string][2][]string{
					"SigningAlgorithms":       {strs(m.SigningAlgorithms), k.signing},
					"EncryptionAlgorithms":    {strs(m.EncryptionAlgorithms), k.encryption},
					"MacAlgorithms":           {strs(m.MacAlgorithms), k.mac},
					"KeyAgreementAlgorithms":  {strs(m.KeyAgreementAlgorithms), k.agreement},
					"EncapsulationAlgorithms": {strs(m.EncapsulationAlgorithms), k.encapsulation},
				} {
					if !slices.Equal(pair[0], pair[1]) && len(pair[0])+len(pair[1]) > 0 {
						t.Errorf("%s = %v, want %v", name, pair[0], pair[1])
					}
				}
			}
			pk, err := env.Client.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.Arn})
			if k.mac != nil {
				wantCode(t, err, "UnsupportedOperationException")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(pk.KeyId) != *md.Arn || pk.KeySpec != k.spec || pk.KeyUsage != k.usage ||
				!slices.Equal(strs(pk.SigningAlgorithms), k.signing) || !slices.Equal(strs(pk.EncryptionAlgorithms), k.encryption) ||
				!slices.Equal(strs(pk.KeyAgreementAlgorithms), k.agreement) || !slices.Equal(strs(pk.EncapsulationAlgorithms), k.encapsulation) {
				t.Fatalf("GetPublicKey response %+v", pk)
			}
			if _, err := parsePublicKey(string(k.spec), pk.PublicKey); err != nil {
				t.Fatalf("PublicKey: %v", err)
			}
		})
	}
}

// parsePublicKey parses a DER SubjectPublicKeyInfo with an implementation
// other than kmsd's.
func parsePublicKey(spec string, der []byte) (any, error) {
	switch spec {
	case "ECC_SECG_P256K1":
		var s struct {
			Algo struct {
				Algorithm asn1.ObjectIdentifier
				Curve     asn1.ObjectIdentifier
			}
			Key asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &s); err != nil {
			return nil, err
		}
		if !s.Algo.Curve.Equal(asn1.ObjectIdentifier{1, 3, 132, 0, 10}) {
			return nil, fmt.Errorf("curve %v is not secp256k1", s.Algo.Curve)
		}
		return secp256k1.ParsePubKey(s.Key.Bytes)
	case "ML_DSA_44", "ML_DSA_65", "ML_DSA_87":
		return mldsax509.ParsePKIXPublicKey(der)
	case "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024":
		var s struct {
			Algo struct{ Algorithm asn1.ObjectIdentifier }
			Key  asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &s); err != nil {
			return nil, err
		}
		oid := map[string]int{"ML_KEM_512": 1, "ML_KEM_768": 2, "ML_KEM_1024": 3}[spec]
		if !s.Algo.Algorithm.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 4, oid}) {
			return nil, fmt.Errorf("algorithm %v is not %s", s.Algo.Algorithm, spec)
		}
		switch spec {
		case "ML_KEM_512":
			return mlkem512.Scheme().UnmarshalBinaryPublicKey(s.Key.Bytes)
		case "ML_KEM_768":
			return mlkem.NewEncapsulationKey768(s.Key.Bytes)
		default:
			return mlkem.NewEncapsulationKey1024(s.Key.Bytes)
		}
	}
	return x509.ParsePKIXPublicKey(der)
}

func hashFor(alg string) crypto.Hash {
	switch {
	case alg == "ED25519_SHA_512" || alg == "ED25519_PH_SHA_512":
		return crypto.SHA512
	case alg[len(alg)-3:] == "256":
		return crypto.SHA256
	case alg[len(alg)-3:] == "384":
		return crypto.SHA384
	}
	return crypto.SHA512
}

// messageTypes returns the message types AWS accepts with alg, and the
// message to send for each.
func messageTypes(alg string, pub []byte, msg []byte) map[types.MessageType][]byte {
	switch alg {
	case "ED25519_SHA_512":
		return map[types.MessageType][]byte{types.MessageTypeRaw: msg}
	case "ED25519_PH_SHA_512":
		d := sha512.Sum512(msg)
		return map[types.MessageType][]byte{types.MessageTypeDigest: d[:]}
	case "ML_DSA_SHAKE_256":
		return map[types.MessageType][]byte{types.MessageTypeRaw: msg, types.MessageTypeExternalMu: keys.MLDSAMu(pub, msg)}
	}
	h := hashFor(alg).New()
	h.Write(msg)
	return map[types.MessageType][]byte{types.MessageTypeRaw: msg, types.MessageTypeDigest: h.Sum(nil)}
}

// verifyIndependently checks a kmsd signature of msg with another
// implementation than kmsd's.
func verifyIndependently(t *testing.T, spec, alg string, der, msg, sig []byte) {
	t.Helper()
	pub, err := parsePublicKey(spec, der)
	if err != nil {
		t.Fatal(err)
	}
	h := hashFor(alg)
	var digest []byte
	if alg != "ML_DSA_SHAKE_256" && alg != "ED25519_SHA_512" {
		hh := h.New()
		hh.Write(msg)
		digest = hh.Sum(nil)
	}
	ok := false
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if alg[:10] == "RSASSA_PSS" {
			ok = rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
		}
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest, sig)
	case *secp256k1.PublicKey:
		s, err := k1ecdsa.ParseDERSignature(sig)
		ok = err == nil && s.Verify(digest, pub)
	case ed25519.PublicKey:
		if alg == "ED25519_SHA_512" {
			ok = ed25519.Verify(pub, msg, sig)
		} else {
			// ED25519_PH_SHA_512 signs the SHA-512 of the DIGEST it is sent
			// (KMS prehashes again), so the Ed25519ph message is the digest.
			d := sha512.Sum512(digest)
			ok = ed25519.VerifyWithOptions(pub, d[:], sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
		}
	case *mldsa.PublicKey:
		ok = mldsa.Verify(pub, msg, sig, nil) == nil
	default:
		t.Fatalf("no independent verifier for %T", pub)
	}
	if !ok {
		t.Fatalf("%s %s: the signature does not verify independently", spec, alg)
	}
}

func TestSignVerifyEveryAlgorithm(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	msg := []byte("The quick brown fox signs the lazy dog.")
	for _, k := range everyKind {
		if k.signing == nil {
			continue
		}
		t.Run(string(k.spec), func(t *testing.T) {
			t.Parallel()
			md := env.key(k.spec, k.usage)
			pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			var raw struct {
				Algo asn1.RawValue
				Key  asn1.BitString
			}
			asn1.Unmarshal(pk.PublicKey, &raw)
			for _, alg := range k.signing {
				for mt, m := range messageTypes(alg, raw.Key.Bytes, msg) {
					s, err := c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, Message: m, MessageType: mt, SigningAlgorithm: types.SigningAlgorithmSpec(alg)})
					if err != nil {
						t.Fatalf("Sign(%s, %s): %v", alg, mt, err)
					}
					if aws.ToString(s.KeyId) != *md.Arn || string(s.SigningAlgorithm) != alg {
						t.Fatalf("Sign response %+v", s)
					}
					verifyIndependently(t, string(k.spec), alg, pk.PublicKey, msg, s.Signature)
					v, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: md.Arn, Message: m, MessageType: mt, Signature: s.Signature, SigningAlgorithm: types.SigningAlgorithmSpec(alg)})
					if err != nil || !v.SignatureValid || aws.ToString(v.KeyId) != *md.Arn || string(v.SigningAlgorithm) != alg {
						t.Fatalf("Verify(%s, %s): %v %+v", alg, mt, err, v)
					}
					bad := bytes.Clone(m)
					bad[len(bad)-1] ^= 1
					_, err = c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: bad, MessageType: mt, Signature: s.Signature, SigningAlgorithm: types.SigningAlgorithmSpec(alg)})
					wantCode(t, err, "KMSInvalidSignatureException")
					_, err = c.Verify(ctx, &awskms.VerifyInput{KeyId: md.KeyId, Message: m, MessageType: mt, Signature: s.Signature, SigningAlgorithm: types.SigningAlgorithmSpec(alg), DryRun: aws.Bool(true)})
					wantCode(t, err, "DryRunOperationException")
				}
			}
		})
	}
}

func TestRSAEncryption(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	limits := map[string][2]int{"RSA_2048": {214, 190}, "RSA_3072": {342, 318}, "RSA_4096": {470, 446}}
	sym := createKey(t, c, "symmetric")
	for _, spec := range []types.KeySpec{"RSA_2048", "RSA_3072", "RSA_4096"} {
		md := env.key(spec, "ENCRYPT_DECRYPT")
		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pubAny, _ := x509.ParsePKIXPublicKey(pk.PublicKey)
		pub := pubAny.(*rsa.PublicKey)
		for i, alg := range []types.EncryptionAlgorithmSpec{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"} {
			max := limits[string(spec)][i]
			pt := bytes.Repeat([]byte{byte(i + 1)}, max)
			enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: pt, EncryptionAlgorithm: alg})
			if err != nil {
				t.Fatalf("%s %s: Encrypt %d bytes: %v", spec, alg, max, err)
			}
			if len(enc.CiphertextBlob) != pub.Size() || enc.EncryptionAlgorithm != alg {
				t.Fatalf("Encrypt response: %d-byte ciphertext, %s", len(enc.CiphertextBlob), enc.EncryptionAlgorithm)
			}
			dec, err := c.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.Arn, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: alg})
			if err != nil || !bytes.Equal(dec.Plaintext, pt) || dec.EncryptionAlgorithm != alg || aws.ToString(dec.KeyId) != *md.Arn {
				t.Fatalf("%s %s: Decrypt: %v", spec, alg, err)
			}
			// Encrypted elsewhere with the public key, decrypted in kmsd.
			h := crypto.SHA1
			if i == 1 {
				h = crypto.SHA256
			}
			ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, []byte("from outside"), nil)
			if err != nil {
				t.Fatal(err)
			}
			dec, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: ct, EncryptionAlgorithm: alg})
			if err != nil || string(dec.Plaintext) != "from outside" {
				t.Fatalf("%s %s: Decrypt of an outside ciphertext: %v", spec, alg, err)
			}
			_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: append(pt, 0), EncryptionAlgorithm: alg})
			wantCode(t, err, "ValidationException")
			// ReEncrypt from RSA to a symmetric key and back.
			re, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: ct, SourceKeyId: md.KeyId, SourceEncryptionAlgorithm: alg, DestinationKeyId: sym.KeyId})
			if err != nil || re.SourceEncryptionAlgorithm != alg || re.DestinationEncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
				t.Fatalf("ReEncrypt RSA -> symmetric: %v %+v", err, re)
			}
			back, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: re.CiphertextBlob, DestinationKeyId: md.KeyId, DestinationEncryptionAlgorithm: alg})
			if err != nil || back.DestinationEncryptionAlgorithm != alg {
				t.Fatalf("ReEncrypt symmetric -> RSA: %v", err)
			}
			dec, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: back.CiphertextBlob, EncryptionAlgorithm: alg})
			if err != nil || string(dec.Plaintext) != "from outside" {
				t.Fatalf("Decrypt after two ReEncrypts: %v", err)
			}
		}
		// An RSA ciphertext is random bytes: one whose first byte is a
		// symmetric blob's version (1 to 3) reads as a blob naming an
		// unknown key (NotFoundException); the others are not blobs at all.
		var enc *awskms.EncryptOutput
		for enc == nil || enc.CiphertextBlob[0] >= 1 && enc.CiphertextBlob[0] <= 3 {
			enc, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: "RSAES_OAEP_SHA_256"})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			in   awskms.DecryptInput
			code string
		}{
			{"no KeyId", awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256"}, "InvalidCiphertextException"},
			{"no algorithm", awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob}, "InvalidKeyUsageException"},
			{"other algorithm", awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_1"}, "InvalidCiphertextException"},
			{"encryption context", awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256", EncryptionContext: map[string]string{"a": "b"}}, "ValidationException"},
			{"dry run", awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: "RSAES_OAEP_SHA_256", DryRun: aws.Bool(true)}, "DryRunOperationException"},
		} {
			_, err := c.Decrypt(ctx, &tc.in)
			if got := errCode(t, err); got != tc.code {
				t.Errorf("%s Decrypt (%s) = %s (%v), want %s", spec, tc.name, got, err, tc.code)
			}
		}
		for _, in := range []awskms.EncryptInput{
			{KeyId: md.KeyId, Plaintext: []byte("x")},
			{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: "SYMMETRIC_DEFAULT"},
		} {
			_, err := c.Encrypt(ctx, &in)
			wantCode(t, err, "InvalidKeyUsageException")
		}
		_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: "RSAES_OAEP_SHA_1", EncryptionContext: map[string]string{"a": "b"}})
		wantCode(t, err, "ValidationException")
		_, err = c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
		wantCode(t, err, "InvalidKeyUsageException")
	}
}

func TestDeriveSharedSecret(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	curves := map[types.KeySpec]ecdh.Curve{"ECC_NIST_P256": ecdh.P256(), "ECC_NIST_P384": ecdh.P384(), "ECC_NIST_P521": ecdh.P521()}
	for spec, curve := range curves {
		md := env.key(spec, "KEY_AGREEMENT")
		peer, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
		out, err := c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: peerDER})
		if err != nil {
			t.Fatal(err)
		}
		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := x509.ParsePKIXPublicKey(pk.PublicKey)
		ours, _ := pub.(*ecdsa.PublicKey).ECDH()
		want, _ := peer.ECDH(ours)
		if !bytes.Equal(out.SharedSecret, want) || aws.ToString(out.KeyId) != *md.Arn || out.KeyAgreementAlgorithm != "ECDH" || out.KeyOrigin != types.OriginTypeAwsKms {
			t.Fatalf("%s: DeriveSharedSecret response %+v", spec, out)
		}
		other := env.key("ECC_NIST_P384", "KEY_AGREEMENT")
		if spec == "ECC_NIST_P384" {
			other = env.key("ECC_NIST_P256", "KEY_AGREEMENT")
		}
		otherPub, _ := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: other.KeyId})
		for name, in := range map[string]awskms.DeriveSharedSecretInput{
			"peer on another curve": {KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: otherPub.PublicKey},
			"garbage peer key":      {KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: []byte("garbage")},
		} {
			_, err := c.DeriveSharedSecret(ctx, &in)
			if got := errCode(t, err); got != "ValidationException" {
				t.Errorf("%s: %s = %s", spec, name, got)
			}
		}
		_, err = c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: peerDER, DryRun: aws.Bool(true)})
		wantCode(t, err, "DryRunOperationException")
		_, err = c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: peerDER,
			Recipient: &types.RecipientInfo{AttestationDocument: []byte("doc"), KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256}})
		wantCode(t, err, "UnsupportedOperationException")
	}
	_, err := c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: env.key("ECC_NIST_P256", "SIGN_VERIFY").KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: []byte("x")})
	wantCode(t, err, "InvalidKeyUsageException")
}

func TestEncapsulateDecapsulate(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	for spec, size := range map[types.KeySpec]int{"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568} {
		md := env.key(spec, "ENCAPSULATE_DECAPSULATE")
		enc, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM"})
		if err != nil {
			t.Fatal(err)
		}
		if len(enc.SharedSecret) != 32 || len(enc.SharedSecretCiphertextBlob) != size || aws.ToString(enc.KeyId) != *md.Arn {
			t.Fatalf("%s: Encapsulate response %+v", spec, enc)
		}
		dec, err := c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: enc.SharedSecretCiphertextBlob})
		if err != nil || !bytes.Equal(dec.SharedSecret, enc.SharedSecret) {
			t.Fatalf("%s: Decapsulate: %v", spec, err)
		}
		// Encapsulated elsewhere with the public key.
		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := parsePublicKey(string(spec), pk.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var secret, ct []byte
		switch pub := pub.(type) {
		case *mlkem.EncapsulationKey768:
			secret, ct = pub.Encapsulate()
		case *mlkem.EncapsulationKey1024:
			secret, ct = pub.Encapsulate()
		default:
			ct, secret, err = mlkem512.Scheme().Encapsulate(pub.(*mlkem512.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
		}
		dec, err = c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: ct})
		if err != nil || !bytes.Equal(dec.SharedSecret, secret) {
			t.Fatalf("%s: Decapsulate of an outside ciphertext: %v", spec, err)
		}
		_, err = c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: ct[1:]})
		wantCode(t, err, "InvalidCiphertextException")
		_, err = c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: ct, DryRun: aws.Bool(true)})
		wantCode(t, err, "DryRunOperationException")
		_, err = c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", DryRun: aws.Bool(true)})
		wantCode(t, err, "DryRunOperationException")
		_, err = c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "KYBER"})
		wantCode(t, err, "ValidationException")
	}
	_, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: env.key("RSA_2048", "ENCRYPT_DECRYPT").KeyId, EncapsulationAlgorithm: "ML_KEM"})
	wantCode(t, err, "InvalidKeyUsageException")
}

func TestGenerateVerifyMac(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	for _, k := range everyKind {
		if k.mac == nil {
			continue
		}
		md := env.key(k.spec, k.usage)
		alg := types.MacAlgorithmSpec(k.mac[0])
		out, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: md.KeyId, Message: []byte("mac me"), MacAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Mac) != hashFor(string(alg)).Size() && !(alg == "HMAC_SHA_224" && len(out.Mac) == 28) {
			t.Fatalf("%s: %d-byte MAC", k.spec, len(out.Mac))
		}
		if aws.ToString(out.KeyId) != *md.Arn || out.MacAlgorithm != alg {
			t.Fatalf("GenerateMac response %+v", out)
		}
		v, err := c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: md.KeyId, Message: []byte("mac me"), Mac: out.Mac, MacAlgorithm: alg})
		if err != nil || !v.MacValid || v.MacAlgorithm != alg {
			t.Fatalf("VerifyMac: %v %+v", err, v)
		}
		_, err = c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: md.KeyId, Message: []byte("mac me!"), Mac: out.Mac, MacAlgorithm: alg})
		wantCode(t, err, "KMSInvalidMacException")
		_, err = c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: md.KeyId, Message: []byte("mac me"), Mac: out.Mac[1:], MacAlgorithm: alg})
		wantCode(t, err, "KMSInvalidMacException")
		other := types.MacAlgorithmSpecHmacSha256
		if alg == other {
			other = types.MacAlgorithmSpecHmacSha512
		}
		_, err = c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: md.KeyId, Message: []byte("x"), MacAlgorithm: other})
		wantCode(t, err, "InvalidKeyUsageException")
		_, err = c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: md.KeyId, Message: []byte("x"), MacAlgorithm: alg, DryRun: aws.Bool(true)})
		wantCode(t, err, "DryRunOperationException")
		_, err = c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: md.KeyId, Message: []byte("mac me"), Mac: out.Mac, MacAlgorithm: alg, DryRun: aws.Bool(true)})
		wantCode(t, err, "DryRunOperationException")
		_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
		wantCode(t, err, "InvalidKeyUsageException")
		_, err = c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, Message: []byte("x"), SigningAlgorithm: "ECDSA_SHA_256"})
		wantCode(t, err, "InvalidKeyUsageException")
	}
	_, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: createKey(t, c, "sym").KeyId, Message: []byte("x"), MacAlgorithm: "HMAC_SHA_256"})
	wantCode(t, err, "InvalidKeyUsageException")
}

func TestGenerateDataKeyPair(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	sym := createKey(t, c, "wraps data key pairs")
	ec := map[string]string{"purpose": "data key pair"}
	specs := []types.DataKeyPairSpec{"RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
		"ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
	var wg sync.WaitGroup
	for _, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.GenerateDataKeyPair(ctx, &awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: spec, EncryptionContext: ec})
			if err != nil {
				t.Errorf("%s: %v", spec, err)
				return
			}
			if aws.ToString(out.KeyId) != *sym.Arn || out.KeyPairSpec != spec || aws.ToString(out.KeyMaterialId) != *sym.CurrentKeyMaterialId {
				t.Errorf("%s: response %+v", spec, out)
			}
			// The private key is PKCS #8 whose public key is PublicKey.
			priv, err := keys.ParsePrivateKey(string(spec), out.PrivateKeyPlaintext)
			if err != nil || !bytes.Equal(priv.PublicKey(), out.PublicKey) {
				t.Errorf("%s: private key does not match the public key (%v)", spec, err)
			}
			if _, err := parsePublicKey(string(spec), out.PublicKey); err != nil {
				t.Errorf("%s: PublicKey: %v", spec, err)
			}
			switch spec {
			case "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_NIST_EDWARDS25519":
				if _, err := x509.ParsePKCS8PrivateKey(out.PrivateKeyPlaintext); err != nil {
					t.Errorf("%s: crypto/x509 cannot parse the private key: %v", spec, err)
				}
			}
			dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext: ec})
			if err != nil || !bytes.Equal(dec.Plaintext, out.PrivateKeyPlaintext) {
				t.Errorf("%s: Decrypt of PrivateKeyCiphertextBlob: %v", spec, err)
			}
			_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
			if code := errCode(t, err); code != "InvalidCiphertextException" {
				t.Errorf("%s: Decrypt without the context: %s", spec, code)
			}
		}()
	}
	wg.Wait()
	wo, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &awskms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: sym.Arn, KeyPairSpec: "ECC_NIST_P256"})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: wo.PrivateKeyCiphertextBlob})
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.ParsePrivateKey("ECC_NIST_P256", dec.Plaintext)
	if err != nil || !bytes.Equal(priv.PublicKey(), wo.PublicKey) {
		t.Fatalf("GenerateDataKeyPairWithoutPlaintext: key pair mismatch (%v)", err)
	}
	for _, tc := range []struct {
		in   awskms.GenerateDataKeyPairInput
		code string
	}{
		{awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: "SM2"}, "UnsupportedOperationException"},
		{awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: "RSA_1024"}, "ValidationException"},
		{awskms.GenerateDataKeyPairInput{KeyId: env.key("RSA_2048", "ENCRYPT_DECRYPT").KeyId, KeyPairSpec: "ECC_NIST_P256"}, "InvalidKeyUsageException"},
		{awskms.GenerateDataKeyPairInput{KeyId: env.key("HMAC_256", "GENERATE_VERIFY_MAC").KeyId, KeyPairSpec: "ECC_NIST_P256"}, "InvalidKeyUsageException"},
		{awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: "ECC_NIST_P256", DryRun: aws.Bool(true)}, "DryRunOperationException"},
		{awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: "ECC_NIST_P256",
			Recipient: &types.RecipientInfo{AttestationDocument: []byte("doc"), KeyEncryptionAlgorithm: types.KeyEncryptionMechanismRsaesOaepSha256}}, "UnsupportedOperationException"},
	} {
		_, err := c.GenerateDataKeyPair(ctx, &tc.in)
		if got := errCode(t, err); got != tc.code {
			t.Errorf("GenerateDataKeyPair(%s, %s) = %s (%v), want %s", aws.ToString(tc.in.KeyId), tc.in.KeyPairSpec, got, err, tc.code)
		}
	}
}

func TestAsymmetricErrors(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	p256 := env.key("ECC_NIST_P256", "SIGN_VERIFY")
	ed := env.key("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
	mlDSA := env.key("ML_DSA_44", "SIGN_VERIFY")
	rsaSign := env.key("RSA_2048", "SIGN_VERIFY")
	sym := createKey(t, c, "symmetric")
	d32 := sha256.Sum256([]byte("m"))
	sign := func(md *types.KeyMetadata, alg types.SigningAlgorithmSpec, mt types.MessageType, msg []byte) error {
		_, err := c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, SigningAlgorithm: alg, MessageType: mt, Message: msg})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"algorithm of another key spec", sign(p256, "ECDSA_SHA_384", "", []byte("m")), "InvalidKeyUsageException"},
		{"RSA algorithm on ECC", sign(p256, "RSASSA_PSS_SHA_256", "", []byte("m")), "InvalidKeyUsageException"},
		{"symmetric key", sign(sym, "ECDSA_SHA_256", "", []byte("m")), "InvalidKeyUsageException"},
		{"encryption RSA key", sign(env.key("RSA_2048", "ENCRYPT_DECRYPT"), "RSASSA_PSS_SHA_256", "", []byte("m")), "InvalidKeyUsageException"},
		{"key agreement key", sign(env.key("ECC_NIST_P256", "KEY_AGREEMENT"), "ECDSA_SHA_256", "", []byte("m")), "InvalidKeyUsageException"},
		{"digest too short", sign(p256, "ECDSA_SHA_256", "DIGEST", d32[:31]), "ValidationException"},
		{"digest too long", sign(rsaSign, "RSASSA_PSS_SHA_512", "DIGEST", d32[:]), "ValidationException"},
		{"EXTERNAL_MU on ECDSA", sign(p256, "ECDSA_SHA_256", "EXTERNAL_MU", make([]byte, 64)), "ValidationException"},
		{"EXTERNAL_MU of 32 bytes", sign(mlDSA, "ML_DSA_SHAKE_256", "EXTERNAL_MU", d32[:]), "ValidationException"},
		{"DIGEST on ML-DSA", sign(mlDSA, "ML_DSA_SHAKE_256", "DIGEST", make([]byte, 64)), "ValidationException"},
		{"Ed25519 with DIGEST", sign(ed, "ED25519_SHA_512", "DIGEST", make([]byte, 64)), "ValidationException"},
		{"Ed25519ph with RAW", sign(ed, "ED25519_PH_SHA_512", "RAW", []byte("m")), "ValidationException"},
		{"Ed25519ph with a 32-byte digest", sign(ed, "ED25519_PH_SHA_512", "DIGEST", d32[:]), "ValidationException"},
		{"unknown algorithm", sign(p256, "ECDSA_SHA_1", "", []byte("m")), "ValidationException"},
		{"unknown message type", sign(p256, "ECDSA_SHA_256", "HASH", []byte("m")), "ValidationException"},
		{"SM2DSA", sign(p256, "SM2DSA", "", []byte("m")), "InvalidKeyUsageException"},
		{"message too long", sign(p256, "ECDSA_SHA_256", "", make([]byte, 4097)), "ValidationException"},
		{"dry run", func() error {
			_, err := c.Sign(ctx, &awskms.SignInput{KeyId: p256.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m"), DryRun: aws.Bool(true)})
			return err
		}(), "DryRunOperationException"},
		{"GetPublicKey of a symmetric key", func() error {
			_, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: sym.KeyId})
			return err
		}(), "UnsupportedOperationException"},
		{"garbage signature", func() error {
			_, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: p256.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m"), Signature: []byte("garbage")})
			return err
		}(), "KMSInvalidSignatureException"},
	} {
		if got := errCode(t, tc.err); got != tc.code {
			t.Errorf("%s: %s (%v), want %s", tc.name, got, tc.err, tc.code)
		}
	}

	// CreateKey: usages each spec refuses, and SM2.
	for _, tc := range []struct {
		in   awskms.CreateKeyInput
		code string
	}{
		{awskms.CreateKeyInput{KeySpec: "ECC_NIST_P256"}, "ValidationException"}, // KeyUsage defaults to ENCRYPT_DECRYPT
		{awskms.CreateKeyInput{KeySpec: "HMAC_256"}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: "ECC_SECG_P256K1", KeyUsage: "KEY_AGREEMENT"}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: "ML_KEM_768", KeyUsage: "ENCRYPT_DECRYPT"}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: "ML_DSA_44", KeyUsage: "ENCAPSULATE_DECAPSULATE"}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: "RSA_2048", KeyUsage: "GENERATE_VERIFY_MAC"}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: "SM2", KeyUsage: "SIGN_VERIFY"}, "UnsupportedOperationException"},
		{awskms.CreateKeyInput{CustomerMasterKeySpec: "SM2"}, "UnsupportedOperationException"},
	} {
		_, err := c.CreateKey(ctx, &tc.in)
		if got := errCode(t, err); got != tc.code {
			t.Errorf("CreateKey(%s, %s) = %s (%v), want %s", tc.in.KeySpec+types.KeySpec(tc.in.CustomerMasterKeySpec), tc.in.KeyUsage, got, err, tc.code)
		}
	}
	// The deprecated CustomerMasterKeySpec creates asymmetric keys too.
	old, err := c.CreateKey(ctx, &awskms.CreateKeyInput{CustomerMasterKeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
	if err != nil || old.KeyMetadata.KeySpec != "ECC_NIST_P256" {
		t.Fatalf("CreateKey with CustomerMasterKeySpec: %v", err)
	}

	// Key states: disabled and pending deletion.
	own := newKey(t, c, "ECC_NIST_P256", "SIGN_VERIFY")
	sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: own.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: own.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(ctx, &awskms.SignInput{KeyId: own.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m")})
	wantCode(t, err, "DisabledException")
	_, err = c.Verify(ctx, &awskms.VerifyInput{KeyId: own.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m"), Signature: sig.Signature})
	wantCode(t, err, "DisabledException")
	_, err = c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: own.KeyId})
	wantCode(t, err, "DisabledException")
	if _, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: own.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(ctx, &awskms.SignInput{KeyId: own.KeyId, SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: own.KeyId})
	wantCode(t, err, "KMSInvalidStateException")

	// Aliases name asymmetric keys like any other, and UpdateAlias keeps
	// an alias on keys of one type.
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/signer"), TargetKeyId: p256.KeyId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(ctx, &awskms.SignInput{KeyId: aws.String("alias/signer"), SigningAlgorithm: "ECDSA_SHA_256", Message: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/signer"), TargetKeyId: sym.KeyId})
	wantCode(t, err, "ValidationException")
}

// TestAsymmetricWire sends raw requests for what the SDK would not send.
func TestAsymmetricWire(t *testing.T) {
	t.Parallel()
	env := keysOfEveryKind(t)
	id := *env.key("ECC_NIST_P256", "SIGN_VERIFY").KeyId
	msg := base64.StdEncoding.EncodeToString([]byte("m"))
	for _, tc := range []struct{ name, op, body, code string }{
		{"Sign without Message", "Sign", fmt.Sprintf(`{"KeyId":%q,"SigningAlgorithm":"ECDSA_SHA_256"}`, id), "ValidationException"},
		{"Verify without Signature", "Verify", fmt.Sprintf(`{"KeyId":%q,"SigningAlgorithm":"ECDSA_SHA_256","Message":%q}`, id, msg), "ValidationException"},
		{"GenerateMac without MacAlgorithm", "GenerateMac", fmt.Sprintf(`{"KeyId":%q,"Message":%q}`, id, msg), "ValidationException"},
		{"DeriveSharedSecret without PublicKey", "DeriveSharedSecret", fmt.Sprintf(`{"KeyId":%q,"KeyAgreementAlgorithm":"ECDH"}`, id), "ValidationException"},
		{"Decapsulate without ciphertext", "Decapsulate", fmt.Sprintf(`{"KeyId":%q,"EncapsulationAlgorithm":"ML_KEM"}`, id), "ValidationException"},
		{"GetPublicKey without KeyId", "GetPublicKey", `{}`, "ValidationException"},
		{"Sign without SigningAlgorithm", "Sign", fmt.Sprintf(`{"KeyId":%q,"Message":%q}`, id, msg), "ValidationException"},
		{"GenerateDataKeyPair without KeyPairSpec", "GenerateDataKeyPair", fmt.Sprintf(`{"KeyId":%q}`, id), "ValidationException"},
		{"Encapsulate with an unknown algorithm", "Encapsulate", fmt.Sprintf(`{"KeyId":%q,"EncapsulationAlgorithm":"KYBER"}`, id), "ValidationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := recordRequest(t, env.Env, tc.op, tc.body)
			checkError(t, w, tc.code)
		})
	}
}

// BenchmarkSign signs a 32-byte message through the full handler (SigV4,
// JSON, the operation) with a key of every signing spec.
func BenchmarkSign(b *testing.B) {
	for _, k := range everyKind {
		if k.signing == nil {
			continue
		}
		b.Run(string(k.spec), func(b *testing.B) {
			env := kmstest.Start(b)
			out, err := env.Client.CreateKey(context.Background(), &awskms.CreateKeyInput{KeySpec: k.spec, KeyUsage: k.usage})
			if err != nil {
				b.Fatal(err)
			}
			alg, mt := k.signing[0], "RAW"
			if alg == "ED25519_PH_SHA_512" {
				mt = "DIGEST"
			}
			body := fmt.Appendf(nil, `{"KeyId":%q,"SigningAlgorithm":%q,"MessageType":%q,"Message":%q}`,
				*out.KeyMetadata.KeyId, alg, mt, base64.StdEncoding.EncodeToString(make([]byte, 32)))
			serve(b, env, "Sign", body)
		})
	}
}

// Support for the shared environment: it outlives the test that starts
// it, so its cleanups run in TestMain once every test is done.
var (
	sharedCleanupMu sync.Mutex
	sharedCleanups  []func()
)

// noCleanupTB defers the cleanups kmstest registers to TestMain.
type noCleanupTB struct{ testing.TB }

func (noCleanupTB) Cleanup(f func()) {
	sharedCleanupMu.Lock()
	sharedCleanups = append(sharedCleanups, f)
	sharedCleanupMu.Unlock()
}

func osMkdirTemp() (string, error) {
	dir, err := os.MkdirTemp("", "kmsd-asymmetric-test-")
	if err == nil {
		noCleanupTB{}.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	sharedCleanupMu.Lock()
	for i := len(sharedCleanups) - 1; i >= 0; i-- {
		sharedCleanups[i]()
	}
	sharedCleanupMu.Unlock()
	os.Exit(code)
}

// recordRequest sends a raw signed request through the handler.
func recordRequest(t *testing.T, env *kmstest.Env, op, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	env.Handler.ServeHTTP(w, signedRequest(t, env, op, []byte(body)))
	return w
}
