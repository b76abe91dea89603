package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The test vectors of RFC 5649 section 6.
func TestKeyWrapPaddedRFC5649Vectors(t *testing.T) {
	kek := "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"
	for _, v := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		got, err := WrapKeyPadded(unhex(t, kek), unhex(t, v.key))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != v.wrapped {
			t.Errorf("wrap %s = %x, want %s", v.key, got, v.wrapped)
		}
		plain, err := UnwrapKeyPadded(unhex(t, kek), unhex(t, v.wrapped))
		if err != nil {
			t.Fatalf("unwrap %s: %v", v.wrapped, err)
		}
		if hex.EncodeToString(plain) != v.key {
			t.Errorf("unwrap %s = %x, want %s", v.wrapped, plain, v.key)
		}
	}
}

func TestKeyWrapPaddedRoundTripAndTamper(t *testing.T) {
	kek := make([]byte, 32)
	rand.Read(kek)
	for _, n := range []int{1, 7, 8, 9, 16, 31, 32, 33, 64, 1217} {
		key := make([]byte, n)
		rand.Read(key)
		w, err := WrapKeyPadded(kek, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnwrapKeyPadded(kek, w)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("round trip of %d bytes: %x, %v", n, got, err)
		}
		for i := range w {
			bad := bytes.Clone(w)
			bad[i] ^= 0x01
			if _, err := UnwrapKeyPadded(kek, bad); err != ErrUnwrap {
				t.Fatalf("%d bytes, flipped byte %d: err = %v, want ErrUnwrap", n, i, err)
			}
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), make([]byte, 17), make([]byte, 24)} {
		if _, err := UnwrapKeyPadded(kek, bad); err != ErrUnwrap {
			t.Errorf("unwrap of %d bytes: err = %v, want ErrUnwrap", len(bad), err)
		}
	}
	if _, err := WrapKeyPadded(kek, nil); err == nil {
		t.Error("wrap of an empty key succeeded")
	}
}

// FuzzUnwrapKeyPadded: the wrapped part of RSA_AES_KEY_WRAP import material
// is untrusted input; unwrapping never panics, and whatever unwraps wraps
// back to the same bytes.
func FuzzUnwrapKeyPadded(f *testing.F) {
	kek := bytes.Repeat([]byte{0x5a}, 32)
	for _, key := range [][]byte{{1}, []byte("0123456789abcdef0123456789abcdef"), make([]byte, 9)} {
		w, err := WrapKeyPadded(kek, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, wrapped []byte) {
		key, err := UnwrapKeyPadded(kek, wrapped)
		if err != nil {
			return
		}
		again, err := WrapKeyPadded(kek, key)
		if err != nil || !bytes.Equal(again, wrapped) {
			t.Fatalf("unwrapped %x does not wrap back to %x: %x, %v", key, wrapped, again, err)
		}
	})
}
