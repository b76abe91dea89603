package rootmgr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/store"
)

// A root command (status, retire, rotate) runs next to a running kmsd if
// need be: the store allows a second process, every rewrap is a compare
// and set, and kmsd serve follows the manifest. Two commands that change
// the roots must not run at once (FileManifest.Lock).

// session is the manifest a root command works on, with its current
// root's id known, and its roots when they were opened.
type session struct {
	m     Manifest
	rev   Rev
	seal  *keystore.SealKey // nil when the roots are not sealed or stay closed
	roots []keystore.Root   // current first; nil when they stay closed
	close func()
}

// open resolves the manifest of a root command and opens its roots.
// Without a stored manifest the current root is the configured one, or,
// for a migration to a PKCS#11 root (to), the file root; it must exist
// already. Sealed roots are opened with the key unseal gives; with a nil
// unseal they stay closed (then the current root's id is the sealed
// file's), unless needRoots.
func (g *Manager) open(ctx context.Context, unseal UnsealFunc, to string, needRoots bool) (*session, error) {
	m, rev, stored, err := g.manifest(ctx)
	if err != nil {
		return nil, err
	}
	if !stored {
		if to == KindPKCS11 {
			f, err := g.implicitFileRoot()
			if err != nil {
				return nil, err
			}
			m.Current = Ref{Kind: KindFile, File: f}
		}
		if m.Current.Kind == KindFile {
			// Never create the old root: a missing one is a mistake.
			if _, err := os.Stat(filepath.Join(g.cfg.DataDir, m.Current.File)); err != nil {
				return nil, fmt.Errorf("the current root key file: %w", err)
			}
		}
	}
	info, err := g.sealInfoOf(m)
	if err != nil {
		return nil, err
	}
	s := &session{m: m, rev: rev, close: func() {}}
	if info != nil {
		if unseal == nil {
			if needRoots {
				return nil, fmt.Errorf("%w (%s): the unseal material is needed", ErrSealed, info.Describe())
			}
			if s.m.Current.ID == "" {
				s.m.Current.ID = info.RootID // implicit: the sealed root.key.sealed
			}
			return s, nil
		}
		if s.seal, err = unseal(*info); err != nil {
			return nil, err
		}
	}
	roots, closeRoots, err := g.openRoots(ctx, s.seal, &s.m)
	if err != nil {
		s.wipe()
		return nil, err
	}
	s.roots = roots
	s.close = func() { closeRoots(); s.wipe() }
	return s, nil
}

func (s *session) wipe() {
	if s.seal != nil {
		s.seal.Wipe()
	}
}

// signingKey is the audit signing key file, which the roots wrap too.
func (g *Manager) signingKey() string {
	return filepath.Join(g.cfg.DataDir, audit.SigningKeyFile)
}

