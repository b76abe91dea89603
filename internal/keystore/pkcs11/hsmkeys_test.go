//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func newTestToken(t *testing.T) *Token {
	t.Helper()
	requireHSM(t)
	tok, err := OpenToken(context.Background(), TokenConfig{Module: testModule, TokenLabel: testToken, PIN: testPIN, Sessions: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// TestHSMKeys runs the life of a custom key store key: generated in the
// token, encrypting and decrypting there, never leaving it, destroyed.
func TestHSMKeys(t *testing.T) {
	tok := newTestToken(t)
	ctx := context.Background()
	const label = "kmsd-test-hsm-key"
	if ok, err := tok.HasKey(ctx, label); err != nil || ok {
		t.Fatalf("HasKey before generation = %v, %v", ok, err)
	}
	if err := tok.GenerateKey(ctx, label); err != nil {
		t.Fatal(err)
	}
	if err := tok.GenerateKey(ctx, label); err == nil {
		t.Fatal("a second key with the same label was generated")
	}
	if ok, err := tok.HasKey(ctx, label); err != nil || !ok {
		t.Fatalf("HasKey after generation = %v, %v", ok, err)
	}
	assertKeyNeverLeaves(t, label)

	aad := []byte("header and encryption context")
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{9}, 4096)} {
		iv, ct, err := tok.EncryptGCM(ctx, label, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(iv) != GCMIVSize || len(ct) != len(pt)+GCMTagSize {
			t.Fatalf("iv %d bytes, ct %d bytes for %d bytes", len(iv), len(ct), len(pt))
		}
		got, err := tok.DecryptGCM(ctx, label, iv, ct, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("DecryptGCM = %x, %v", got, err)
		}
		// Every change is caught by the tag.
		bad := bytes.Clone(ct)
		bad[len(bad)-1] ^= 1
		badIV := bytes.Clone(iv)
		badIV[0] ^= 1
		for name, call := range map[string]func() ([]byte, error){
			"ciphertext": func() ([]byte, error) { return tok.DecryptGCM(ctx, label, iv, bad, aad) },
			"iv":         func() ([]byte, error) { return tok.DecryptGCM(ctx, label, badIV, ct, aad) },
			"aad":        func() ([]byte, error) { return tok.DecryptGCM(ctx, label, iv, ct, []byte("other")) },
			"short":      func() ([]byte, error) { return tok.DecryptGCM(ctx, label, iv, ct[:3], aad) },
		} {
			if _, err := call(); !errors.Is(err, ErrAuthentication) {
				t.Errorf("altered %s: %v, want ErrAuthentication", name, err)
			}
		}
	}
	// IVs are fresh for every encryption.
	iv1, _, _ := tok.EncryptGCM(ctx, label, []byte("a"), nil)
	iv2, _, _ := tok.EncryptGCM(ctx, label, []byte("a"), nil)
	if bytes.Equal(iv1, iv2) {
		t.Fatal("two encryptions used the same IV")
	}

	if err := tok.DestroyKey(ctx, label); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok.EncryptGCM(ctx, label, []byte("x"), nil); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("EncryptGCM after DestroyKey: %v, want ErrKeyNotFound", err)
	}
	if err := tok.DestroyKey(ctx, label); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("second DestroyKey: %v, want ErrKeyNotFound", err)
	}
}

func TestTokenRandom(t *testing.T) {
	tok := newTestToken(t)
	a, err := tok.GenerateRandom(context.Background(), 1024)
	if err != nil || len(a) != 1024 {
		t.Fatalf("GenerateRandom = %d bytes, %v", len(a), err)
	}
	b, _ := tok.GenerateRandom(context.Background(), 1024)
	if bytes.Equal(a, b) {
		t.Fatal("two random draws are equal")
	}
}

func TestOpenTokenErrors(t *testing.T) {
	requireHSM(t)
	ctx := context.Background()
	_, err := OpenToken(ctx, TokenConfig{Module: testModule, TokenLabel: "no-such-token", PIN: testPIN})
	if !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("unknown token: %v, want ErrTokenNotFound", err)
	}
	_, err = OpenToken(ctx, TokenConfig{Module: testModule, TokenLabel: testToken, PIN: "99999999"})
	if !errors.Is(err, ErrPIN) {
		t.Errorf("wrong PIN: %v, want ErrPIN", err)
	}
	if err != nil && strings.Contains(err.Error(), "99999999") {
		t.Errorf("error shows the PIN: %v", err)
	}
}
