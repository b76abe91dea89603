//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/kmsd/kmsd/internal/keystore"
)

// Keystore wraps and unwraps with an AES-256 key held in a PKCS#11 token.
// Its methods are safe for concurrent use; the Token it embeds bounds and
// pools the sessions and reconnects after an outage, checking on every
// login that the wrapping key is still the same object.
//
// A Keystore never prints its PIN: every fmt verb shows only the key label
// and id.
type Keystore struct {
	*Token
	keyLabel  string
	mustExist bool // Config.MustExist
	id        [keyIDSize]byte
	idHex     string
}

var _ keystore.Keystore = (*Keystore)(nil)

// Open loads the module, finds the token by label, logs in, and finds the
// wrapping key by label, generating it inside the token when it does not
// exist. An existing key is refused unless it is an AES-256 secret key that
// is sensitive and not extractable.
func Open(ctx context.Context, cfg Config) (*Keystore, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	k := &Keystore{keyLabel: cfg.KeyLabel, mustExist: cfg.MustExist}
	t, err := openToken(ctx, cfg.token(), k.onConnect)
	if err != nil {
		return nil, err
	}
	k.Token = t
	return k, nil
}

// onConnect finds (on the first connection, unless mustExist: or creates) the wrapping key
// after every login and checks that it is the key this Keystore started
// with. It runs with t.mu held.
func (k *Keystore) onConnect(t *Token, sh p11.SessionHandle, first bool) error {
	key, id, err := findKey(t.ctx, sh, k.keyLabel, first && !k.mustExist)
	if err != nil {
		return err
	}
	if first {
		k.id = id
		k.idHex = hex.EncodeToString(id[:])
	} else if id != k.id {
		return fmt.Errorf("key %q on token %q now has id %x, not %s: it was replaced", k.keyLabel, t.cfg.TokenLabel, id, k.idHex)
	}
	t.handles = map[string]p11.ObjectHandle{k.keyLabel: key}
	return nil
}

// ID returns the public root key id (16 hex characters); see the format.
func (k *Keystore) ID() string { return k.idHex }

// KeyLabel returns the CKA_LABEL of the wrapping key.
func (k *Keystore) KeyLabel() string { return k.keyLabel }

// String names the token, key label and key id, never the PIN.
func (k *Keystore) String() string {
	return fmt.Sprintf("PKCS11Keystore(token %q, key %q, id %s)", k.cfg.TokenLabel, k.keyLabel, k.idHex)
}

// Format makes every fmt verb print String(), so the PIN in the config
// never reaches a log.
func (k *Keystore) Format(s fmt.State, _ rune) { fmt.Fprint(s, k.String()) }

// withKey runs f on a pooled session with the wrapping key's handle.
func (k *Keystore) withKey(ctx context.Context, f func(p11.SessionHandle, p11.ObjectHandle) error) error {
	return k.do(ctx, func(sh p11.SessionHandle) error {
		key, err := k.handle(sh, k.keyLabel)
		if err != nil {
			return err
		}
		return f(sh, key)
	})
}

// Wrap encrypts plaintext inside the token with AES-256-GCM, binding aad.
func (k *Keystore) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keystore: pkcs11: wrap: %w", err)
	}
	if len(plaintext) > maxPlaintext {
		return nil, fmt.Errorf("keystore: pkcs11: wrap: %d bytes is too large", len(plaintext))
	}
	var out []byte
	err := k.withKey(ctx, func(sh p11.SessionHandle, key p11.ObjectHandle) error {
		iv, ct, err := k.sealGCM(sh, key, plaintext, k.additionalData(aad))
		if err != nil {
			return err
		}
		out = make([]byte, 0, headerLen+len(ct))
		out = append(out, wrapVersion)
		out = append(out, k.id[:]...)
		out = append(out, iv...)
		out = append(out, ct...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: pkcs11: wrap: %w", err)
	}
	return out, nil
}

// Unwrap authenticates and decrypts the output of Wrap inside the token.
// Altered data, another root key or other aad give an error wrapping
// keystore.ErrUnwrap; an unreachable token gives one wrapping
// ErrUnavailable.
func (k *Keystore) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keystore: pkcs11: unwrap: %w", err)
	}
	if len(wrapped) < wrapOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", keystore.ErrUnwrap, len(wrapped))
	}
	if len(wrapped) > wrapOverhead+maxPlaintext {
		return nil, fmt.Errorf("%w: %d bytes is too long", keystore.ErrUnwrap, len(wrapped))
	}
	if wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", keystore.ErrUnwrap, wrapped[0])
	}
	if id := wrapped[idOffset:ivOffset]; !bytes.Equal(id, k.id[:]) {
		return nil, fmt.Errorf("%w: wrapped under root key %x, but this keystore's root key is %s", keystore.ErrUnwrap, id, k.idHex)
	}
	var pt []byte
	err := k.withKey(ctx, func(sh p11.SessionHandle, key p11.ObjectHandle) error {
		out, err := k.openGCM(sh, key, wrapped[ivOffset:headerLen], wrapped[headerLen:], k.additionalData(aad))
		pt = out
		return err
	})
	if err != nil {
		if errors.Is(err, errAuth) {
			return nil, fmt.Errorf("%w: authentication failed (altered data or wrong aad)", keystore.ErrUnwrap)
		}
		return nil, fmt.Errorf("keystore: pkcs11: unwrap: %w", err)
	}
	return pt, nil
}

// additionalData returns wrapLabel || version || key id || aad.
func (k *Keystore) additionalData(aad []byte) []byte {
	out := make([]byte, 0, len(wrapLabel)+1+keyIDSize+len(aad))
	out = append(out, wrapLabel...)
	out = append(out, wrapVersion)
	out = append(out, k.id[:]...)
	return append(out, aad...)
}

