package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"testing"
)

// TestHSMBlob plays the HSM with crypto/cipher: a blob assembled from
// HSMAAD, an IV and GCM output parses back to its parts, and the AAD binds
// the header and the context.
func TestHSMBlob(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	h := Header{KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab", MaterialID: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}
	ec := map[string]string{"purpose": "test"}
	aad, err := HSMAAD(h, ec)
	if err != nil {
		t.Fatal(err)
	}
	iv := bytes.Repeat([]byte{7}, HSMIVSize)
	pt := []byte("hello")
	blob, err := MarshalHSMBlob(aad, iv, gcm.Seal(nil, iv, pt, aad))
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != len(pt)+HSMOverhead || blob[0] != FormatHSM {
		t.Fatalf("blob is %d bytes, version %d", len(blob), blob[0])
	}
	b, err := ParseHSMBlob(blob)
	if err != nil || b.Header != h || !bytes.Equal(b.IV, iv) {
		t.Fatalf("ParseHSMBlob = %+v, %v", b, err)
	}
	aad2, _ := HSMAAD(b.Header, ec)
	got, err := gcm.Open(nil, b.IV, b.Ciphertext, aad2)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// Another context or key id gives another AAD.
	if other, _ := HSMAAD(b.Header, nil); bytes.Equal(other, aad2) {
		t.Fatal("the context is not in the AAD")
	}
	// Version 1 blobs and short blobs are refused; v1 refuses v2.
	for _, bad := range [][]byte{blob[:HSMOverhead-1], append([]byte{0x01}, blob[1:]...)} {
		if _, err := ParseHSMBlob(bad); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("ParseHSMBlob accepted a bad blob: %v", err)
		}
	}
	if _, err := ParseHeader(append(blob, make([]byte, 64)...)); !errors.Is(err, ErrInvalidCiphertext) {
		t.Error("ParseHeader (version 1) accepted a version 2 blob")
	}
	if _, err := HSMAAD(Header{KeyID: "not-a-uuid", MaterialID: h.MaterialID}, nil); err == nil {
		t.Error("HSMAAD accepted a malformed key id")
	}
	if _, err := MarshalHSMBlob(aad, iv[:8], []byte("0123456789abcdef")); err == nil {
		t.Error("MarshalHSMBlob accepted a short IV")
	}
}

// FuzzParseHSMBlob checks that any input either parses to parts that
// reassemble to exactly the input, or fails with ErrInvalidCiphertext.
func FuzzParseHSMBlob(f *testing.F) {
	f.Add(append([]byte{FormatHSM}, make([]byte, HSMOverhead)...))
	f.Add([]byte{FormatHSM})
	f.Fuzz(func(t *testing.T, blob []byte) {
		b, err := ParseHSMBlob(blob)
		if err != nil {
			if !errors.Is(err, ErrInvalidCiphertext) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		aad, err := HSMAAD(b.Header, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := MarshalHSMBlob(aad, b.IV, b.Ciphertext)
		if err != nil || !bytes.Equal(again, blob) {
			t.Fatalf("reassembled %x, %v; want %x", again, err, blob)
		}
	})
}
