package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
)

// rootsFile is the roots manifest in the data folder: which root key is
// current (used for new wraps) and which older ones are kept (to unwrap
// what they wrapped until it is rewrapped). Without it the root is the one
// the configuration names (root.key, or the PKCS#11 key_label).
const rootsFile = "roots.json"

// rootRef names one root key: a file (relative to the data folder) or a
// key label in the configured PKCS#11 token. ID is the root key id it had
// when it was listed, checked on open.
type rootRef struct {
	Kind  string `json:"kind"` // "file" or "pkcs11"
	File  string `json:"file,omitempty"`
	Label string `json:"label,omitempty"`
	ID    string `json:"id"`
}

func (r rootRef) String() string {
	if r.Kind == "pkcs11" {
		return fmt.Sprintf("%s (pkcs11 key %q)", r.ID, r.Label)
	}
	return fmt.Sprintf("%s (file %s)", r.ID, r.File)
}

// rootsManifest is the content of roots.json.
type rootsManifest struct {
	Current rootRef   `json:"current"`
	Kept    []rootRef `json:"kept,omitempty"`
	// Rewrapping is true from the moment a rotation made a new current
	// root until a rewrap pass found nothing under the kept roots.
	Rewrapping bool `json:"rewrapping,omitempty"`
}

// readRoots reads the manifest; ok is false when there is none.
func readRoots(dataDir string) (m rootsManifest, ok bool, err error) {
	f, _, err := durable.OpenPrivate(filepath.Join(dataDir, rootsFile), "roots manifest")
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, false, fmt.Errorf("roots manifest %s: %w", f.Name(), err)
	}
	if m.Current.Kind == "" || m.Current.ID == "" {
		return m, false, fmt.Errorf("roots manifest %s names no current root", f.Name())
	}
	return m, true, nil
}

// writeRoots replaces the manifest atomically (temporary file, fsync,
// rename, directory fsync), mode 0600.
func writeRoots(dataDir string, m rootsManifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return durable.Replace(filepath.Join(dataDir, rootsFile), append(b, '\n'), 0o600)
}

// implicitRoot is the root the configuration names when there is no
// manifest. Its ID is filled in when it is opened.
func implicitRoot(cfg config.Config) (rootRef, error) {
	if cfg.Keystore.Type == "pkcs11" {
		return rootRef{Kind: "pkcs11", Label: cfg.Keystore.PKCS11.KeyLabel}, nil
	}
	f, err := implicitFileRoot(cfg.DataDir)
	return rootRef{Kind: "file", File: f}, err
}

// sealedRootFile is the sealed root key file kmsd init creates.
const sealedRootFile = rootKeyFile + keystore.SealedSuffix

// implicitFileRoot is the file root of a data folder without a roots
// manifest: root.key.sealed when kmsd init sealed it, else root.key
// (created by kmsd serve on first start). Both at once is refused: one of
// them is left over, and guessing which would either ignore the seal or
// lose the key.
func implicitFileRoot(dataDir string) (string, error) {
	_, errPlain := os.Lstat(filepath.Join(dataDir, rootKeyFile))
	_, errSealed := os.Lstat(filepath.Join(dataDir, sealedRootFile))
	switch {
	case errSealed == nil && errPlain == nil:
		return "", fmt.Errorf("both %s and %s exist in %s: the plaintext root key is left over from sealing it (kmsd init --seal-existing); once kmsd unseal works, destroy %s (shred -u), or move %s aside to undo the seal",
			rootKeyFile, sealedRootFile, dataDir, rootKeyFile, sealedRootFile)
	case errSealed == nil:
		return sealedRootFile, nil
	case !errors.Is(errSealed, fs.ErrNotExist):
		return "", fmt.Errorf("sealed root key file: %w", errSealed)
	}
	return rootKeyFile, nil
}

// errSealed is wrapped by the error of opening a sealed root without its
// seal key.
var errSealed = errors.New("the root of trust is sealed")

