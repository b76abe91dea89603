//go:build cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// retryInterval is the least time between two reconnection attempts after
// one failed, so that a dead HSM is not hammered by every request.
const retryInterval = time.Second

// Token is a logged-in connection to one PKCS#11 token with a pool of
// sessions. Its methods are safe for concurrent use: at most
// TokenConfig.Sessions operations run at once, each on a session of its
// own, and the rest wait (bounded by their context). When the token stops
// answering, operations fail with errors wrapping ErrUnavailable and the
// Token reconnects (new sessions, login) on a later call.
//
// A Token never prints its PIN: every fmt verb shows only the token label.
type Token struct {
	cfg    TokenConfig
	ctx    *p11.Ctx
	sem    chan struct{}
	retry  time.Duration
	closer sync.Once
	// onConnect, when set, runs after every (re)login on the login
	// session, before the connection is used; first is true for the
	// connection Open makes. An error fails the connection.
	onConnect func(sh p11.SessionHandle, first bool) error

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
	epoch uint64
	idle  []session
	// handles caches object handles by CKA_LABEL for the current
	// connection; handles may change across logins, so it is emptied with
	// the sessions.
	handles map[string]p11.ObjectHandle
	lastErr error
	lastTry time.Time
	fatal   error // a refused PIN: never retried, lest the token lock
}

type session struct {
	h     p11.SessionHandle
	gen   uint64
	epoch uint64
}

// ErrPIN is wrapped by the error of OpenToken (and of later calls) when
// the token refuses the PIN: incorrect, locked or expired. kmsd never
// retries a refused PIN on its own, lest the token lock the user.
var ErrPIN = errors.New("token refused the PIN")

// ErrTokenNotFound is wrapped by the error of OpenToken when no
// initialized token has the configured label.
var ErrTokenNotFound = errors.New("no such token")

// OpenToken loads the module, finds the token by label and logs in.
func OpenToken(ctx context.Context, cfg TokenConfig) (*Token, error) {
	return openToken(ctx, cfg, nil)
}

func openToken(ctx context.Context, cfg TokenConfig, onConnect func(*Token, p11.SessionHandle, bool) error) (*Token, error) {
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
	t := &Token{cfg: cfg, ctx: c, sem: make(chan struct{}, cfg.Sessions), retry: retryInterval}
	if onConnect != nil {
		t.onConnect = func(sh p11.SessionHandle, first bool) error { return onConnect(t, sh, first) }
	}
	t.mu.Lock()
	err = t.connectLocked(true)
	t.mu.Unlock()
	if err != nil {
		releaseModule(cfg.Module)
		return nil, err
	}
	return t, nil
}

// Label returns the token's label.
func (t *Token) Label() string { return t.cfg.TokenLabel }

// String names the token, never the PIN.
func (t *Token) String() string { return fmt.Sprintf("PKCS11Token(%q)", t.cfg.TokenLabel) }

// Format makes every fmt verb print String(), so the PIN in the config
// never reaches a log.
func (t *Token) Format(s fmt.State, _ rune) { fmt.Fprint(s, t.String()) }

// Close closes the sessions and, when nothing else in the process uses
// the module, finalizes it. Later calls fail.
func (t *Token) Close() error {
	t.closer.Do(func() {
		t.life.Lock()
		defer t.life.Unlock()
		t.mu.Lock()
		t.closed = true
		t.dropLocked()
		t.mu.Unlock()
		releaseModule(t.cfg.Module)
	})
	return nil
}

// do runs f on a pooled session. A failure that means the sessions or the
// token are gone discards every session, and f is tried once more on a
// fresh connection.
func (t *Token) do(ctx context.Context, f func(p11.SessionHandle) error) error {
	t.life.RLock()
	defer t.life.RUnlock()
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.sem }()
	for attempt := 0; ; attempt++ {
		s, err := t.getSession()
		if err != nil {
			return err
		}
		err = f(s.h)
		if err == nil {
			t.putSession(s)
			return nil
		}
		// After a failed operation the session's state is unknown: never
		// reuse it.
		t.closeSession(s)
		if !isConnectionLost(err) {
			return err
		}
		t.invalidate(s.gen)
		if attempt > 0 || ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

// handle returns the object handle of the secret key labelled label on the
// current connection, looking it up (on session sh) when not cached. It
// fails with an error wrapping errNoKey when the token has no such key.
func (t *Token) handle(sh p11.SessionHandle, label string) (p11.ObjectHandle, error) {
	t.mu.Lock()
	h, ok := t.handles[label]
	gen := t.gen
	t.mu.Unlock()
	if ok {
		return h, nil
	}
	objs, err := findObjects(t.ctx, sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_LABEL, label),
	})
	if err != nil {
		return 0, fmt.Errorf("finding key %q: %w", label, err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("%w: %q", errNoKey, label)
	case 1:
	default:
		return 0, fmt.Errorf("%d secret keys are labelled %q; labels must be unique", len(objs), label)
	}
	t.remember(gen, label, objs[0])
	return objs[0], nil
}

