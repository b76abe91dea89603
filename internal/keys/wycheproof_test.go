package keys

// Published test vectors for the verification and decryption paths: the
// Wycheproof project's vectors (testdata/wycheproof, see its README.md).

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"filippo.io/mldsa"
)

// wpTest is the union of the members of Wycheproof test cases that kmsd's
// tests read; each file uses a subset.
type wpTest struct {
	TcID    json.Number `json:"tcId"`
	Comment string
	Flags   []string
	Result  string // valid, invalid or acceptable
	Msg     hexBytes
	Ctx     *hexBytes
	Sig     hexBytes
	Mu      hexBytes
	CT      hexBytes `json:"ct"`
	C       hexBytes `json:"c"`
	Label   hexBytes
	Public  hexBytes
	Private hexBytes
	Shared  hexBytes
	Seed    hexBytes
	EK      hexBytes `json:"ek"`
	K       hexBytes `json:"K"`
	Key     hexBytes
	Tag     hexBytes
}

type wpGroup struct {
	Type            string
	PublicKey       json.RawMessage
	PublicKeyDer    hexBytes
	PrivateKeyPkcs8 hexBytes
	PrivateSeed     hexBytes
	ParameterSet    string
	KeySize         json.Number
	TagSize         json.Number
	Sha             string
	SLen            json.Number `json:"sLen"`
	Tests           []wpTest
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// loadWycheproof reads one gzipped vector file of testdata/wycheproof.
func loadWycheproof(t testing.TB, name string) []wpGroup {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "wycheproof", name+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		TestGroups []wpGroup
	}
	if err := json.NewDecoder(zr).Decode(&file); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(file.TestGroups) == 0 {
		t.Fatalf("%s: no test groups", name)
	}
	return file.TestGroups
}

// check compares an outcome with a Wycheproof result; "acceptable" cases
// may go either way.
func check(t *testing.T, file string, tc wpTest, ok bool) {
	t.Helper()
	if tc.Result == "acceptable" {
		return
	}
	if ok != (tc.Result == "valid") {
		t.Errorf("%s #%s (%s %v): ok = %v, want result %s", file, tc.TcID, tc.Comment, tc.Flags, ok, tc.Result)
	}
}

func TestWycheproofMLDSAVerify(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
	}{
		{"mldsa_44_verify_test.json", SpecMLDSA44},
		{"mldsa_65_verify_test.json", SpecMLDSA65},
		{"mldsa_87_verify_test.json", SpecMLDSA87},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			params, p, _, _ := mldsaParamsOf(tc.spec)
			n := 0
			for _, g := range loadWycheproof(t, tc.file) {
				var pk hexBytes
				if err := json.Unmarshal(g.PublicKey, &pk); err != nil {
					t.Fatal(err)
				}
				for _, v := range g.Tests {
					var ctx []byte
					if v.Ctx != nil {
						ctx = *v.Ctx
					}
					// The external-μ verifier, fed the μ of msg and ctx.
					ok := len(ctx) <= 255 && verifyMLDSAMu(p, pk, mldsaMuWithContext(pk, v.Msg, ctx), v.Sig)
					check(t, tc.file, v, ok)
					// filippo.io/mldsa, which Verify uses for RAW messages,
					// must agree.
					if pub, err := mldsa.NewPublicKey(params, pk); err == nil {
						ok2 := mldsa.Verify(pub, v.Msg, v.Sig, &mldsa.Options{Context: string(ctx)}) == nil
						if ok2 != ok {
							t.Errorf("#%s: external-μ verifier says %v, filippo.io/mldsa %v", v.TcID, ok, ok2)
						}
					}
					n++
				}
			}
			t.Logf("%d vectors", n)
		})
	}
}

func TestWycheproofMLDSASignSeed(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
	}{
		{"mldsa_44_sign_seed_test.json", SpecMLDSA44},
		{"mldsa_65_sign_seed_test.json", SpecMLDSA65},
		{"mldsa_87_sign_seed_test.json", SpecMLDSA87},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			for _, g := range loadWycheproof(t, tc.file) {
				// Our PKCS #8 of the seed must be byte for byte theirs (some
				// groups give only the seed).
				der, err := marshalSeedPKCS8(mldsaOID(tc.spec), g.PrivateSeed)
				if err != nil || (len(g.PrivateSeed) == 32 && g.PrivateKeyPkcs8 != nil && !bytes.Equal(der, g.PrivateKeyPkcs8)) {
					t.Fatalf("PKCS #8 of the seed differs from Wycheproof's (%v)", err)
				}
				k, err := ParsePrivateKey(tc.spec, der)
				if len(g.PrivateSeed) != 32 {
					if err == nil {
						t.Errorf("a %d-byte seed parsed", len(g.PrivateSeed))
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				var pk hexBytes
				if err := json.Unmarshal(g.PublicKey, &pk); err != nil {
					t.Fatal(err)
				}
				_, _, raw, _ := parseSPKI(k.PublicKey())
				if !bytes.Equal(raw, pk) {
					t.Fatalf("public key derived from the seed differs")
				}
				for _, v := range g.Tests {
					if v.Result != "valid" || v.Mu == nil {
						continue
					}
					ok, err := k.Verify(SigMLDSA, MessageMu, v.Mu, v.Sig)
					if err != nil || !ok {
						t.Errorf("#%s (%s): EXTERNAL_MU signature rejected (%v)", v.TcID, v.Comment, err)
					}
					if v.Msg != nil && v.Ctx == nil {
						if !bytes.Equal(MLDSAMu(pk, v.Msg), v.Mu) {
							t.Errorf("#%s: MLDSAMu differs from the vector's μ", v.TcID)
						}
						if ok, err := k.Verify(SigMLDSA, MessageRaw, v.Msg, v.Sig); err != nil || !ok {
							t.Errorf("#%s: RAW signature rejected (%v)", v.TcID, err)
						}
					}
				}
			}
		})
	}
}