// sealOf returns the seal of a data folder's root of trust: the header of
// the first sealed root key file among the roots the manifest (or, without
// one, the configuration) names; nil when none is sealed. All sealed roots
// of a folder share one seal key.
func sealOf(cfg config.Config) (*keystore.SealInfo, error) {
	m, ok, err := readRoots(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if !ok {
		if m.Current, err = implicitRoot(cfg); err != nil {
			return nil, err
		}
	}
	for _, r := range append([]rootRef{m.Current}, m.Kept...) {
		if r.Kind == "file" && keystore.IsSealedPath(r.File) {
			info, err := keystore.ReadSealInfo(filepath.Join(cfg.DataDir, r.File))
			if err != nil {
				return nil, err
			}
			return &info, nil
		}
	}
	return nil, nil
}

// openRoot opens one root key; create allows making a new one (a missing
// file root or PKCS#11 key is created by the keystore). A sealed root key
// file (name ending in .sealed) is opened, or created, with seal; without
// it the error wraps errSealed.
func openRoot(ctx context.Context, cfg config.Config, getenv func(string) string, seal *keystore.SealKey, r rootRef) (keystore.Root, func(), error) {
	var root keystore.Root
	closeFn := func() {}
	switch r.Kind {
	case "file":
		path := filepath.Join(cfg.DataDir, r.File)
		_, statErr := os.Stat(path)
		if r.ID != "" {
			// A listed root must exist: never create it anew.
			if statErr != nil {
				return nil, nil, fmt.Errorf("root key %s: %w", r, statErr)
			}
		}
		var ks *keystore.FileKeystore
		var err error
		switch {
		case !keystore.IsSealedPath(path):
			ks, err = keystore.OpenFile(path)
		case seal == nil:
			return nil, nil, fmt.Errorf("root key %s: %w: only kmsd serve (unsealed by kmsd unseal) and kmsd root rotate|migrate (given the unseal material) open it", r, errSealed)
		case errors.Is(statErr, fs.ErrNotExist):
			ks, err = keystore.CreateSealedFile(path, seal)
		default:
			ks, err = keystore.OpenSealedFile(path, seal)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("open root key: %w", err)
		}
		root = ks
	case "pkcs11":
		if cfg.Keystore.Type != "pkcs11" {
			return nil, nil, fmt.Errorf("root key %s is in a PKCS#11 token, but the configuration has no keystore.pkcs11 settings (keystore.type is %s)", r, cfg.Keystore.Type)
		}
		p := cfg.Keystore.PKCS11
		pin, err := p.PIN(getenv)
		if err != nil {
			return nil, nil, err
		}
		ks, err := pkcs11.Open(ctx, pkcs11.Config{Module: p.Module, TokenLabel: p.TokenLabel, PIN: pin, KeyLabel: r.Label, Sessions: p.Sessions})
		if err != nil {
			return nil, nil, fmt.Errorf("open PKCS#11 keystore (module %s, token %q, key %q): %w", p.Module, p.TokenLabel, r.Label, err)
		}
		root, closeFn = ks, func() { ks.Close() }
	default:
		return nil, nil, fmt.Errorf("root key %s: unknown kind %q", r, r.Kind)
	}
	if r.ID != "" && root.ID() != r.ID {
		closeFn()
		return nil, nil, fmt.Errorf("root key %s now has id %s: it is not the key the roots manifest lists", r, root.ID())
	}
	return root, closeFn, nil
}

// openRing opens the current root and every kept root of the manifest (or
// the configured root when there is none). It returns the manifest it
// used, with the implicit root's id filled in.
func openRing(ctx context.Context, cfg config.Config, getenv func(string) string, seal *keystore.SealKey) (*keystore.Ring, rootsManifest, func(), error) {
	m, ok, err := readRoots(cfg.DataDir)
	if err != nil {
		return nil, m, nil, err
	}
	if !ok {
		cur, err := implicitRoot(cfg)
		if err != nil {
			return nil, m, nil, err
		}
		m = rootsManifest{Current: cur}
	}
	roots, closeAll, err := openManifest(ctx, cfg, getenv, seal, &m)
	if err != nil {
		return nil, m, nil, err
	}
	ring, err := keystore.NewRing(roots[0], roots[1:]...)
	if err != nil {
		closeAll()
		return nil, m, nil, err
	}
	return ring, m, closeAll, nil
}

// openKeystore opens the root of trust: the roots of the manifest in the
// data folder, or the configured one (the root key file in the data
// folder, or a key inside a PKCS#11 token). It logs the roots. The
// keystore reloads the manifest on SIGHUP (reload) and when it meets a
// blob wrapped under a root it does not hold, so that a running kmsd
// unwraps what kmsd root rotate rewrapped and then wraps under the new
// current root.
func openKeystore(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger) (rootKeystore, func(), error) {
	return openSealedKeystore(ctx, cfg, getenv, nil, log)
}

// openSealedKeystore is openKeystore for a data folder whose roots are
// sealed: seal opens them (and any sealed root a rotation adds later). The
// keystore keeps seal and wipes it when closed.
func openSealedKeystore(ctx context.Context, cfg config.Config, getenv func(string) string, seal *keystore.SealKey, log *slog.Logger) (rootKeystore, func(), error) {
	lr := &liveRing{cfg: cfg, getenv: getenv, log: log, seal: seal}
	if err := lr.reload(ctx); err != nil {
		return nil, nil, err
	}
	return lr, lr.close, nil
}

// liveRing is the keystore of kmsd serve: a keystore.Ring that is
// replaced when the roots manifest changes.
type liveRing struct {
	cfg    config.Config
	getenv func(string) string
	log    *slog.Logger
	// seal opens sealed roots; nil when the folder is not sealed. Kept for
	// the life of the keystore: a reload may meet a new sealed root.
	seal *keystore.SealKey

	ring      atomic.Pointer[keystore.Ring]
	checked   atomic.Int64           // when watch last looked at roots.json (Unix ns)
	stamp     atomic.Pointer[string] // manifestStamp of the last reload
	reloading atomic.Bool

	mu       sync.Mutex
	closeFn  func() // closes the roots of the ring in use
	closed   bool
	lastTry  time.Time
	lastRoot string // manifest content of the ring in use, to skip no-op reloads
}

func (l *liveRing) ID() string { return l.ring.Load().ID() }

func (l *liveRing) Wrap(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	l.watch()
	return l.ring.Load().Wrap(ctx, plaintext, aad)
}

// watch checks, at most once a second, whether roots.json changed since it
// was loaded, and if so reloads it in the background: a running kmsd
// starts wrapping under a new current root within a second or so of a
// rotation, without a signal.
func (l *liveRing) watch() {
	now := time.Now().UnixNano()
	last := l.checked.Load()
	if now-last < int64(time.Second) || !l.checked.CompareAndSwap(last, now) {
		return
	}
	if p := l.stamp.Load(); p != nil && *p == manifestStamp(l.cfg.DataDir) {
		return
	}
	if !l.reloading.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.reloading.Store(false)
		if err := l.reload(context.Background()); err != nil {
			l.log.Error("reloading the roots manifest; the previous roots stay in use", "err", err)
		}
	}()
}

