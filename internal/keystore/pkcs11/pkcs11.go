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
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/kmsd/kmsd/internal/keystore"
)

// retryInterval is the least time between two reconnection attempts after
// one failed, so that a dead HSM is not hammered by every request.
const retryInterval = time.Second

// Keystore wraps and unwraps with an AES-256 key held in a PKCS#11 token.
// Its methods are safe for concurrent use: at most Config.Sessions HSM
// operations run at once, each on a session of its own, and the rest wait
// (bounded by their context). When the token stops answering, Wrap and
// Unwrap fail with errors wrapping ErrUnavailable, and the keystore
// reconnects (new sessions, login, key lookup) on a later call.
//
// A Keystore never prints its PIN: every fmt verb shows only the key label
// and id.
type Keystore struct {
	cfg    Config
	ctx    *p11.Ctx
	sem    chan struct{}
	id     [keyIDSize]byte
	idHex  string
	retry  time.Duration
	closer sync.Once

	// life is held shared by every operation and exclusively by Close, so
	// the module is never unloaded under a running call.
	life sync.RWMutex

	mu     sync.Mutex // guards the fields below
	closed bool
	ready  bool
	gen    uint64 // incremented whenever the sessions are discarded
	slot   uint
	login  session // kept open: it holds the login state
	// epoch counts our re-initializations of the module. Session handles
	// from an earlier epoch died with the old initialization and may now
	// name someone else's session, so they are never closed.
	epoch   uint64
	key     p11.ObjectHandle
	idle    []session
	lastErr error
	lastTry time.Time
	fatal   error // a refused PIN: never retried, lest the token lock
}

type session struct {
	h     p11.SessionHandle
	gen   uint64
	epoch uint64
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = defaultPool
	}
	c, err := acquireModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	k := &Keystore{cfg: cfg, ctx: c, sem: make(chan struct{}, cfg.Sessions), retry: retryInterval}
	k.mu.Lock()
	err = k.connectLocked(true)
	k.mu.Unlock()
	if err != nil {
		releaseModule(cfg.Module)
		return nil, err
	}
	return k, nil
}

// ID returns the public root key id (16 hex characters); see the format.
func (k *Keystore) ID() string { return k.idHex }

// KeyLabel returns the CKA_LABEL of the wrapping key.
func (k *Keystore) KeyLabel() string { return k.cfg.KeyLabel }

// String names the token, key label and key id, never the PIN.
func (k *Keystore) String() string {
	return fmt.Sprintf("PKCS11Keystore(token %q, key %q, id %s)", k.cfg.TokenLabel, k.cfg.KeyLabel, k.idHex)
}

// Format makes every fmt verb print String(), so the PIN in the config
// never reaches a log.
func (k *Keystore) Format(s fmt.State, _ rune) { fmt.Fprint(s, k.String()) }