// Count counts the stored secrets (and the audit signing key) by the id
// of the root that wrapped them.
func (g *Manager) Count(ctx context.Context, st store.Store) (map[string]int, error) {
	counts := map[string]int{}
	for _, kind := range store.WrappedKinds {
		var after store.WrappedRef
		for {
			page, err := st.ListWrapped(ctx, kind, after, 500)
			if err != nil {
				return nil, err
			}
			for _, w := range page {
				id, _ := keystore.WrappedRootID(w.Blob)
				counts[id]++
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].WrappedRef
		}
	}
	wrapped, err := audit.ReadWrappedSigningKey(g.signingKey())
	if err == nil {
		id, _ := keystore.WrappedRootID(wrapped)
		counts[id]++
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return counts, nil
}

// underOlder reports whether counts has secrets under a root other than
// current.
func underOlder(counts map[string]int, current string) bool {
	for id, n := range counts {
		if id != current && n > 0 {
			return true
		}
	}
	return false
}

// RootSecrets is a root and how many stored secrets it wraps.
type RootSecrets struct {
	Root    Ref
	Secrets int
}

// Status is what a data folder's roots hold.
type Status struct {
	Current RootSecrets
	// Kept are the kept roots, in the manifest's order; one with no
	// secrets can be retired.
	Kept []RootSecrets
	// Unknown are roots the manifest does not name but that wrapped
	// stored secrets (Root has only an ID), by id: those secrets cannot
	// be unwrapped.
	Unknown []RootSecrets
	// Finished is true when no rewrap is pending: every secret is
	// wrapped under the current root.
	Finished bool
}

// Status reports how many stored secrets each root wraps. Sealed roots
// are opened (and so checked) only when unseal is given.
func (g *Manager) Status(ctx context.Context, st store.Store, unseal UnsealFunc) (Status, error) {
	s, err := g.open(ctx, unseal, "", false)
	if err != nil {
		return Status{}, err
	}
	defer s.close()
	return g.status(ctx, st, s.m)
}

func (g *Manager) status(ctx context.Context, st store.Store, m Manifest) (Status, error) {
	counts, err := g.Count(ctx, st)
	if err != nil {
		return Status{}, err
	}
	s := Status{
		Current:  RootSecrets{m.Current, counts[m.Current.ID]},
		Finished: !m.Rewrapping && !underOlder(counts, m.Current.ID),
	}
	for _, r := range m.Kept {
		s.Kept = append(s.Kept, RootSecrets{r, counts[r.ID]})
	}
	for id, n := range counts {
		if id != m.Current.ID && !slices.ContainsFunc(m.Kept, func(r Ref) bool { return r.ID == id }) {
			s.Unknown = append(s.Unknown, RootSecrets{Ref{ID: id}, n})
		}
	}
	sort.Slice(s.Unknown, func(i, j int) bool { return s.Unknown[i].Root.ID < s.Unknown[j].Root.ID })
	return s, nil
}

// Retire drops kept root id from the manifest once no stored secret
// depends on it, and returns it. Its file or HSM key is left in place:
// a backup of the store from before the rotation still needs it. Sealed
// roots are opened (and so checked) only when unseal is given.
func (g *Manager) Retire(ctx context.Context, st store.Store, id string, unseal UnsealFunc) (Ref, error) {
	s, err := g.open(ctx, unseal, "", false)
	if err != nil {
		return Ref{}, err
	}
	defer s.close()
	i := slices.IndexFunc(s.m.Kept, func(r Ref) bool { return r.ID == id })
	if i < 0 {
		if id == s.m.Current.ID {
			return Ref{}, fmt.Errorf("%s is the current root", id)
		}
		return Ref{}, fmt.Errorf("%s is not a kept root", id)
	}
	counts, err := g.Count(ctx, st)
	if err != nil {
		return Ref{}, err
	}
	if n := counts[id]; n > 0 {
		return Ref{}, fmt.Errorf("%d secrets are still wrapped under root %s; run kmsd root rotate to rewrap them", n, id)
	}
	r := s.m.Kept[i]
	s.m.Kept = slices.Delete(s.m.Kept, i, i+1)
	if _, err := g.cfg.Manifest.Save(ctx, s.m, s.rev); err != nil {
		return Ref{}, err
	}
	return r, nil
}

// RotateOptions say what StartRotation does.
type RotateOptions struct {
	// To is the kind of the new root for a migration (KindFile or
	// KindPKCS11); "" makes a new root of the current kind.
	To string
	// Resume only finishes the rewrap under the current root; it never
	// makes a new root.
	Resume bool
	// Unseal gives the seal key when the roots are sealed; a new file
	// root is then sealed under the same key, so that one unseal opens
	// the ring.
	Unseal UnsealFunc
	// Prepare, if set, is called with the roots in force, once they are
	// open and before anything changes: kmsd root loads the audit signing
	// key (which they wrap) with it, to record the rotation; an error
	// stops the rotation with nothing changed.
	Prepare func(ctx context.Context, ks keystore.Keystore) error
}

// Rotation is a root rotation under way: a new current root (or the
// current one, when a rewrap is resumed) and every root before it open,
// to rewrap every stored secret under the current root.
type Rotation struct {
	g    *Manager
	st   store.Store
	s    *session
	ring *keystore.Ring

	// Idle is set when there was nothing to do: Resume was asked and
	// every stored secret is wrapped under the current root.
	Idle bool
	// Resumed is set when the rewrap under the current root was not
	// finished (or a running kmsd wrapped secrets under an older root
	// since), so this rotation goes on with it instead of making a root.
	Resumed bool
	// Current is the root secrets are rewrapped under; Previous, when a
	// new root was made, the root it replaced (kept until retired).
	Current, Previous Ref
}

// StartRotation opens the roots and, unless a rewrap is pending or
// opts.Resume is set, makes a new root and writes the manifest that
// names it current (before anything is wrapped under it, so that no
// start of kmsd can miss it). Rewrap then does the work. A pending rewrap
// must be finished before a migration to the other kind.
func (g *Manager) StartRotation(ctx context.Context, st store.Store, opts RotateOptions) (*Rotation, error) {
	if opts.To != "" && opts.To != KindFile && opts.To != KindPKCS11 {
		return nil, fmt.Errorf("unknown kind of root %q (want %s or %s)", opts.To, KindFile, KindPKCS11)
	}
	s, err := g.open(ctx, opts.Unseal, opts.To, true)
	if err != nil {
		return nil, err
	}
	rot := &Rotation{g: g, st: st, s: s}
	if opts.Prepare != nil {
		ring, err := keystore.NewRing(s.roots[0], s.roots[1:]...)
		if err == nil {
			err = opts.Prepare(ctx, ring)
		}
		if err != nil {
			s.close()
			return nil, err
		}
	}
	if err := rot.start(ctx, opts); err != nil {
		s.close()
		return nil, err
	}
	return rot, nil
}

func (rot *Rotation) start(ctx context.Context, opts RotateOptions) error {
	g, s := rot.g, rot.s
	kind := s.m.Current.Kind
	if opts.To != "" {
		kind = opts.To
	}
	// Work is pending when the last rewrap did not finish, or when a
	// running kmsd wrapped secrets under an older root since.
	counts, err := g.Count(ctx, rot.st)
	if err != nil {
		return err
	}
	pending := s.m.Rewrapping || underOlder(counts, s.m.Current.ID)
	switch {
	case opts.Resume && !pending:
		rot.Idle = true
	case pending && kind == s.m.Current.Kind:
		rot.Resumed = true
	case pending:
		return fmt.Errorf("the rewrap under root %s is not finished; run kmsd root rotate --resume to finish it first", s.m.Current)
	case opts.To != "" && kind == s.m.Current.Kind:
		return fmt.Errorf("the current root %s is already a %s root; use kmsd root rotate for a new one", s.m.Current, kind)
	default:
		next := Ref{Kind: kind}
		if kind == KindFile {
			next.File = newRootName("root") + ".key"
			if s.seal != nil {
				next.File += keystore.SealedSuffix
			}
		} else {
			next.Label = newRootName(g.cfg.Keystore.PKCS11.KeyLabel)
		}
		root, closeRoot, err := g.openRoot(ctx, s.seal, next, true)
		if err != nil {
			return fmt.Errorf("creating the new root: %w", err)
		}
		prevClose := s.close
		s.close = func() { closeRoot(); prevClose() }
		next.ID = root.ID()
		rot.Previous = s.m.Current
		s.m.Kept = append([]Ref{s.m.Current}, s.m.Kept...)
		s.m.Current = next
		s.m.Rewrapping = true
		if s.rev, err = g.cfg.Manifest.Save(ctx, s.m, s.rev); err != nil {
			return fmt.Errorf("writing the roots manifest: %w", err)
		}
		s.roots = append([]keystore.Root{root}, s.roots...)
	}
	rot.Current = s.m.Current
	rot.ring, err = keystore.NewRing(s.roots[0], s.roots[1:]...)
	return err
}

// Rewrap rewraps every stored secret (and the audit signing key) that is
// not wrapped under the current root, listing batch of them per store
// query (0: 100) and stopping after max rewraps when max > 0. A secret
// that changed meanwhile is left for the next run. It returns how many it
// rewrapped, and whether every secret is now under the current root, in
// which case the manifest records the rewrap as finished.
func (rot *Rotation) Rewrap(ctx context.Context, batch, max int) (n int, finished bool, err error) {
	n, err = rot.g.rewrap(ctx, rot.st, rot.ring, batch, max)
	if err != nil {
		return n, false, err
	}
	counts, err := rot.g.Count(ctx, rot.st)
	if err != nil {
		return n, false, err
	}
	if underOlder(counts, rot.ring.ID()) {
		return n, false, nil
	}
	if rot.s.m.Rewrapping {
		rot.s.m.Rewrapping = false
		if rot.s.rev, err = rot.g.cfg.Manifest.Save(ctx, rot.s.m, rot.s.rev); err != nil {
			return n, false, fmt.Errorf("writing the roots manifest: %w", err)
		}
	}
	return n, true, nil
}

// Status is the status of the roots as the rotation left them.
func (rot *Rotation) Status(ctx context.Context) (Status, error) {
	return rot.g.status(ctx, rot.st, rot.s.m)
}

// Close closes the roots and wipes the seal key.
func (rot *Rotation) Close() { rot.s.close() }

// rewrap rewraps under ring's current root; see Rotation.Rewrap.
func (g *Manager) rewrap(ctx context.Context, st store.Store, ring *keystore.Ring, batch, max int) (int, error) {
	if batch <= 0 {
		batch = 100
	}
	current := ring.ID()
	done := 0
	for _, kind := range store.WrappedKinds {
		var after store.WrappedRef
		for {
			page, err := st.ListWrapped(ctx, kind, after, batch)
			if err != nil {
				return done, err
			}
			for _, w := range page {
				if id, _ := keystore.WrappedRootID(w.Blob); id == current {
					continue
				}
				if max > 0 && done >= max {
					return done, nil
				}
				var aad []byte
				if kind == store.WrappedAccessKey {
					aad = iam.SecretAAD(w.ID)
				} else if aad, err = kms.WrappedAAD(w); err != nil {
					return done, err
				}
				plain, err := ring.Unwrap(ctx, w.Blob, aad)
				if err != nil {
					return done, fmt.Errorf("unwrap %s %s/%s: %w", kind, w.KeyID, w.ID, err)
				}
				nw, err := ring.Wrap(ctx, plain, aad)
				clear(plain)
				if err != nil {
					return done, fmt.Errorf("wrap %s %s/%s: %w", kind, w.KeyID, w.ID, err)
				}
				err = st.UpdateWrapped(ctx, w.WrappedRef, w.Blob, nw)
				if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
					continue // deleted or changed meanwhile: the next run sees it
				}
				if err != nil {
					return done, err
				}
				done++
			}
			if len(page) < batch {
				break
			}
			after = page[len(page)-1].WrappedRef
		}
	}
	wrapped, err := audit.ReadWrappedSigningKey(g.signingKey())
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return done, err
	}
	if id, _ := keystore.WrappedRootID(wrapped); id != current && (max <= 0 || done < max) {
		if err := audit.RewrapSigningKey(ctx, g.signingKey(), ring); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}