// manifestStamp identifies the version of roots.json on disk.
func manifestStamp(dataDir string) string {
	fi, err := os.Stat(filepath.Join(dataDir, rootsFile))
	if err != nil {
		return "absent"
	}
	return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
}

func (l *liveRing) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	r := l.ring.Load()
	id, ok := keystore.WrappedRootID(wrapped)
	if ok && !r.Has(id) && l.reloadFor(ctx, id) {
		r = l.ring.Load()
	}
	return r.Unwrap(ctx, wrapped, aad)
}

// reloadFor reloads the manifest to find root id, at most once a second
// (a root missing for good must not cost every request a reload). It
// reports whether the ring now holds id.
func (l *liveRing) reloadFor(ctx context.Context, id string) bool {
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
	if err := l.reload(ctx); err != nil {
		l.log.Error("reloading the roots manifest for a secret wrapped under an unknown root", "root_key", id, "err", err)
	}
	return l.ring.Load().Has(id)
}

// reload opens the roots the manifest (or the configuration) names and
// puts them in use. The roots it replaces are closed a minute later, once
// the calls still using them are done.
func (l *liveRing) reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("keystore closed")
	}
	// Recorded first, so that a manifest that fails to load is reported
	// once per change, not at every check.
	stamp := manifestStamp(l.cfg.DataDir)
	l.stamp.Store(&stamp)
	m, ok, err := readRoots(l.cfg.DataDir)
	if err != nil {
		return err
	}
	if l.ring.Load() != nil {
		if b, _ := json.Marshal(m); ok && string(b) == l.lastRoot {
			return nil // unchanged
		}
	}
	ring, m, closeFn, err := openRing(ctx, l.cfg, l.getenv, l.seal)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	l.lastRoot = string(b)
	l.ring.Store(ring)
	if old := l.closeFn; old != nil {
		time.AfterFunc(time.Minute, old)
	}
	l.closeFn = closeFn

	attrs := []any{"kind", m.Current.Kind, "root_key", ring.ID()}
	if m.Current.Kind == "pkcs11" {
		p := l.cfg.Keystore.PKCS11
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

func (l *liveRing) close() {
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

// newRootName returns a fresh name for a new root: a file name in the data
// folder or a PKCS#11 key label.
func newRootName(base string) string {
	var r [4]byte
	rand.Read(r[:])
	return base + "-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:])
}
