package keys

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzMaterial is the fixed backing key of the fuzz targets; the seeds are
// sealed under it so that the fuzzer starts from blobs that authenticate.
var fuzzMaterial = bytes.Repeat([]byte{0x5a}, MaterialSize)

// fuzzContext turns fuzz bytes into an encryption context: the bytes split
// at NUL into alternating keys and values (a trailing key gets "").
func fuzzContext(b []byte) map[string]string {
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	m := make(map[string]string, len(parts)/2+1)
	for i := 0; i < len(parts); i += 2 {
		v := ""
		if i+1 < len(parts) {
			v = string(parts[i+1])
		}
		m[string(parts[i])] = v
	}
	return m
}

func sealSeed(f *testing.F, plaintext, ctx []byte) []byte {
	blob, err := Seal(testRand(9), fuzzMaterial, testHeader, plaintext, fuzzContext(ctx))
	if err != nil {
		f.Fatal(err)
	}
	return blob
}

// FuzzParseHeader checks that ParseHeader never panics, fails only with
// ErrInvalidCiphertext, and that whatever it accepts is canonical: the
// returned fields re-encode to exactly the blob's leading bytes.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{formatV1})
	f.Add(make([]byte, Overhead))
	f.Add(sealSeed(f, nil, nil))
	f.Add(sealSeed(f, []byte("hello"), []byte("k\x00v")))
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, err := ParseHeader(blob)
		if err != nil {
			if !errors.Is(err, ErrInvalidCiphertext) {
				t.Fatalf("ParseHeader error %v does not wrap ErrInvalidCiphertext", err)
			}
			return
		}
		if got := encodeHeaderForTest(t, h); !bytes.Equal(got, blob[:saltOffset]) {
			t.Fatalf("header %+v re-encodes to %x, blob starts %x", h, got, blob[:saltOffset])
		}
	})
}

// FuzzOpen checks that Open never panics on any blob and context, fails
// only with ErrInvalidCiphertext, and succeeds only for a blob whose header
// parses.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, Overhead), []byte{})
	f.Add(sealSeed(f, nil, nil), []byte{})
	f.Add(sealSeed(f, []byte("hello"), []byte("k\x00v")), []byte("k\x00v"))
	f.Add(sealSeed(f, []byte("hello"), []byte("k\x00v")), []byte("k\x00w"))
	f.Add(sealSeed(f, bytes.Repeat([]byte("x"), 100), []byte("a\x00b\x00c\x00d")), []byte("a\x00b\x00c\x00d"))
	f.Fuzz(func(t *testing.T, blob, ctx []byte) {
		pt, err := Open(fuzzMaterial, blob, fuzzContext(ctx))
		if err != nil {
			if !errors.Is(err, ErrInvalidCiphertext) {
				t.Fatalf("Open error %v does not wrap ErrInvalidCiphertext", err)
			}
			if pt != nil {
				t.Fatal("Open returned plaintext with an error")
			}
			return
		}
		if _, err := ParseHeader(blob); err != nil {
			t.Fatalf("Open accepted a blob that ParseHeader rejects: %v", err)
		}
		if len(pt) != len(blob)-Overhead {
			t.Fatalf("Open returned %d bytes from a %d-byte blob", len(pt), len(blob))
		}
	})
}
