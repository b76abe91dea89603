// Package keystore is kmsd's root of trust: it wraps key material (and other
// secrets) before they are stored and unwraps them when they are used. The
// wrapping key never leaves the keystore.
//
// FileKeystore keeps a 256-bit root key in a local file, for development and
// single machines; a PKCS#11 keystore holds it in an HSM.
package keystore

import (
	"context"
	"errors"
)

// ErrUnwrap is returned when wrapped data fails authentication: it was
// altered, wrapped under another root key, or bound to different AAD.
var ErrUnwrap = errors.New("keystore: unwrap failed")

// Keystore wraps and unwraps secrets under a root key.
//
// aad is bound to the wrapped output (authenticated, not stored in it):
// Unwrap succeeds only with the same aad that Wrap was given. Callers pass a
// label and the identity of the secret, so that wrapped material cannot be
// moved to another key.
type Keystore interface {
	Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
}