func mldsaOID(spec string) []int {
	_, _, oid, _ := mldsaParamsOf(spec)
	return oid
}

func TestWycheproofMLKEM(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
	}{
		{"mlkem_512_test.json", SpecMLKEM512},
		{"mlkem_768_test.json", SpecMLKEM768},
		{"mlkem_1024_test.json", SpecMLKEM1024},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			for _, g := range loadWycheproof(t, tc.file) {
				for _, v := range g.Tests {
					ok := func() bool {
						der, err := marshalSeedPKCS8(mlkemOID(tc.spec), v.Seed)
						if err != nil {
							return false
						}
						k, err := ParsePrivateKey(tc.spec, der)
						if err != nil {
							return false
						}
						if _, _, ek, _ := parseSPKI(k.PublicKey()); !bytes.Equal(ek, v.EK) {
							t.Errorf("#%s: encapsulation key differs", v.TcID)
						}
						secret, err := k.Decapsulate(v.C)
						return err == nil && bytes.Equal(secret, v.K)
					}()
					check(t, tc.file, v, ok)
				}
			}
		})
	}
}

func TestWycheproofECDH(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
	}{
		{"ecdh_secp256r1_test.json", SpecP256},
		{"ecdh_secp384r1_test.json", SpecP384},
		{"ecdh_secp521r1_test.json", SpecP521},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			curve := nistCurve(tc.spec)
			size := (curve.Params().BitSize + 7) / 8
			for _, g := range loadWycheproof(t, tc.file) {
				for _, v := range g.Tests {
					// Wycheproof scalars are big-endian integers, with a
					// leading zero byte when the top bit is set.
					scalar := bytes.TrimLeft(v.Private, "\x00")
					if len(scalar) > size {
						t.Fatalf("#%s: scalar of %d bytes", v.TcID, len(scalar))
					}
					priv, err := ecdsa.ParseRawPrivateKey(curve, append(make([]byte, size-len(scalar)), scalar...))
					if err != nil {
						t.Fatalf("#%s: %v", v.TcID, err)
					}
					der, err := x509.MarshalPKCS8PrivateKey(priv)
					if err != nil {
						t.Fatal(err)
					}
					k, err := ParsePrivateKey(tc.spec, der)
					if err != nil {
						t.Fatal(err)
					}
					secret, err := k.DeriveSharedSecret(v.Public)
					check(t, tc.file, v, err == nil && bytes.Equal(secret, v.Shared))
				}
			}
		})
	}
}

// parsePublicKeyForTest builds the verifier of a DER public key.
func parsePublicKeyForTest(t *testing.T, spec string, der []byte) *publicKey {
	t.Helper()
	if spec == SpecSecp256k1 {
		_, _, raw, err := parseSPKI(der)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := secp256k1ParsePubKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &publicKey{k1: pk}
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return &publicKey{rsa: pub}
	case *ecdsa.PublicKey:
		return &publicKey{ec: pub}
	case ed25519.PublicKey:
		return &publicKey{ed: pub}
	}
	t.Fatalf("unexpected public key %T", pub)
	return nil
}

