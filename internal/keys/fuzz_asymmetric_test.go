package keys

import (
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
