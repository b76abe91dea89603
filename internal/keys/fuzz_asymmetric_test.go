package keys

import (
	"bytes"
	"crypto/rand"
	"hash/crc32"
	"slices"
	"testing"
)

// FuzzVerify feeds arbitrary signatures, messages and μ values to every
// verifier (the external-μ ML-DSA verifier parses signatures itself): no
// input may panic, and none may verify.
func FuzzVerify(f *testing.F) {
	specs := []string{SpecMLDSA44, SpecMLDSA87, SpecSecp256k1, SpecP256, SpecEd25519, SpecRSA2048}
	ks := make([]*PrivateKey, len(specs))
	for i, spec := range specs {
		k, err := ParsePrivateKey(spec, testKey(f, spec))
		if err != nil {
			f.Fatal(err)
		}
		ks[i] = k
	}
	f.Add(uint8(0), uint8(2), make([]byte, 64), make([]byte, mldsa44Params.signatureSize()))
	f.Add(uint8(1), uint8(2), make([]byte, 64), make([]byte, mldsa87Params.signatureSize()))
	f.Add(uint8(2), uint8(0), []byte("m"), []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	f.Add(uint8(3), uint8(1), make([]byte, 32), []byte{0x30, 0x00})
	f.Add(uint8(4), uint8(0), []byte("m"), make([]byte, 64))
	f.Add(uint8(5), uint8(0), []byte("m"), make([]byte, 256))
	f.Fuzz(func(t *testing.T, which, mt uint8, msg, sig []byte) {
		k := ks[int(which)%len(ks)]
		alg := SigningAlgorithms(k.Spec())[0]
		msgType := []string{MessageRaw, MessageDigest, MessageMu}[int(mt)%3]
		ok, err := k.Verify(alg, msgType, msg, sig)
		if err == nil && ok {
			t.Fatalf("%s: an arbitrary signature verified", k.Spec())
		}
	})
}

// FuzzDeriveSharedSecret feeds arbitrary peer public keys to ECDH.
func FuzzDeriveSharedSecret(f *testing.F) {
	k, err := ParsePrivateKey(SpecP256, testKey(f, SpecP256))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.PublicKey())
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, peer []byte) {
		k.DeriveSharedSecret(peer) // must not panic
	})
}

// asymmetricSpecs are the key specs ParsePrivateKey implements.
var asymmetricSpecs = []string{
	SpecRSA2048, SpecRSA3072, SpecRSA4096, SpecP256, SpecP384, SpecP521, SpecSecp256k1, SpecEd25519,
	SpecMLDSA44, SpecMLDSA65, SpecMLDSA87, SpecMLKEM512, SpecMLKEM768, SpecMLKEM1024,
}

// FuzzParsePrivateKey feeds arbitrary DER to the private key parser, which
// reads the key material of ImportKeyMaterial (and of every asymmetric key
// the store holds). Seeds: testdata/fuzz/FuzzParsePrivateKey, one real key
// per spec. A spec that is not one falls to one picked by its hash, so that
// mutating it explores the others.
//
// It must never panic, and a key it accepts must work as a key of its spec:
// its public key is a SubjectPublicKeyInfo; it signs what it verifies,
// decrypts what it encrypts, decapsulates what it encapsulates; parsing it
// again gives the same public key.
func FuzzParsePrivateKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec string, der []byte) {
		if !slices.Contains(asymmetricSpecs, spec) {
			spec = asymmetricSpecs[crc32.ChecksumIEEE([]byte(spec))%uint32(len(asymmetricSpecs))]
		}
		k, err := ParsePrivateKey(spec, der)
		if err != nil {
			if k != nil {
				t.Fatal("ParsePrivateKey returned a key with an error")
			}
			return
		}
		defer k.Destroy()
		if k.Spec() != spec {
			t.Fatalf("parsed a %s key as %s", k.Spec(), spec)
		}
		if _, _, _, err := parseSPKI(k.PublicKey()); err != nil {
			t.Fatalf("%s: public key is not a SubjectPublicKeyInfo: %v", spec, err)
		}
		again, err := ParsePrivateKey(spec, der)
		if err != nil || !bytes.Equal(again.PublicKey(), k.PublicKey()) {
			t.Fatalf("%s: parsing again: %v", spec, err)
		}
		again.Destroy()

		// One algorithm of each kind: RSA private key operations are slow.
		msg := []byte("fuzz")
		if algs := SigningAlgorithms(spec); len(algs) > 0 {
			sig, err := k.Sign(rand.Reader, algs[0], MessageRaw, msg)
			if err != nil {
				t.Fatalf("%s %s: Sign: %v", spec, algs[0], err)
			}
			if ok, err := k.Verify(algs[0], MessageRaw, msg, sig); err != nil || !ok {
				t.Fatalf("%s %s: own signature does not verify: %v", spec, algs[0], err)
			}
		}
		if algs := EncryptionAlgorithms(spec); len(algs) > 0 {
			ct, err := k.Encrypt(rand.Reader, algs[0], msg)
			if err != nil {
				t.Fatalf("%s %s: Encrypt: %v", spec, algs[0], err)
			}
			if pt, err := k.Decrypt(algs[0], ct); err != nil || !bytes.Equal(pt, msg) {
				t.Fatalf("%s %s: Decrypt of own ciphertext: %q, %v", spec, algs[0], pt, err)
			}
		}
		if len(EncapsulationAlgorithms(spec)) > 0 {
			secret, ct, err := k.Encapsulate(rand.Reader)
			if err != nil {
				t.Fatalf("%s: Encapsulate: %v", spec, err)
			}
			if got, err := k.Decapsulate(ct); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("%s: Decapsulate of own encapsulation: %v", spec, err)
			}
		}
		if len(KeyAgreementAlgorithms(spec)) > 0 {
			if _, err := k.DeriveSharedSecret(k.PublicKey()); err != nil {
				t.Fatalf("%s: DeriveSharedSecret with its own public key: %v", spec, err)
			}
		}
	})
}
