//go:build !cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"

	"github.com/kmsd/kmsd/internal/keystore"
)

// Keystore and Token are unavailable in a build without cgo: PKCS#11
// modules are C libraries. Open and OpenToken fail with a clear message.
type Keystore struct{ *Token }

// Token: see Keystore.
type Token struct{}

var _ keystore.Keystore = (*Keystore)(nil)

var errNoCgo = errors.New("keystore: pkcs11: this kmsd was built without cgo (CGO_ENABLED=0), which PKCS#11 needs")

// Errors of the cgo build, declared so that callers compile either way.
var (
	ErrPIN            = errors.New("token refused the PIN")
	ErrTokenNotFound  = errors.New("no such token")
	ErrKeyNotFound    = errors.New("no such key in the token")
	ErrAuthentication = errors.New("AES-GCM authentication failed")
)

// GCMIVSize and GCMTagSize are the sizes of the IV and tag.
const (
	GCMIVSize  = ivSize
	GCMTagSize = tagSize
)

// Open fails: see Keystore.
func Open(ctx context.Context, cfg Config) (*Keystore, error) { return nil, errNoCgo }

// OpenToken fails: see Keystore.
func OpenToken(ctx context.Context, cfg TokenConfig) (*Token, error) { return nil, errNoCgo }

func (k *Keystore) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	return nil, errNoCgo
}

func (k *Keystore) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	return nil, errNoCgo
}

func (k *Keystore) ID() string       { return "" }
func (k *Keystore) KeyLabel() string { return "" }
func (k *Keystore) String() string   { return "PKCS11Keystore(unavailable)" }

func (t *Token) Label() string  { return "" }
func (t *Token) String() string { return "PKCS11Token(unavailable)" }
func (t *Token) Close() error   { return nil }

func (t *Token) GenerateKey(ctx context.Context, label string) error { return errNoCgo }
func (t *Token) EncryptGCM(ctx context.Context, label string, plaintext, aad []byte) ([]byte, []byte, error) {
	return nil, nil, errNoCgo
}
func (t *Token) DecryptGCM(ctx context.Context, label string, iv, ct, aad []byte) ([]byte, error) {
	return nil, errNoCgo
}
func (t *Token) DestroyKey(ctx context.Context, label string) error { return errNoCgo }
func (t *Token) HasKey(ctx context.Context, label string) (bool, error) {
	return false, errNoCgo
}
func (t *Token) GenerateRandom(ctx context.Context, n int) ([]byte, error) {
	return nil, fmt.Errorf("generate random: %w", errNoCgo)
}
