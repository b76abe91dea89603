package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"slices"
	"sync"
	"testing"

	"filippo.io/mldsa"
	mldsax509 "filippo.io/mldsa/x509"
)

var allSpecs = []string{
	SpecRSA2048, SpecRSA3072, SpecRSA4096, SpecP256, SpecP384, SpecP521, SpecSecp256k1, SpecEd25519,
	SpecMLDSA44, SpecMLDSA65, SpecMLDSA87, SpecMLKEM512, SpecMLKEM768, SpecMLKEM1024,
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string][]byte{}
)

// testKey returns a PKCS #8 key of spec, made once per test binary. RSA 3072
// and 4096 come from the Wycheproof OAEP vectors: generating them takes
// seconds, and GenerateKey's RSA path is covered by RSA 2048.
func testKey(t testing.TB, spec string) []byte {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if der, ok := testKeys[spec]; ok {
		return der
	}
	var der []byte
	var err error
	switch spec {
	case SpecRSA3072, SpecRSA4096:
		file := map[string]string{SpecRSA3072: "rsa_oaep_3072_sha256_mgf1sha256_test.json", SpecRSA4096: "rsa_oaep_4096_sha256_mgf1sha256_test.json"}[spec]
		der = loadWycheproof(t, file)[0].PrivateKeyPkcs8
	default:
		der, err = GenerateKey(spec, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	testKeys[spec] = der
	return der
}

func TestSignVerifyEverySpec(t *testing.T) {
	msg := []byte("kmsd signs this message")
	for _, spec := range allSpecs {
		algs := SigningAlgorithms(spec)
		if algs == nil {
			continue
		}
		t.Run(spec, func(t *testing.T) {
			k, err := ParsePrivateKey(spec, testKey(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			for _, alg := range algs {
				types := []string{MessageRaw, MessageDigest}
				switch alg {
				case SigEd25519:
					types = []string{MessageRaw}
				case SigEd25519ph:
					types = []string{MessageDigest}
				case SigMLDSA:
					types = []string{MessageRaw, MessageMu}
				}
				for _, mt := range types {
					m := msg
					switch mt {
					case MessageDigest:
						m = digest(alg, MessageRaw, msg)
						if alg == SigEd25519ph {
							m = bytes.Repeat([]byte{1}, 64)
						}
					case MessageMu:
						_, _, pub, _ := parseSPKI(k.PublicKey())
						m = MLDSAMu(pub, msg)
					}
					sig, err := k.Sign(nil, alg, mt, m)
					if err != nil {
						t.Fatalf("%s %s: %v", alg, mt, err)
					}
					if ok, err := k.Verify(alg, mt, m, sig); err != nil || !ok {
						t.Fatalf("%s %s: own signature rejected (%v)", alg, mt, err)
					}
					bad := bytes.Clone(sig)
					bad[len(bad)/2] ^= 0x10
					if ok, _ := k.Verify(alg, mt, m, bad); ok {
						t.Fatalf("%s %s: altered signature accepted", alg, mt)
					}
					other := bytes.Clone(m)
					other[0] ^= 1
					if ok, _ := k.Verify(alg, mt, other, sig); ok {
						t.Fatalf("%s %s: signature accepted for another message", alg, mt)
					}
					// A RAW signature verifies as a DIGEST of the same message
					// (except for the algorithms that hash differently).
					if mt == MessageRaw && alg != SigEd25519 && alg != SigMLDSA {
						if ok, _ := k.Verify(alg, MessageDigest, digest(alg, MessageRaw, msg), sig); !ok {
							t.Fatalf("%s: RAW signature does not verify as DIGEST", alg)
						}
					}
					if mt == MessageRaw && alg == SigMLDSA {
						_, _, pub, _ := parseSPKI(k.PublicKey())
						if ok, _ := k.Verify(alg, MessageMu, MLDSAMu(pub, msg), sig); !ok {
							t.Fatal("RAW ML-DSA signature does not verify with its μ")
						}
					}
				}
			}
		})
	}
}

func TestCheckMessage(t *testing.T) {
	cases := []struct {
		alg, mt string
		n       int
		ok      bool
	}{
		{SigECDSA256, MessageRaw, 4096, true},
		{SigECDSA256, "", 4097, false},
		{SigECDSA256, MessageDigest, 32, true},
		{SigECDSA256, MessageDigest, 31, false},
		{SigECDSA384, MessageDigest, 48, true},
		{SigRSAPSS512, MessageDigest, 64, true},
		{SigRSAPKCS1384, MessageDigest, 32, false},
		{SigEd25519, MessageRaw, 10, true},
		{SigEd25519, MessageDigest, 64, false},
		{SigEd25519ph, MessageDigest, 64, true},
		{SigEd25519ph, MessageDigest, 32, false},
		{SigEd25519ph, MessageRaw, 64, false},
		{SigMLDSA, MessageMu, 64, true},
		{SigMLDSA, MessageMu, 63, false},
		{SigMLDSA, MessageDigest, 64, false},
		{SigECDSA256, MessageMu, 64, false},
		{SigECDSA256, "HASHED", 32, false},
	}
	for _, c := range cases {
		err := CheckMessage(c.alg, c.mt, make([]byte, c.n))
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrMessage)) {
			t.Errorf("CheckMessage(%s, %s, %d bytes) = %v, want ok=%v", c.alg, c.mt, c.n, err, c.ok)
		}
	}
}

func TestWrongAlgorithm(t *testing.T) {
	k, err := ParsePrivateKey(SpecP256, testKey(t, SpecP256))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Sign(nil, SigECDSA384, MessageRaw, []byte("x")); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("ECDSA_SHA_384 on P-256: %v", err)
	}
	if _, err := k.Encrypt(nil, EncOAEPSHA256, []byte("x")); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("OAEP on P-256: %v", err)
	}
	if _, err := k.Decapsulate(make([]byte, 768)); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("Decapsulate on P-256: %v", err)
	}
	// A key of one spec is refused as another.
	if _, err := ParsePrivateKey(SpecP384, testKey(t, SpecP256)); err == nil {
		t.Fatal("a P-256 key parsed as ECC_NIST_P384")
	}
	if _, err := ParsePrivateKey(SpecMLDSA65, testKey(t, SpecMLDSA44)); err == nil {
		t.Fatal("an ML-DSA-44 key parsed as ML_DSA_65")
	}
	if _, err := ParsePrivateKey(SpecRSA3072, testKey(t, SpecRSA2048)); err == nil {
		t.Fatal("an RSA 2048 key parsed as RSA_3072")
	}
}