func TestWycheproofSignatures(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
		alg  string
	}{
		{"ecdsa_secp256k1_sha256_test.json", SpecSecp256k1, SigECDSA256},
		{"ecdsa_secp256r1_sha256_test.json", SpecP256, SigECDSA256},
		{"ecdsa_secp384r1_sha384_test.json", SpecP384, SigECDSA384},
		{"ecdsa_secp521r1_sha512_test.json", SpecP521, SigECDSA512},
		{"ed25519_test.json", SpecEd25519, SigEd25519},
		{"rsa_pss_2048_sha256_mgf1_32_test.json", SpecRSA2048, SigRSAPSS256},
		{"rsa_pss_2048_sha384_mgf1_48_test.json", SpecRSA2048, SigRSAPSS384},
		{"rsa_pss_4096_sha512_mgf1_64_test.json", SpecRSA4096, SigRSAPSS512},
		{"rsa_signature_2048_sha256_test.json", SpecRSA2048, SigRSAPKCS1256},
		{"rsa_signature_3072_sha384_test.json", SpecRSA3072, SigRSAPKCS1384},
		{"rsa_signature_4096_sha512_test.json", SpecRSA4096, SigRSAPKCS1512},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			n := 0
			for _, g := range loadWycheproof(t, tc.file) {
				pub := parsePublicKeyForTest(t, tc.spec, g.PublicKeyDer)
				for _, v := range g.Tests {
					if err := CheckMessage(tc.alg, MessageRaw, v.Msg); err != nil {
						continue // longer than AWS accepts whole
					}
					check(t, tc.file, v, pub.verify(tc.alg, MessageRaw, v.Msg, v.Sig))
					// The same signature over the DIGEST of the message.
					if tc.alg != SigEd25519 {
						d := digest(tc.alg, MessageRaw, v.Msg)
						check(t, tc.file, v, pub.verify(tc.alg, MessageDigest, d, v.Sig))
					}
					n++
				}
			}
			t.Logf("%d vectors", n)
		})
	}
}

func TestWycheproofRSAOAEP(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
		alg  string
	}{
		{"rsa_oaep_2048_sha1_mgf1sha1_test.json", SpecRSA2048, EncOAEPSHA1},
		{"rsa_oaep_2048_sha256_mgf1sha256_test.json", SpecRSA2048, EncOAEPSHA256},
		{"rsa_oaep_3072_sha256_mgf1sha256_test.json", SpecRSA3072, EncOAEPSHA256},
		{"rsa_oaep_4096_sha256_mgf1sha256_test.json", SpecRSA4096, EncOAEPSHA256},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			for _, g := range loadWycheproof(t, tc.file) {
				k, err := ParsePrivateKey(tc.spec, g.PrivateKeyPkcs8)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range g.Tests {
					if len(v.Label) != 0 {
						continue // AWS KMS uses no OAEP label
					}
					pt, err := k.Decrypt(tc.alg, v.CT)
					check(t, tc.file, v, err == nil && bytes.Equal(pt, v.Msg))
				}
			}
		})
	}
}

func TestWycheproofHMAC(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec string
		alg  string
		bits string
	}{
		{"hmac_sha224_test.json", SpecHMAC224, MacSHA224, "224"},
		{"hmac_sha256_test.json", SpecHMAC256, MacSHA256, "256"},
		{"hmac_sha384_test.json", SpecHMAC384, MacSHA384, "384"},
		{"hmac_sha512_test.json", SpecHMAC512, MacSHA512, "512"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			n := 0
			for _, g := range loadWycheproof(t, tc.file) {
				// Only the groups with AWS's key size and full-length tags.
				if string(g.KeySize) != tc.bits || string(g.TagSize) != tc.bits {
					continue
				}
				for _, v := range g.Tests {
					ok, err := VerifyMAC(tc.spec, tc.alg, v.Key, v.Msg, v.Tag)
					if err != nil {
						t.Fatal(err)
					}
					check(t, tc.file, v, ok)
					n++
				}
			}
			if n == 0 {
				t.Fatal("no vectors for AWS's key size")
			}
		})
	}
}

// TestEd25519phRFC8032 checks Ed25519ph against the test vector of RFC 8032,
// section 7.3 (testdata/rfc8032), since OpenSSL 3.0 has no Ed25519ph.
func TestEd25519phRFC8032(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "rfc8032", "ed25519ph.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		SecretKey, PublicKey, Message, Signature hexBytes
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(v.SecretKey)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), v.PublicKey) {
		t.Fatal("public key differs")
	}
	sig, err := signEd25519ph(priv, v.Message)
	if err != nil || !bytes.Equal(sig, v.Signature) {
		t.Fatalf("signature differs (%v)", err)
	}
	// ED25519_PH_SHA_512 over a DIGEST is Ed25519ph with the DIGEST as its
	// message: KMS prehashes again.
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKey(SpecEd25519, der)
	if err != nil {
		t.Fatal(err)
	}
	d := bytes.Repeat([]byte{7}, 64)
	sig, err = k.Sign(nil, SigEd25519ph, MessageDigest, d)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := signEd25519ph(priv, d); !bytes.Equal(sig, want) {
		t.Fatal("Sign(ED25519_PH_SHA_512, DIGEST) is not Ed25519ph of the digest")
	}
	if ok, err := k.Verify(SigEd25519ph, MessageDigest, d, sig); err != nil || !ok {
		t.Fatalf("Verify: %v %v", ok, err)
	}
	if !slices.Contains(SigningAlgorithms(SpecEd25519), SigEd25519ph) {
		t.Fatal("ED25519_PH_SHA_512 missing from the Ed25519 algorithms")
	}
}
