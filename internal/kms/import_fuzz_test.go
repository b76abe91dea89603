package kms

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// FuzzUnwrapKeyMaterial feeds arbitrary EncryptedKeyMaterial to the
// unwrapping of ImportKeyMaterial, with each wrapping algorithm, and checks
// the material it yields against each importable key spec. Nothing may
// panic; unwrapping fails only with InvalidCiphertextException and the
// material check only with IncorrectKeyMaterialException. And the wrapping
// round trips: material wrapped as a client does (RSAES-OAEP, or an AES
// key wrapped so and the material wrapped with it) unwraps to itself.
func FuzzUnwrapKeyMaterial(f *testing.F) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	specs := []string{SpecSymmetricDefault, keys.SpecHMAC256, keys.SpecRSA2048, keys.SpecP256, keys.SpecSecp256k1}
	f.Add(uint8(0), bytes.Repeat([]byte{1}, 32), make([]byte, 256))
	f.Add(uint8(1), bytes.Repeat([]byte{2}, 32), make([]byte, 256))
	f.Add(uint8(2), bytes.Repeat([]byte{3}, 32), make([]byte, 256+40))
	f.Add(uint8(3), []byte{4}, make([]byte, 256+16))
	f.Add(uint8(7), bytes.Repeat([]byte{5}, 300), make([]byte, 257))
	f.Fuzz(func(t *testing.T, sel uint8, material, enc []byte) {
		alg := []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"}[sel%4]
		h, aesWrap, _ := wrappingHash(alg)
		spec := specs[int(sel/4)%len(specs)]

		got, err := unwrapKeyMaterial(priv, h, aesWrap, enc)
		if err != nil {
			if awserr.CodeOf(err) != awserr.InvalidCiphertext || got != nil {
				t.Fatalf("%s: unwrapping %x: %v", alg, enc, err)
			}
		} else if err := checkImportedMaterial(&store.Key{KeySpec: spec}, got); err != nil && awserr.CodeOf(err) != awserr.IncorrectKeyMaterial {
			t.Fatalf("%s material %x: %v", spec, got, err)
		}

		wrapped, ok := wrapForImport(t, &priv.PublicKey, h, aesWrap, material)
		if !ok {
			return
		}
		got, err = unwrapKeyMaterial(priv, h, aesWrap, wrapped)
		if err != nil || !bytes.Equal(got, material) {
			t.Fatalf("%s: material %x wrapped and unwrapped: %x, %v", alg, material, got, err)
		}
	})
}

// wrapForImport wraps material as a client of ImportKeyMaterial does, or
// reports that the algorithm cannot carry it (too long for RSAES-OAEP,
// empty for the AES key wrap).
func wrapForImport(t *testing.T, pub *rsa.PublicKey, h crypto.Hash, aesWrap bool, material []byte) ([]byte, bool) {
	hf := sha256.New()
	if h == crypto.SHA1 {
		hf = sha1.New()
	}
	if !aesWrap {
		if len(material) > pub.Size()-2*hf.Size()-2 {
			return nil, false
		}
		ct, err := rsa.EncryptOAEP(hf, rand.Reader, pub, material, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ct, true
	}
	if len(material) == 0 {
		return nil, false
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	wrappedKEK, err := rsa.EncryptOAEP(hf, rand.Reader, pub, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := keys.WrapKeyPadded(kek, material)
	if err != nil {
		t.Fatal(err)
	}
	return append(wrappedKEK, wrapped...), true
}
