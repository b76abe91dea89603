//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"
)

// The methods below let a Token hold many keys: the key material of the
// KMS keys of a custom key store, each an AES-256 secret key generated
// inside the token, found by its CKA_LABEL, used only to encrypt and
// decrypt with AES-GCM inside the token and never readable or wrappable.

// ErrKeyNotFound is wrapped by the errors of EncryptGCM, DecryptGCM and
// DestroyKey when the token has no secret key with the given label.
var ErrKeyNotFound = errors.New("no such key in the token")

// ErrAuthentication is wrapped by the error of DecryptGCM when the GCM tag
// does not verify: altered ciphertext, other IV or other aad.
var ErrAuthentication = errors.New("AES-GCM authentication failed")

// errNoKey is how handle reports a missing key.
var errNoKey = ErrKeyNotFound

// GCMIVSize and GCMTagSize are the sizes of the IV and tag EncryptGCM
// returns and DecryptGCM expects.
const (
	GCMIVSize  = ivSize
	GCMTagSize = tagSize
)

// GenerateKey creates a sensitive, non-extractable AES-256 key labelled
// label inside the token, usable only to encrypt and decrypt. It fails when
// a secret key with that label exists already (labels name keys).
func (t *Token) GenerateKey(ctx context.Context, label string) error {
	if label == "" {
		return errors.New("keystore: pkcs11: generate key: empty label")
	}
	err := t.do(ctx, func(sh p11.SessionHandle) error {
		objs, err := findObjects(t.ctx, sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_LABEL, label),
		})
		if err != nil {
			return err
		}
		if len(objs) > 0 {
			return fmt.Errorf("a secret key labelled %q exists already", label)
		}
		_, err = generateKey(t.ctx, sh, label)
		return err
	})
	if err != nil {
		return fmt.Errorf("keystore: pkcs11: generate key %q: %w", label, err)
	}
	return nil
}

// EncryptGCM encrypts plaintext with AES-256-GCM inside the token under the
// key labelled label, authenticating aad. kmsd draws the 96-bit IV at
// random; a token that insists on choosing it writes its own back, and
// that is the IV returned. ct is the ciphertext followed by the 16-byte tag.
//
// Random 96-bit IVs cap one key at 2^32 encryptions (NIST SP 800-38D): past
// that, an IV collision, which would reveal the XOR of two plaintexts and
// allow forgeries, is no longer negligible.
func (t *Token) EncryptGCM(ctx context.Context, label string, plaintext, aad []byte) (iv, ct []byte, err error) {
	if len(plaintext) > maxPlaintext {
		return nil, nil, fmt.Errorf("keystore: pkcs11: encrypt: %d bytes is too large", len(plaintext))
	}
	err = t.do(ctx, func(sh p11.SessionHandle) error {
		key, err := t.handle(sh, label)
		if err != nil {
			return err
		}
		iv, ct, err = t.sealGCM(sh, key, plaintext, aad)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("keystore: pkcs11: encrypt with key %q: %w", label, err)
	}
	return iv, ct, nil
}

// DecryptGCM authenticates and decrypts the output of EncryptGCM inside
// the token. A tag that does not verify gives an error wrapping
// ErrAuthentication, a missing key one wrapping ErrKeyNotFound, an
// unreachable token one wrapping ErrUnavailable.
func (t *Token) DecryptGCM(ctx context.Context, label string, iv, ct, aad []byte) ([]byte, error) {
	if len(iv) != ivSize || len(ct) < tagSize || len(ct) > maxPlaintext+tagSize {
		return nil, fmt.Errorf("keystore: pkcs11: decrypt with key %q: %w: malformed input", label, ErrAuthentication)
	}
	var pt []byte
	err := t.do(ctx, func(sh p11.SessionHandle) error {
		key, err := t.handle(sh, label)
		if err != nil {
			return err
		}
		out, err := t.openGCM(sh, key, iv, ct, aad)
		pt = out
		return err
	})
	if errors.Is(err, errAuth) {
		return nil, fmt.Errorf("keystore: pkcs11: decrypt with key %q: %w", label, ErrAuthentication)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: pkcs11: decrypt with key %q: %w", label, err)
	}
	return pt, nil
}

// DestroyKey deletes the key labelled label from the token.
func (t *Token) DestroyKey(ctx context.Context, label string) error {
	err := t.do(ctx, func(sh p11.SessionHandle) error {
		key, err := t.handle(sh, label)
		if err != nil {
			return err
		}
		t.forgetHandle(label)
		return t.ctx.DestroyObject(sh, key)
	})
	if err != nil {
		return fmt.Errorf("keystore: pkcs11: destroy key %q: %w", label, err)
	}
	return nil
}

// HasKey reports whether the token holds a secret key labelled label. It
// asks the token (not the handle cache), so it sees keys that another
// session created or destroyed.
func (t *Token) HasKey(ctx context.Context, label string) (bool, error) {
	var n int
	err := t.do(ctx, func(sh p11.SessionHandle) error {
		objs, err := findObjects(t.ctx, sh, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_LABEL, label),
		})
		n = len(objs)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("keystore: pkcs11: find key %q: %w", label, err)
	}
	return n > 0, nil
}

// GenerateRandom returns n bytes from the token's random number generator.
func (t *Token) GenerateRandom(ctx context.Context, n int) ([]byte, error) {
	var out []byte
	err := t.do(ctx, func(sh p11.SessionHandle) error {
		b, err := t.ctx.GenerateRandom(sh, n)
		if err != nil {
			return err
		}
		if len(b) != n {
			return fmt.Errorf("token returned %d random bytes, want %d", len(b), n)
		}
		out = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: pkcs11: generate random: %w", err)
	}
	return out, nil
}

// sealGCM encrypts plaintext with AES-256-GCM under key on session sh,
// authenticating aad, with a fresh random 96-bit IV. Some HSMs choose the
// IV themselves and write it back: the IV returned is the one used. ct is
// the ciphertext followed by the 16-byte tag.
func (t *Token) sealGCM(sh p11.SessionHandle, key p11.ObjectHandle, plaintext, aad []byte) (iv, ct []byte, err error) {
	iv = make([]byte, ivSize)
	// A random IV per message: with one fixed key, a repeated IV would
	// reveal the XOR of two plaintexts and allow forgeries.
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, fmt.Errorf("reading random IV: %w", err)
	}
	params := p11.NewGCMParams(iv, aad, tagSize*8)
	defer params.Free()
	if err := t.ctx.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, nil, err
	}
	ct, err = t.ctx.Encrypt(sh, plaintext)
	if err != nil {
		return nil, nil, err
	}
	if got := params.IV(); len(got) == ivSize {
		iv = bytes.Clone(got)
	}
	if len(ct) != len(plaintext)+tagSize {
		return nil, nil, fmt.Errorf("token returned %d bytes of AES-GCM output for %d bytes of input", len(ct), len(plaintext))
	}
	return iv, ct, nil
}

// openGCM authenticates and decrypts ct (ciphertext || tag) under key on
// session sh. A tag that does not verify gives errAuth.
func (t *Token) openGCM(sh p11.SessionHandle, key p11.ObjectHandle, iv, ct, aad []byte) ([]byte, error) {
	params := p11.NewGCMParams(bytes.Clone(iv), aad, tagSize*8)
	defer params.Free()
	if err := t.ctx.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
		return nil, err
	}
	pt, err := t.ctx.Decrypt(sh, ct)
	if err != nil {
		if isAuthFailure(err) {
			return nil, errAuth
		}
		return nil, err
	}
	return pt, nil
}
