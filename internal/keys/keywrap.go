package keys

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// AES Key Wrap with Padding (RFC 5649), the wrapping of key material that
// AWS KMS's RSA_AES_KEY_WRAP_* import algorithms use (OpenSSL's
// id-aes256-wrap-pad).

// ErrUnwrap is returned for a wrapped key that does not authenticate.
var ErrUnwrap = errors.New("keys: AES key unwrap failed")

// kwpIV is the alternative initial value of RFC 5649 section 3.
const kwpIV = 0xA65959A6

// WrapKeyPadded wraps key (1 to 2^32-1 bytes) under kek (16, 24 or 32
// bytes) with AES Key Wrap with Padding.
func WrapKeyPadded(kek, key []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 || uint64(len(key)) > 0xFFFFFFFF {
		return nil, errors.New("keys: key to wrap must be 1 to 2^32-1 bytes")
	}
	padded := make([]byte, (len(key)+7)/8*8)
	copy(padded, key)
	var aiv [8]byte
	binary.BigEndian.PutUint32(aiv[:4], kwpIV)
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(key)))
	n := len(padded) / 8
	if n == 1 {
		// One block: encrypt AIV | P[1] with AES in ECB mode.
		out := make([]byte, 16)
		copy(out, aiv[:])
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out, nil
	}
	// The wrapping process of RFC 3394 section 2.2.1 with the AIV.
	out := make([]byte, 8+len(padded))
	copy(out[8:], padded)
	a := aiv
	var buf [16]byte
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:], buf[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// UnwrapKeyPadded reverses WrapKeyPadded, checking the integrity of the
// wrapped key (RFC 5649 section 3). Every failure is ErrUnwrap.
func UnwrapKeyPadded(kek, wrapped []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, ErrUnwrap
	}
	n := len(wrapped)/8 - 1
	var a [8]byte
	plain := make([]byte, 8*n)
	if n == 1 {
		var buf [16]byte
		b.Decrypt(buf[:], wrapped)
		copy(a[:], buf[:8])
		copy(plain, buf[8:])
	} else {
		copy(a[:], wrapped[:8])
		copy(plain, wrapped[8:])
		var buf [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(buf[8:], plain[8*(i-1):8*i])
				b.Decrypt(buf[:], buf[:])
				copy(a[:], buf[:8])
				copy(plain[8*(i-1):], buf[8:])
			}
		}
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	var iv [4]byte
	binary.BigEndian.PutUint32(iv[:], kwpIV)
	ok := subtle.ConstantTimeCompare(a[:4], iv[:]) == 1
	// 8*(n-1) < MLI <= 8*n, and the padding is zero.
	ok = ok && mli > 8*(n-1) && mli <= 8*n
	if ok {
		var pad byte
		for _, c := range plain[mli:] {
			pad |= c
		}
		ok = pad == 0
	}
	if !ok {
		clear(plain)
		return nil, ErrUnwrap
	}
	return plain[:mli], nil
}