// remember caches a handle found on connection generation gen, unless the
// connection changed meanwhile.
func (t *Token) remember(gen uint64, label string, h p11.ObjectHandle) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.gen {
		return
	}
	if t.handles == nil {
		t.handles = map[string]p11.ObjectHandle{}
	}
	t.handles[label] = h
}

// forgetHandle drops a cached handle (after its object was destroyed).
func (t *Token) forgetHandle(label string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.handles, label)
}

func (t *Token) getSession() (session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return session{}, errors.New("token connection is closed")
	}
	if !t.ready {
		if err := t.connectLocked(false); err != nil {
			return session{}, err
		}
	}
	if n := len(t.idle); n > 0 {
		s := t.idle[n-1]
		t.idle = t.idle[:n-1]
		return s, nil
	}
	h, err := t.ctx.OpenSession(t.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		if isConnectionLost(err) {
			t.dropLocked()
		}
		return session{}, fmt.Errorf("%w: opening a session: %w", ErrUnavailable, err)
	}
	return session{h: h, gen: t.gen, epoch: t.epoch}, nil
}

func (t *Token) putSession(s session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ready && !t.closed && s.gen == t.gen && len(t.idle) < cap(t.sem) {
		t.idle = append(t.idle, s)
		return
	}
	t.closeSessionLocked(s)
}

func (t *Token) closeSession(s session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeSessionLocked(s)
}

// closeSessionLocked closes s unless the module was initialized again
// since it was opened (errors ignored: it is likely dead).
func (t *Token) closeSessionLocked(s session) {
	if s.epoch == t.epoch {
		_ = t.ctx.CloseSession(s.h)
	}
}

// invalidate discards the connection that session generation gen belonged
// to, unless another caller already did.
func (t *Token) invalidate(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen == t.gen {
		t.dropLocked()
	}
}

// dropLocked closes every session (errors ignored: they are likely dead)
// and marks the token disconnected.
func (t *Token) dropLocked() {
	for _, s := range t.idle {
		t.closeSessionLocked(s)
	}
	t.idle = nil
	if t.ready {
		t.closeSessionLocked(t.login)
	}
	t.ready = false
	t.handles = nil
	t.gen++
}

// connectLocked finds the token, opens the login session and logs in.
func (t *Token) connectLocked(first bool) error {
	if t.fatal != nil {
		return t.fatal
	}
	if !first && t.lastErr != nil && time.Since(t.lastTry) < t.retry {
		return t.lastErr
	}
	t.lastTry = time.Now()
	err := t.connectOnce(first)
	if err != nil && hasCode(err, p11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		// The module was finalized under us: initialize it again.
		t.epoch++
		if ierr := t.ctx.Initialize(); ierr == nil || hasCode(ierr, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			err = t.connectOnce(first)
		}
	}
	if err != nil {
		if hasCode(err, p11.CKR_PIN_INCORRECT) || hasCode(err, p11.CKR_PIN_LOCKED) || hasCode(err, p11.CKR_PIN_EXPIRED) || hasCode(err, p11.CKR_PIN_INVALID) || hasCode(err, p11.CKR_PIN_LEN_RANGE) {
			t.fatal = fmt.Errorf("keystore: pkcs11: token %q refused the PIN; not retrying: %w: %w", t.cfg.TokenLabel, ErrPIN, err)
			return t.fatal
		}
		if errors.Is(err, ErrTokenNotFound) && first {
			return fmt.Errorf("keystore: pkcs11: %w", err)
		}
		t.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return t.lastErr
	}
	t.lastErr = nil
	return nil
}

func (t *Token) connectOnce(first bool) (err error) {
	slot, err := findSlot(t.ctx, t.cfg.TokenLabel)
	if err != nil {
		return err
	}
	sh, err := t.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("opening a session on token %q: %w", t.cfg.TokenLabel, err)
	}
	defer func() {
		if err != nil {
			_ = t.ctx.CloseSession(sh)
		}
	}()
	if err := t.ctx.Login(sh, p11.CKU_USER, t.cfg.PIN); err != nil && !hasCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		return fmt.Errorf("logging in to token %q: %w", t.cfg.TokenLabel, err)
	}
	t.slot, t.login = slot, session{h: sh, gen: t.gen, epoch: t.epoch}
	t.handles = nil
	if t.onConnect != nil {
		if err := t.onConnect(sh, first); err != nil {
			return err
		}
	}
	t.ready = true
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
		return 0, fmt.Errorf("%w labelled %q", ErrTokenNotFound, label)
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("%d tokens are labelled %q; labels must be unique", len(found), label)
	}
}