var (
	attrTrue  = []byte{1}
	attrFalse = []byte{0}
)

// findKey finds the secret key labelled label, generating it when absent
// and create is set, and checks that it is a sensitive, non-extractable
// AES-256 key.
func findKey(c *p11.Ctx, sh p11.SessionHandle, label string, create bool) (p11.ObjectHandle, [keyIDSize]byte, error) {
	var id [keyIDSize]byte
	objs, err := findObjects(c, sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_LABEL, label),
	})
	if err != nil {
		return 0, id, fmt.Errorf("finding key %q: %w", label, err)
	}
	var key p11.ObjectHandle
	switch {
	case len(objs) > 1:
		return 0, id, fmt.Errorf("%d secret keys are labelled %q; labels must be unique", len(objs), label)
	case len(objs) == 1:
		key = objs[0]
	case !create:
		return 0, id, fmt.Errorf("no secret key labelled %q", label)
	default:
		if key, err = generateKey(c, sh, label); err != nil {
			return 0, id, fmt.Errorf("generating key %q: %w", label, err)
		}
	}
	attrs, err := c.GetAttributeValue(sh, key, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_ID, nil),
	})
	if err != nil {
		return 0, id, fmt.Errorf("reading attributes of key %q: %w", label, err)
	}
	var ckaID []byte
	for _, a := range attrs {
		switch a.Type {
		case p11.CKA_KEY_TYPE:
			if !bytes.Equal(a.Value, p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES).Value) {
				return 0, id, fmt.Errorf("key %q is not an AES key", label)
			}
		case p11.CKA_VALUE_LEN:
			if !bytes.Equal(a.Value, p11.NewAttribute(p11.CKA_VALUE_LEN, rootKeyBytes).Value) {
				return 0, id, fmt.Errorf("key %q is not a 256-bit key", label)
			}
		case p11.CKA_SENSITIVE:
			if !bytes.Equal(a.Value, attrTrue) {
				return 0, id, fmt.Errorf("key %q is not sensitive (CKA_SENSITIVE is false): its value could be read out", label)
			}
		case p11.CKA_EXTRACTABLE:
			if !bytes.Equal(a.Value, attrFalse) {
				return 0, id, fmt.Errorf("key %q is extractable (CKA_EXTRACTABLE is true): it could be wrapped out", label)
			}
		case p11.CKA_ID:
			ckaID = a.Value
		}
	}
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	binary.Write(h, binary.BigEndian, uint32(len(label)))
	h.Write([]byte(label))
	h.Write(ckaID)
	copy(id[:], h.Sum(nil))
	return key, id, nil
}

func findObjects(c *p11.Ctx, sh p11.SessionHandle, tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	objs, _, err := c.FindObjects(sh, 2)
	if ferr := c.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	return objs, err
}

// generateKey creates the wrapping key inside the token: a token object,
// private, sensitive and never extractable, usable only to encrypt and
// decrypt (not to wrap, unwrap, sign or derive).
func generateKey(c *p11.Ctx, sh p11.SessionHandle, label string) (p11.ObjectHandle, error) {
	ckaID := make([]byte, generatedCKID)
	if _, err := rand.Read(ckaID); err != nil {
		return 0, err
	}
	return c.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, rootKeyBytes),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, ckaID),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_WRAP_WITH_TRUSTED, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	})
}

func hasCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}

// isConnectionLost reports whether err means the sessions, the login or
// the token itself are gone, so that reconnecting may help.
func isConnectionLost(err error) bool {
	var e p11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_USER_NOT_LOGGED_IN,
		p11.CKR_DEVICE_REMOVED, p11.CKR_DEVICE_ERROR, p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_KEY_HANDLE_INVALID,
		p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_SLOT_ID_INVALID, p11.CKR_GENERAL_ERROR:
		return true
	}
	return false
}

// errAuth is how the unwrap operation reports a GCM tag that did not verify.
var errAuth = errors.New("authentication failed")

// isAuthFailure reports whether a C_Decrypt error, on a session where
// C_DecryptInit just succeeded, means the GCM tag did not verify (altered
// data or other aad). Tokens differ: SoftHSM answers CKR_GENERAL_ERROR,
// others CKR_ENCRYPTED_DATA_INVALID or CKR_FUNCTION_FAILED.
func isAuthFailure(err error) bool {
	for _, c := range []uint{p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		p11.CKR_GENERAL_ERROR, p11.CKR_FUNCTION_FAILED, p11.CKR_DATA_INVALID} {
		if hasCode(err, c) {
			return true
		}
	}
	return false
}

// A PKCS#11 library is one instance per process, whatever the number of
// Ctx: C_Finalize by one user ends every session of all. The module table
// shares one initialized Ctx per module path among Keystores and finalizes
// it when the last one closes.
var (
	modMu   sync.Mutex
	modules = map[string]*module{}
)

type module struct {
	ctx  *p11.Ctx
	refs int
}

func acquireModule(path string) (*p11.Ctx, error) {
	modMu.Lock()
	defer modMu.Unlock()
	if m := modules[path]; m != nil {
		m.refs++
		return m.ctx, nil
	}
	c := p11.New(path)
	if c == nil {
		return nil, fmt.Errorf("keystore: pkcs11: cannot load module %s", path)
	}
	if err := c.Initialize(); err != nil && !hasCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c.Destroy()
		return nil, fmt.Errorf("keystore: pkcs11: initializing module %s: %w", path, err)
	}
	modules[path] = &module{ctx: c, refs: 1}
	return c, nil
}

func releaseModule(path string) {
	modMu.Lock()
	defer modMu.Unlock()
	m := modules[path]
	if m == nil {
		return
	}
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules, path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}
