package rootmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
)

// LiveRing is the keystore of kmsd serve: a keystore.Ring of the roots
// the manifest names, replaced when the manifest changes, so that a
// running kmsd unwraps what kmsd root rotate rewrapped and then wraps
// under the new current root. It reloads the manifest when Reload is
// called (SIGHUP), when it meets a blob wrapped under a root it does not
// hold, and at most once a second as it wraps.
type LiveRing struct {
	g   *Manager
	log *slog.Logger
	// seal opens sealed roots; nil when the folder is not sealed. Kept for
	// the life of the ring: a reload may meet a new sealed root.
	seal *keystore.SealKey

	ring      atomic.Pointer[keystore.Ring]
	checked   atomic.Int64        // when watch last looked at the manifest (Unix ns)
	seen      atomic.Pointer[Rev] // revision of the manifest last loaded, opened or not
	reloading atomic.Bool
	watchErr  string // the last error watch logged; only its goroutine uses it

	mu      sync.Mutex
	closeFn func() // closes the roots of the ring in use
	closed  bool
	lastTry time.Time
	inUse   Rev // revision of the manifest of the ring in use
}

// OpenLiveRing opens the roots of the manifest (or the configured root
// when there is none) as a LiveRing, and logs them. seal opens sealed
// roots (nil when the folder is not sealed); the LiveRing keeps it and
// wipes it on Close.
func (g *Manager) OpenLiveRing(ctx context.Context, seal *keystore.SealKey, log *slog.Logger) (*LiveRing, error) {
	l := &LiveRing{g: g, log: log, seal: seal}
	if err := l.Reload(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// ID returns the id of the current root.
func (l *LiveRing) ID() string { return l.ring.Load().ID() }

// Wrap wraps under the current root.
func (l *LiveRing) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	l.watch()
	return l.ring.Load().Wrap(ctx, plaintext, aad)
}

// Unwrap unwraps with the root whose id the blob names, reloading the
// manifest first when the ring does not hold it.
func (l *LiveRing) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	r := l.ring.Load()
	id, ok := keystore.WrappedRootID(wrapped)
	if ok && !r.Has(id) && l.reloadFor(ctx, id) {
		r = l.ring.Load()
	}
	return r.Unwrap(ctx, wrapped, aad)
}

// watch looks, at most once a second and in the background, whether the
// manifest changed since it was last loaded, and if so reloads it: a
// running kmsd starts wrapping under a new current root within a second or
// so of a rotation, without a signal. A manifest that fails to load or
// open is reported once per change.
func (l *LiveRing) watch() {
	now := time.Now().UnixNano()
	last := l.checked.Load()
	if now-last < int64(time.Second) || !l.checked.CompareAndSwap(last, now) {
		return
	}
	if !l.reloading.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.reloading.Store(false)
		ctx := context.Background()
		_, rev, err := l.g.cfg.Manifest.Load(ctx)
		if errors.Is(err, ErrNoManifest) {
			rev, err = NoRev, nil
		}
		if p := l.seen.Load(); err == nil && p != nil && *p == rev {
			return
		}
		if err := l.Reload(ctx); err != nil {
			if msg := err.Error(); msg != l.watchErr {
				l.watchErr = msg
				l.log.Error("reloading the roots manifest; the previous roots stay in use", "err", err)
			}
			return
		}
		l.watchErr = ""
	}()
}

// reloadFor reloads the manifest to find root id, at most once a second
// (a root missing for good must not cost every request a reload). It
// reports whether the ring now holds id.
func (l *LiveRing) reloadFor(ctx context.Context, id string) bool {
	l.mu.Lock()
	if l.ring.Load().Has(id) {
		l.mu.Unlock()
		return true
	}
	if time.Since(l.lastTry) < time.Second {
		l.mu.Unlock()
		return false
	}
	l.lastTry = time.Now()
	l.mu.Unlock()
	if err := l.Reload(ctx); err != nil {
		l.log.Error("reloading the roots manifest for a secret wrapped under an unknown root", "root_key", id, "err", err)
	}
	return l.ring.Load().Has(id)
}

// Reload loads the manifest and, when it is not the one in use, opens the
// roots it names and puts them in use. The roots it replaces are closed a
// minute later, once the calls still using them are done. On error the
// roots in use stay.
func (l *LiveRing) Reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("keystore closed")
	}
	m, rev, _, err := l.g.manifest(ctx)
	if err != nil {
		return err
	}
	// Recorded before opening, so that roots that fail to open are
	// reported once per change of the manifest, not at every check.
	l.seen.Store(&rev)
	if l.ring.Load() != nil && rev == l.inUse {
		return nil // unchanged
	}
	roots, closeFn, err := l.g.openRoots(ctx, l.seal, &m)
	if err != nil {
		return err
	}
	ring, err := keystore.NewRing(roots[0], roots[1:]...)
	if err != nil {
		closeFn()
		return err
	}
	l.inUse = rev
	l.ring.Store(ring)
	if old := l.closeFn; old != nil {
		time.AfterFunc(time.Minute, old)
	}
	l.closeFn = closeFn

	attrs := []any{"kind", m.Current.Kind, "root_key", ring.ID()}
	if m.Current.Kind == KindPKCS11 {
		p := l.g.cfg.Keystore.PKCS11
		attrs = append(attrs, "module", p.Module, "token_label", p.TokenLabel, "key_label", m.Current.Label)
	}
	if len(m.Kept) > 0 {
		var kept []string
		for _, r := range m.Kept {
			kept = append(kept, r.ID)
		}
		attrs = append(attrs, "kept_roots", kept)
	}
	l.log.Info("keystore opened", attrs...)
	return nil
}

// Close closes the roots and wipes the seal key.
func (l *LiveRing) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.closeFn != nil {
		l.closeFn()
		l.closeFn = nil
	}
	if l.seal != nil {
		l.seal.Wipe()
	}
}

// CheckStore refuses a store whose secrets this ring cannot unwrap: one of
// another kmsd deployment (another root key), or a node given the wrong
// root. It looks at the first stored access key (every deployment has
// one from its first start) and, failing that, the first key material.
// An empty store passes.
func (l *LiveRing) CheckStore(ctx context.Context, st store.WrappedSecrets) error {
	for _, kind := range []string{store.WrappedAccessKey, store.WrappedMaterial} {
		ws, err := st.ListWrapped(ctx, kind, store.WrappedRef{}, 1)
		if err != nil {
			return fmt.Errorf("check the store against the root of trust: %w", err)
		}
		if len(ws) == 0 {
			continue
		}
		id, ok := keystore.WrappedRootID(ws[0].Blob)
		if !ok {
			return fmt.Errorf("check the store against the root of trust: a stored %s is too short to be wrapped", kind)
		}
		r := l.ring.Load()
		if r.Has(id) || l.reloadFor(ctx, id) {
			return nil
		}
		return fmt.Errorf("the store belongs to another kmsd deployment, or this node has the wrong root of trust: "+
			"its secrets are wrapped under root key %s, which this node does not have (its root key is %s); "+
			"give this node that deployment's root key (the same root key file or PKCS#11 key), or point it at its own store", id, r.ID())
	}
	return nil
}
