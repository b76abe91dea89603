// Package rootmgr manages the roots of trust of a data folder: the roots
// manifest that names the current root and the older roots kept to unwrap
// what they wrapped (behind ManifestStore, a file in the data folder
// today), opening those roots as a keystore.Ring, the LiveRing kmsd serve
// uses (it follows the manifest while it runs), and the rotation that
// makes a new root and rewraps every stored secret under it, resumably and
// while kmsd serves.
//
// Without a manifest the root is the one the configuration names: the
// root key file in the data folder (root.key, or root.key.sealed once
// kmsd init sealed it), or the key_label key in the PKCS#11 token.
package rootmgr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
)

// Root key files in the data folder.
const (
	// RootKeyFile is the file root kmsd serve creates on its first start.
	RootKeyFile = "root.key"
	// SealedRootFile is the sealed root kmsd init creates.
	SealedRootFile = RootKeyFile + keystore.SealedSuffix
)

// ErrSealed is wrapped by the error of opening a sealed root without its
// seal key.
var ErrSealed = errors.New("the root of trust is sealed")

// UnsealFunc returns the seal key of roots sealed as info describes,
// asking the operator for the unseal material. The Manager wipes the key
// when it is done with it.
type UnsealFunc func(info keystore.SealInfo) (*keystore.SealKey, error)

// Config says where a data folder's roots are.
type Config struct {
	// DataDir holds the root key files (the manifest names them relative
	// to it) and the audit signing key, which the roots wrap too.
	DataDir string
	// Keystore is the configured root of trust: the root when there is
	// no manifest, and the PKCS#11 token that holds every pkcs11 root.
	Keystore config.Keystore
	// Getenv reads the PKCS#11 PIN when keystore.pkcs11.pin_env names a
	// variable (nil: no variable is set).
	Getenv func(string) string
	// Manifest holds the roots manifest (nil: the FileManifest of
	// DataDir).
	Manifest ManifestStore
	// CreateRoot lets the configured root be created when there is no
	// manifest and its file is missing: on the first start of an empty
	// data folder only. Otherwise a missing root key file is an error: a
	// new root could unwrap nothing the store holds.
	CreateRoot bool
}

// Manager opens and changes the roots of one data folder.
type Manager struct {
	cfg Config
}

// New returns the Manager of cfg's data folder.
func New(cfg Config) *Manager {
	if cfg.Manifest == nil {
		cfg.Manifest = NewFileManifest(cfg.DataDir)
	}
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	return &Manager{cfg: cfg}
}

// manifest returns the manifest in force and its revision: the stored
// one, or, when none is stored, the implicit one naming the configured
// root (its ID empty until opened) with NoRev; stored says which.
func (g *Manager) manifest(ctx context.Context) (m Manifest, rev Rev, stored bool, err error) {
	m, rev, err = g.cfg.Manifest.Load(ctx)
	if err == nil {
		return m, rev, true, nil
	}
	if !errors.Is(err, ErrNoManifest) {
		return Manifest{}, NoRev, false, err
	}
	cur, err := g.implicitRoot()
	return Manifest{Current: cur}, NoRev, false, err
}

// implicitRoot is the root the configuration names when there is no
// manifest.
func (g *Manager) implicitRoot() (Ref, error) {
	if g.cfg.Keystore.Type == KindPKCS11 {
		return Ref{Kind: KindPKCS11, Label: g.cfg.Keystore.PKCS11.KeyLabel}, nil
	}
	f, err := g.implicitFileRoot()
	return Ref{Kind: KindFile, File: f}, err
}

// implicitFileRoot is the file root of a data folder without a manifest:
// root.key.sealed when kmsd init sealed it, else root.key (created by
// kmsd serve on first start). Both at once is refused: one of them is left
// over, and guessing which would either ignore the seal or lose the key.
func (g *Manager) implicitFileRoot() (string, error) {
	dir := g.cfg.DataDir
	_, errPlain := os.Lstat(filepath.Join(dir, RootKeyFile))
	_, errSealed := os.Lstat(filepath.Join(dir, SealedRootFile))
	switch {
	case errSealed == nil && errPlain == nil:
		return "", fmt.Errorf("both %s and %s exist in %s: the plaintext root key is left over from sealing it (kmsd init --seal-existing); once kmsd unseal works, destroy %s (shred -u), or move %s aside to undo the seal",
			RootKeyFile, SealedRootFile, dir, RootKeyFile, SealedRootFile)
	case errSealed == nil:
		return SealedRootFile, nil
	case !errors.Is(errSealed, fs.ErrNotExist):
		return "", fmt.Errorf("sealed root key file: %w", errSealed)
	}
	return RootKeyFile, nil
}

// SealInfo returns the seal of the data folder's roots: the header of
// the first sealed root key file among the roots the manifest (or,
// without one, the configuration) names; nil when none is sealed. All
// sealed roots of a folder share one seal key.
func (g *Manager) SealInfo(ctx context.Context) (*keystore.SealInfo, error) {
	m, _, _, err := g.manifest(ctx)
	if err != nil {
		return nil, err
	}
	return g.sealInfoOf(m)
}

