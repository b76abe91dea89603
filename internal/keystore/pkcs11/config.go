// Package pkcs11 is a keystore.Keystore whose root key is an AES-256 key
// inside a PKCS#11 token (an HSM, or SoftHSM for development). The key is
// generated inside the token as sensitive and non-extractable; every wrap
// and unwrap is an AES-GCM operation performed by the token, so the root key
// never reaches kmsd's memory.
//
// Wrapped output, format version 1:
//
//	offset  size  field
//	     0     1  version, 0x01
//	     1     8  root key id (ID() in binary)
//	     9    12  GCM IV
//	    21     n  AES-256-GCM ciphertext, n = len(plaintext)
//	  21+n    16  AES-256-GCM tag
//
// The GCM AAD is "kmsd pkcs11 wrap v1" || 0x01 || root key id || caller's
// aad. The root key id is the first 8 bytes of
// SHA-256("kmsd pkcs11 key id" || len(label) || label || CKA_ID): public,
// stable for one token object, and different for two keys that share a
// label. Wrapped material lives as long as its key: this layout must stay
// readable forever.
package pkcs11

import (
	"errors"
	"fmt"
)

const (
	wrapVersion   = 0x01
	keyIDSize     = 8
	ivSize        = 12
	tagSize       = 16
	idOffset      = 1
	ivOffset      = idOffset + keyIDSize // 9
	headerLen     = ivOffset + ivSize    // 21
	wrapOverhead  = headerLen + tagSize  // 37
	wrapLabel     = "kmsd pkcs11 wrap v1"
	keyIDLabel    = "kmsd pkcs11 key id"
	maxPlaintext  = 1 << 20 // wrapped secrets are tiny; this only bounds mistakes
	defaultPool   = 8
	maxPoolSize   = 1024
	rootKeyBytes  = 32
	generatedCKID = 16
)

// ErrUnavailable is wrapped by the errors of Wrap and Unwrap when the token
// cannot be reached (module finalized, token removed, sessions lost, login
// refused). Such errors are transient: the next call tries to reconnect.
var ErrUnavailable = errors.New("HSM unavailable")

// TokenConfig says which token to use and how.
type TokenConfig struct {
	// Module is the path of the PKCS#11 library, for example
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel names the token (slot ids are not stable; labels are).
	TokenLabel string
	// PIN is the user PIN. It is never logged or printed.
	PIN string
	// Sessions bounds the sessions (and so the concurrent HSM operations);
	// 0 means 8.
	Sessions int
}

func (c TokenConfig) validate() error {
	switch {
	case c.Module == "":
		return errors.New("keystore: pkcs11: module is empty")
	case c.TokenLabel == "":
		return errors.New("keystore: pkcs11: token label is empty")
	case c.PIN == "":
		return errors.New("keystore: pkcs11: PIN is empty")
	case c.Sessions < 0 || c.Sessions > maxPoolSize:
		return fmt.Errorf("keystore: pkcs11: sessions %d is not between 0 and %d", c.Sessions, maxPoolSize)
	}
	return nil
}

// Config says which token and key the root of trust uses.
type Config struct {
	// Module, TokenLabel, PIN and Sessions are as in TokenConfig.
	Module     string
	TokenLabel string
	PIN        string
	Sessions   int
	// KeyLabel is the CKA_LABEL of the AES-256 wrapping key; it is
	// generated inside the token on first start when absent, unless
	// MustExist.
	KeyLabel string
	// MustExist refuses a token without the key instead of generating
	// it: a new root could unwrap nothing of a store already in use.
	MustExist bool
}

func (c Config) token() TokenConfig {
	return TokenConfig{Module: c.Module, TokenLabel: c.TokenLabel, PIN: c.PIN, Sessions: c.Sessions}
}

func (c Config) validate() error {
	if c.KeyLabel == "" {
		return errors.New("keystore: pkcs11: key label is empty")
	}
	return c.token().validate()
}