// Close closes the sessions and, when no other Keystore uses the module,
// finalizes it. Later calls fail.
func (k *Keystore) Close() error {
	k.closer.Do(func() {
		k.life.Lock()
		defer k.life.Unlock()
		k.mu.Lock()
		k.closed = true
		k.dropLocked()
		k.mu.Unlock()
		releaseModule(k.cfg.Module)
	})
	return nil
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
	err := k.do(ctx, func(sh p11.SessionHandle, key p11.ObjectHandle) error {
		iv := make([]byte, ivSize)
		if _, err := rand.Read(iv); err != nil {
			return fmt.Errorf("reading random IV: %w", err)
		}
		params := p11.NewGCMParams(iv, k.additionalData(aad), tagSize*8)
		defer params.Free()
		if err := k.ctx.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		ct, err := k.ctx.Encrypt(sh, plaintext)
		if err != nil {
			return err
		}
		// Some HSMs choose the IV themselves and write it back.
		if got := params.IV(); len(got) == ivSize {
			iv = got
		}
		if len(ct) != len(plaintext)+tagSize {
			return fmt.Errorf("token returned %d bytes of AES-GCM output for %d bytes of input", len(ct), len(plaintext))
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
	err := k.do(ctx, func(sh p11.SessionHandle, key p11.ObjectHandle) error {
		iv := bytes.Clone(wrapped[ivOffset:headerLen])
		params := p11.NewGCMParams(iv, k.additionalData(aad), tagSize*8)
		defer params.Free()
		if err := k.ctx.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, key); err != nil {
			return err
		}
		out, err := k.ctx.Decrypt(sh, wrapped[headerLen:])
		if err != nil {
			if isAuthFailure(err) {
				return errAuth
			}
			return err
		}
		pt = out
		return nil
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

// do runs f on a pooled session. A failure that means the sessions or the
// token are gone discards every session, and f is tried once more on a
// fresh connection.
func (k *Keystore) do(ctx context.Context, f func(p11.SessionHandle, p11.ObjectHandle) error) error {
	k.life.RLock()
	defer k.life.RUnlock()
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-k.sem }()
	for attempt := 0; ; attempt++ {
		s, key, err := k.getSession()
		if err != nil {
			return err
		}
		err = f(s.h, key)
		if err == nil {
			k.putSession(s)
			return nil
		}
		// After a failed operation the session's state is unknown: never
		// reuse it.
		k.closeSession(s)
		if !isConnectionLost(err) {
			return err
		}
		k.invalidate(s.gen)
		if attempt > 0 || ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

func (k *Keystore) getSession() (session, p11.ObjectHandle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return session{}, 0, errors.New("keystore is closed")
	}
	if !k.ready {
		if err := k.connectLocked(false); err != nil {
			return session{}, 0, err
		}
	}
	if n := len(k.idle); n > 0 {
		s := k.idle[n-1]
		k.idle = k.idle[:n-1]
		return s, k.key, nil
	}
	h, err := k.ctx.OpenSession(k.slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		if isConnectionLost(err) {
			k.dropLocked()
		}
		return session{}, 0, fmt.Errorf("%w: opening a session: %w", ErrUnavailable, err)
	}
	return session{h: h, gen: k.gen, epoch: k.epoch}, k.key, nil
}

func (k *Keystore) putSession(s session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ready && !k.closed && s.gen == k.gen && len(k.idle) < cap(k.sem) {
		k.idle = append(k.idle, s)
		return
	}
	k.closeSessionLocked(s)
}

func (k *Keystore) closeSession(s session) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closeSessionLocked(s)
}

// closeSessionLocked closes s unless the module was initialized again
// since it was opened (errors ignored: it is likely dead).
func (k *Keystore) closeSessionLocked(s session) {
	if s.epoch == k.epoch {
		_ = k.ctx.CloseSession(s.h)
	}
}

// invalidate discards the connection that session generation gen belonged
// to, unless another caller already did.
func (k *Keystore) invalidate(gen uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if gen == k.gen {
		k.dropLocked()
	}
}

// dropLocked closes every session (errors ignored: they are likely dead)
// and marks the keystore disconnected.
func (k *Keystore) dropLocked() {
	for _, s := range k.idle {
		k.closeSessionLocked(s)
	}
	k.idle = nil
	if k.ready {
		k.closeSessionLocked(k.login)
	}
	k.ready = false
	k.gen++
}

// connectLocked finds the token, opens the login session, logs in and
// finds (or, on first start, creates) the key.
func (k *Keystore) connectLocked(first bool) error {
	if k.fatal != nil {
		return k.fatal
	}
	if !first && k.lastErr != nil && time.Since(k.lastTry) < k.retry {
		return k.lastErr
	}
	k.lastTry = time.Now()
	err := k.connectOnce(first)
	if err != nil && hasCode(err, p11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		// The module was finalized under us: initialize it again.
		k.epoch++
		if ierr := k.ctx.Initialize(); ierr == nil || hasCode(ierr, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			err = k.connectOnce(first)
		}
	}
	if err != nil {
		if hasCode(err, p11.CKR_PIN_INCORRECT) || hasCode(err, p11.CKR_PIN_LOCKED) || hasCode(err, p11.CKR_PIN_EXPIRED) {
			k.fatal = fmt.Errorf("keystore: pkcs11: token %q refused the PIN; not retrying: %w", k.cfg.TokenLabel, err)
			return k.fatal
		}
		k.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return k.lastErr
	}
	k.lastErr = nil
	return nil
}

func (k *Keystore) connectOnce(first bool) (err error) {
	slot, err := findSlot(k.ctx, k.cfg.TokenLabel)
	if err != nil {
		return err
	}
	sh, err := k.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("opening a session on token %q: %w", k.cfg.TokenLabel, err)
	}
	defer func() {
		if err != nil {
			_ = k.ctx.CloseSession(sh)
		}
	}()
	if err := k.ctx.Login(sh, p11.CKU_USER, k.cfg.PIN); err != nil && !hasCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		return fmt.Errorf("logging in to token %q: %w", k.cfg.TokenLabel, err)
	}
	key, id, err := findKey(k.ctx, sh, k.cfg.KeyLabel, first)
	if err != nil {
		return err
	}
	if first {
		k.id = id
		k.idHex = hex.EncodeToString(id[:])
	} else if id != k.id {
		return fmt.Errorf("key %q on token %q now has id %x, not %s: it was replaced", k.cfg.KeyLabel, k.cfg.TokenLabel, id, k.idHex)
	}
	k.slot, k.login, k.key = slot, session{h: sh, gen: k.gen, epoch: k.epoch}, key
	k.ready = true
	return nil
}

// findSlot returns the slot holding the initialized token labelled label.
func findSlot(c *p11.Ctx, label string) (uint, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("listing slots: %w", err)
	}
	found := []uint{}
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if ti.Label == label && ti.Flags&p11.CKF_TOKEN_INITIALIZED != 0 {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("no token labelled %q", label)
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("%d tokens are labelled %q; labels must be unique", len(found), label)
	}
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