func TestRSAOAEPRoundTrip(t *testing.T) {
	for _, spec := range []string{SpecRSA2048, SpecRSA3072, SpecRSA4096} {
		k, err := ParsePrivateKey(spec, testKey(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range EncryptionAlgorithms(spec) {
			max := MaxPlaintext(spec, alg)
			want := map[string]int{
				SpecRSA2048 + EncOAEPSHA1: 214, SpecRSA2048 + EncOAEPSHA256: 190,
				SpecRSA3072 + EncOAEPSHA1: 342, SpecRSA3072 + EncOAEPSHA256: 318,
				SpecRSA4096 + EncOAEPSHA1: 470, SpecRSA4096 + EncOAEPSHA256: 446,
			}[spec+alg]
			if max != want {
				t.Fatalf("MaxPlaintext(%s, %s) = %d, want %d (AWS's limit)", spec, alg, max, want)
			}
			pt := bytes.Repeat([]byte{0xa5}, max)
			ct, err := k.Encrypt(nil, alg, pt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Decrypt(alg, ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%s %s: round trip failed (%v)", spec, alg, err)
			}
			if _, err := k.Encrypt(nil, alg, append(pt, 0)); !errors.Is(err, ErrPlaintextSize) {
				t.Fatalf("%s %s: %d bytes encrypted: %v", spec, alg, max+1, err)
			}
			other := EncOAEPSHA1
			if alg == EncOAEPSHA1 {
				other = EncOAEPSHA256
			}
			if _, err := k.Decrypt(other, ct); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("decrypting with the other hash: %v", err)
			}
		}
	}
}

func TestECDHRoundTrip(t *testing.T) {
	curves := map[string]ecdh.Curve{SpecP256: ecdh.P256(), SpecP384: ecdh.P384(), SpecP521: ecdh.P521()}
	for spec, curve := range curves {
		k, err := ParsePrivateKey(spec, testKey(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		peer, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		peerDER, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		secret, err := k.DeriveSharedSecret(peerDER)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		ours, err := pub.(interface {
			ECDH() (*ecdh.PublicKey, error)
		}).ECDH()
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.ECDH(ours)
		if err != nil || !bytes.Equal(secret, want) {
			t.Fatalf("%s: shared secrets differ (%v)", spec, err)
		}
		// A key on another curve, and garbage.
		other := SpecP384
		if spec == SpecP384 {
			other = SpecP256
		}
		ok, _ := ParsePrivateKey(other, testKey(t, other))
		if _, err := k.DeriveSharedSecret(ok.PublicKey()); !errors.Is(err, ErrPeerKey) {
			t.Fatalf("%s with a %s peer: %v", spec, other, err)
		}
		if _, err := k.DeriveSharedSecret([]byte("garbage")); !errors.Is(err, ErrPeerKey) {
			t.Fatalf("garbage peer key: %v", err)
		}
	}
}

func TestMLKEMRoundTrip(t *testing.T) {
	for _, spec := range []string{SpecMLKEM512, SpecMLKEM768, SpecMLKEM1024} {
		k, err := ParsePrivateKey(spec, testKey(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		secret, ct, err := k.Encapsulate(nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{SpecMLKEM512: 768, SpecMLKEM768: 1088, SpecMLKEM1024: 1568}[spec]
		if len(ct) != want || len(secret) != 32 {
			t.Fatalf("%s: ciphertext %d bytes (want %d), secret %d bytes", spec, len(ct), want, len(secret))
		}
		got, err := k.Decapsulate(ct)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%s: decapsulated secret differs (%v)", spec, err)
		}
		ct[0] ^= 1
		if got, err := k.Decapsulate(ct); err != nil || bytes.Equal(got, secret) {
			t.Fatalf("%s: a changed ciphertext gave the same secret (%v)", spec, err)
		}
		if _, err := k.Decapsulate(ct[1:]); !errors.Is(err, ErrCiphertextSize) {
			t.Fatalf("%s: short ciphertext: %v", spec, err)
		}
	}
}

// TestPKCS8Interop checks that other parsers read kmsd's PKCS #8 keys:
// crypto/x509 for RSA, NIST and Ed25519, filippo.io/mldsa/x509 for ML-DSA,
// and that the SubjectPublicKeyInfo parses back to the same key.
func TestPKCS8Interop(t *testing.T) {
	for _, spec := range allSpecs {
		der := testKey(t, spec)
		k, err := ParsePrivateKey(spec, der)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		switch {
		case rsaBits(spec) != 0 || nistCurve(spec) != nil || spec == SpecEd25519:
			if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
				t.Errorf("%s: crypto/x509 cannot parse the private key: %v", spec, err)
			}
			if _, err := x509.ParsePKIXPublicKey(k.PublicKey()); err != nil {
				t.Errorf("%s: crypto/x509 cannot parse the public key: %v", spec, err)
			}
		case slices.Contains([]string{SpecMLDSA44, SpecMLDSA65, SpecMLDSA87}, spec):
			sk, err := mldsax509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatalf("%s: filippo.io/mldsa/x509 cannot parse the private key: %v", spec, err)
			}
			pk, err := mldsax509.ParsePKIXPublicKey(k.PublicKey())
			if err != nil || !pk.(*mldsa.PublicKey).Equal(sk.(*mldsa.PrivateKey).PublicKey()) {
				t.Errorf("%s: public key does not match (%v)", spec, err)
			}
		case spec == SpecSecp256k1:
			again, err := marshalSecp256k1PKCS8(k.k1)
			if err != nil || !bytes.Equal(again, der) {
				t.Errorf("secp256k1 PKCS #8 does not round-trip (%v)", err)
			}
		}
	}
}

// TestMLDSAExternalMuDifferential signs with filippo.io/mldsa and flips bits
// of the signatures: kmsd's external-μ verifier must agree with
// filippo.io/mldsa's message verifier on every one.
func TestMLDSAExternalMuDifferential(t *testing.T) {
	for _, spec := range []string{SpecMLDSA44, SpecMLDSA65, SpecMLDSA87} {
		k, err := ParsePrivateKey(spec, testKey(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		pub := k.verifier.mldsa.Bytes()
		for i := range 8 {
			msg := sha256.Sum256([]byte{byte(i)})
			sig, err := k.Sign(nil, SigMLDSA, MessageRaw, msg[:])
			if err != nil {
				t.Fatal(err)
			}
			mu := MLDSAMu(pub, msg[:])
			for bit := -1; bit < len(sig)*8; bit += 97 + i {
				s := bytes.Clone(sig)
				if bit >= 0 {
					s[bit/8] ^= 1 << (bit % 8)
				}
				theirs := mldsa.Verify(k.verifier.mldsa, msg[:], s, nil) == nil
				ours := verifyMLDSAMu(k.verifier.mldsaP, pub, mu, s)
				if theirs != ours || (bit < 0 && !ours) {
					t.Fatalf("%s bit %d: filippo.io/mldsa %v, external-μ verifier %v", spec, bit, theirs, ours)
				}
			}
		}
	}
}

func TestHMACKeys(t *testing.T) {
	for spec, size := range map[string]int{SpecHMAC224: 28, SpecHMAC256: 32, SpecHMAC384: 48, SpecHMAC512: 64} {
		key, err := GenerateHMACKey(spec, nil)
		if err != nil || len(key) != size {
			t.Fatalf("%s: %d-byte key (%v)", spec, len(key), err)
		}
		alg := MacAlgorithms(spec)[0]
		tag, err := MAC(spec, alg, key, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := VerifyMAC(spec, alg, key, []byte("m"), tag); !ok {
			t.Fatalf("%s: own tag rejected", spec)
		}
		if ok, _ := VerifyMAC(spec, alg, key, []byte("n"), tag); ok {
			t.Fatalf("%s: tag accepted for another message", spec)
		}
		if _, err := MAC(spec, MacSHA256+"x", key, nil); !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("%s: wrong algorithm: %v", spec, err)
		}
	}
}

// BenchmarkParsePrivateKey measures what caching parsed keys saves each
// asymmetric operation (compare with BenchmarkSign).
func BenchmarkParsePrivateKey(b *testing.B) {
	for _, spec := range allSpecs {
		b.Run(spec, func(b *testing.B) {
			der := benchKey(b, spec)
			for b.Loop() {
				if _, err := ParsePrivateKey(spec, der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	for _, spec := range allSpecs {
		algs := SigningAlgorithms(spec)
		if algs == nil {
			continue
		}
		b.Run(spec, func(b *testing.B) {
			k, err := ParsePrivateKey(spec, benchKey(b, spec))
			if err != nil {
				b.Fatal(err)
			}
			alg, mt, msg := algs[0], MessageRaw, []byte("benchmark message")
			for b.Loop() {
				if _, err := k.Sign(nil, alg, mt, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchKey(b *testing.B, spec string) []byte {
	testKeysMu.Lock()
	der, ok := testKeys[spec]
	testKeysMu.Unlock()
	if ok {
		return der
	}
	der, err := GenerateKey(spec, nil)
	if err != nil {
		b.Fatal(err)
	}
	testKeysMu.Lock()
	testKeys[spec] = der
	testKeysMu.Unlock()
	return der
}