func (g *Manager) sealInfoOf(m Manifest) (*keystore.SealInfo, error) {
	for _, r := range append([]Ref{m.Current}, m.Kept...) {
		if r.Kind == KindFile && keystore.IsSealedPath(r.File) {
			info, err := keystore.ReadSealInfo(filepath.Join(g.cfg.DataDir, r.File))
			if err != nil {
				return nil, err
			}
			return &info, nil
		}
	}
	return nil, nil
}

// openRoot opens one root key. A root with an ID must exist and have that
// id; one without (a new root, or the implicit one) is created when
// missing. A sealed root key file (name ending in .sealed) is opened, or
// created, with seal; without it the error wraps ErrSealed.
//
// A PKCS#11 root's key is generated in the token when absent only when
// create is set: for a new root (rotation, migration) and on the first
// start of an empty data folder (CreateRoot).
func (g *Manager) openRoot(ctx context.Context, seal *keystore.SealKey, r Ref, create bool) (keystore.Root, func(), error) {
	var root keystore.Root
	closeFn := func() {}
	switch r.Kind {
	case KindFile:
		path := filepath.Join(g.cfg.DataDir, r.File)
		_, statErr := os.Stat(path)
		if r.ID != "" && statErr != nil {
			// A listed root must exist: never create it anew.
			return nil, nil, fmt.Errorf("root key %s: %w", r, statErr)
		}
		var ks *keystore.FileKeystore
		var err error
		switch {
		case !keystore.IsSealedPath(path):
			ks, err = keystore.OpenFile(path)
		case seal == nil:
			return nil, nil, fmt.Errorf("root key %s: %w: only kmsd serve (unsealed by kmsd unseal) and kmsd root rotate|migrate (given the unseal material) open it", r, ErrSealed)
		case errors.Is(statErr, fs.ErrNotExist):
			ks, err = keystore.CreateSealedFile(path, seal)
		default:
			ks, err = keystore.OpenSealedFile(path, seal)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("open root key: %w", err)
		}
		root = ks
	case KindPKCS11:
		if g.cfg.Keystore.Type != KindPKCS11 {
			return nil, nil, fmt.Errorf("root key %s is in a PKCS#11 token, but the configuration has no keystore.pkcs11 settings (keystore.type is %s)", r, g.cfg.Keystore.Type)
		}
		p := g.cfg.Keystore.PKCS11
		pin, err := p.PIN(g.cfg.Getenv)
		if err != nil {
			return nil, nil, err
		}
		ks, err := pkcs11.Open(ctx, pkcs11.Config{Module: p.Module, TokenLabel: p.TokenLabel, PIN: pin, KeyLabel: r.Label, Sessions: p.Sessions,
			MustExist: !create || r.ID != ""})
		if err != nil {
			if !create {
				return nil, nil, fmt.Errorf("open PKCS#11 keystore (module %s, token %q, key %q): %w (kmsd generates the root key in the token only on the first start of an empty data folder on an unused store: a new key could unwrap nothing the store holds; check the token and key_label every node uses)", p.Module, p.TokenLabel, r.Label, err)
			}
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

// openRoots opens every root of m (current first) and fills in the
// current root's id when the manifest was implicit. closeAll closes them.
func (g *Manager) openRoots(ctx context.Context, seal *keystore.SealKey, m *Manifest) (roots []keystore.Root, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for _, c := range closers {
			c()
		}
	}
	for i, r := range append([]Ref{m.Current}, m.Kept...) {
		if i == 0 && r.ID == "" && r.Kind == KindFile && !g.cfg.CreateRoot {
			// The implicit root, which openRoot would create.
			path := filepath.Join(g.cfg.DataDir, r.File)
			if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
				closeAll()
				return nil, nil, fmt.Errorf("root key file %s is missing: restore it from the copy you keep apart from the backups (kmsd creates a root key only on the first start of an empty data folder)", path)
			} else if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("root key file: %w", err)
			}
		}
		// Only the implicit root of a first start may be created.
		root, c, err := g.openRoot(ctx, seal, r, i == 0 && r.ID == "" && g.cfg.CreateRoot)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, c)
		roots = append(roots, root)
		if i == 0 {
			m.Current.ID = root.ID()
		}
	}
	return roots, closeAll, nil
}

// MissingRoots returns the root key files (relative to the data folder)
// that the manifest in force names, or without one the configuration,
// and that are not in the data folder. Roots in a PKCS#11 token are not
// looked at: only opening them tells.
func (g *Manager) MissingRoots(ctx context.Context) ([]string, error) {
	m, _, _, err := g.manifest(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, r := range append([]Ref{m.Current}, m.Kept...) {
		if r.Kind != KindFile {
			continue
		}
		if _, err := os.Lstat(filepath.Join(g.cfg.DataDir, r.File)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, r.File)
		} else if err != nil {
			return nil, fmt.Errorf("root key %s: %w", r.File, err)
		}
	}
	return missing, nil
}

// newRootName returns a fresh name for a new root: a file name in the data
// folder or a PKCS#11 key label.
func newRootName(base string) string {
	var r [4]byte
	rand.Read(r[:])
	return base + "-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:])
}
