//go:build !cgo

package pkcs11

import (
	"context"
	"errors"

	"github.com/kmsd/kmsd/internal/keystore"
)

// Keystore is unavailable in a build without cgo: PKCS#11 modules are C
// libraries.
type Keystore struct{}

var _ keystore.Keystore = (*Keystore)(nil)

var errNoCgo = errors.New("keystore: pkcs11: this kmsd was built without cgo (CGO_ENABLED=0), which PKCS#11 needs")

// Open fails: see Keystore.
func Open(ctx context.Context, cfg Config) (*Keystore, error) { return nil, errNoCgo }

func (k *Keystore) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	return nil, errNoCgo
}

func (k *Keystore) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	return nil, errNoCgo
}

func (k *Keystore) ID() string       { return "" }
func (k *Keystore) KeyLabel() string { return "" }
func (k *Keystore) String() string   { return "PKCS11Keystore(unavailable)" }
func (k *Keystore) Close() error     { return nil }
