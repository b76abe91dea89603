package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/sqlite"
)

const rootUsage = `usage: kmsd root <command> [flags]

commands:
  rotate [--resume] [--batch N] [--max N] [--config FILE] [--data-dir DIR]
        create a new root key of the current kind (a new root key file, or a
        new key in the PKCS#11 token) and rewrap every stored secret under
        it. An interrupted rewrap, or secrets a running kmsd wrapped under
        the old root before it noticed the new one, make the next run resume
        instead (--resume: only resume, never make a new root)
  migrate --to pkcs11|file [--resume] [--batch N] [--max N] [--config FILE] [--data-dir DIR]
        the same, with a new root of the other kind (the PKCS#11 token is the
        one keystore.pkcs11 configures)
  status [--config FILE] [--data-dir DIR]
        list the roots and how many wrapped secrets each one holds
  retire ID [--config FILE] [--data-dir DIR]
        drop a kept root that nothing depends on any more from the roots
        manifest (its file or HSM key is left in place)

On a sealed data folder (kmsd init), rotate and migrate need the unseal
material: --passphrase-file FILE, or --share-file FILE once per share (as
many as the threshold), or, on a terminal, they ask for it. A new file root
is sealed under the same seal key. status and retire need none.
`

// rootMain runs `kmsd root ...`, next to a running kmsd if need be: the
// SQLite store allows a second process and every rewrap is a compare and
// set.
func rootMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rootUsage)
		return errors.New("kmsd root: no command given")
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("root "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dirFlags := addDataDirFlags(fs)
	var batch, maxN *int
	var resume *bool
	var to *string
	var material unsealMaterial
	fs.StringVar(&material.passphraseFile, "passphrase-file", "", "on a sealed data folder: file holding the passphrase (mode 0600)")
	fs.Var(&material.shareFiles, "share-file", "on a sealed data folder: file holding one Shamir share (mode 0600); repeat it")
	switch cmd {
	case "rotate", "migrate":
		batch = fs.Int("batch", 100, "secrets listed per store query")
		resume = fs.Bool("resume", false, "only finish rewrapping under the current root; never create a new one")
		maxN = fs.Int("max", 0, "rewrap at most this many secrets in this run (0: all); run again to go on")
		if cmd == "migrate" {
			to = fs.String("to", "", "kind of the new root: pkcs11 or file")
		}
	case "status", "retire":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, rootUsage)
		return nil
	default:
		fmt.Fprint(stderr, rootUsage)
		return fmt.Errorf("kmsd root: unknown command %q", cmd)
	}
	// Allow the retire argument before or after the flags.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	wantArgs := 0
	if cmd == "retire" {
		wantArgs = 1
	}
	if len(positional) != wantArgs {
		return fmt.Errorf("kmsd root %s: unexpected arguments %v", cmd, positional)
	}
	cfg, err := dirFlags.load(getenv)
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	if cmd == "migrate" && *to != "file" && *to != "pkcs11" {
		return fmt.Errorf("kmsd root migrate: --to must be pkcs11 or file, not %q", *to)
	}
	if cmd != "status" {
		unlock, err := lockRoots(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}

	// Without a manifest, the current root is the configured one; a
	// migration starts from the root of the other kind.
	m, ok, err := readRoots(cfg.DataDir)
	if err != nil {
		return err
	}
	if !ok {
		if m.Current, err = implicitRoot(cfg); err != nil {
			return err
		}
		if cmd == "migrate" && *to == "pkcs11" {
			f, err := implicitFileRoot(cfg.DataDir)
			if err != nil {
				return err
			}
			m.Current = rootRef{Kind: "file", File: f}
		}
		if m.Current.Kind == "file" {
			// Never create the old root: a missing one is a mistake.
			if _, err := os.Stat(filepath.Join(cfg.DataDir, m.Current.File)); err != nil {
				return fmt.Errorf("kmsd root %s: the current root key file: %w", cmd, err)
			}
		}
	}
	// A sealed folder: status and retire only need the root ids (in the
	// manifest, or the sealed file's header), rotate and migrate the
	// roots themselves.
	info, err := sealOf(cfg)
	if err != nil {
		return err
	}
	var seal *keystore.SealKey
	if info != nil && (cmd == "rotate" || cmd == "migrate" || !material.empty()) {
		if seal, err = material.localKey(*info, stderr); err != nil {
			return fmt.Errorf("kmsd root %s: %w", cmd, err)
		}
		defer seal.Wipe()
	}
	var rings []keystore.Root
	closeRoots := func() {}
	if info != nil && seal == nil {
		if m.Current.ID == "" {
			m.Current.ID = info.RootID // implicit: the sealed root.key.sealed
		}
	} else {
		if rings, closeRoots, err = openManifest(ctx, cfg, getenv, seal, &m); err != nil {
			return err
		}
	}
	defer func() { closeRoots() }()
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, databaseFile))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	signingKey := filepath.Join(cfg.DataDir, audit.SigningKeyFile)

	switch cmd {
	case "status":
		return printRootStatus(ctx, stdout, st, signingKey, m)
	case "retire":
		return retireRoot(ctx, stdout, st, signingKey, cfg.DataDir, m, positional[0])
	}

	kind := m.Current.Kind
	if cmd == "migrate" {
		kind = *to
	}
	// Work is pending when the last rewrap did not finish, or when a
	// running kmsd wrapped secrets under an older root since.
	counts, err := countRoots(ctx, st, signingKey)
	if err != nil {
		return err
	}
	pending := m.Rewrapping || underOlder(counts, m.Current.ID)
	switch {
	case *resume && !pending:
		fmt.Fprintln(stdout, "Nothing to resume: every stored secret is wrapped under the current root.")
		return printRootStatus(ctx, stdout, st, signingKey, m)
	case pending && kind == m.Current.Kind:
		fmt.Fprintf(stdout, "Resuming the rewrap under root %s.\n", m.Current)
	case pending:
		return fmt.Errorf("kmsd root %s: the rewrap under root %s is not finished; run kmsd root rotate --resume to finish it first", cmd, m.Current)
	case cmd == "migrate" && kind == m.Current.Kind:
		return fmt.Errorf("kmsd root migrate: the current root %s is already a %s root; use kmsd root rotate for a new one", m.Current, kind)
	default:
		next := rootRef{Kind: kind}
		if kind == "file" {
			next.File = newRootName("root") + ".key"
			if seal != nil {
				// A sealed folder stays sealed: the new root is sealed
				// under the same seal key, so one unseal opens the ring.
				next.File += keystore.SealedSuffix
			}
		} else {
			next.Label = newRootName(cfg.Keystore.PKCS11.KeyLabel)
		}
		root, c, err := openRoot(ctx, cfg, getenv, seal, next)
		if err != nil {
			return fmt.Errorf("kmsd root %s: creating the new root: %w", cmd, err)
		}
		prevClose := closeRoots
		closeRoots = func() { c(); prevClose() }
		next.ID = root.ID()
		m.Kept = append([]rootRef{m.Current}, m.Kept...)
		m.Current = next
		m.Rewrapping = true
		// The manifest names the new root before anything is wrapped
		// under it, so that no start of kmsd can miss it.
		if err := writeRoots(cfg.DataDir, m); err != nil {
			return fmt.Errorf("kmsd root %s: writing the roots manifest: %w", cmd, err)
		}
		rings = append([]keystore.Root{root}, rings...)
		fmt.Fprintf(stdout, "New root %s; the previous root %s is kept until nothing depends on it.\n", m.Current, m.Kept[0])
	}
	ring, err := keystore.NewRing(rings[0], rings[1:]...)
	if err != nil {
		return err
	}
	n, err := rewrapAll(ctx, st, ring, signingKey, *batch, *maxN)
	fmt.Fprintf(stdout, "Rewrapped %d secrets under root %s.\n", n, ring.ID())
	if err != nil {
		return fmt.Errorf("kmsd root %s: %w (run it again to resume)", cmd, err)
	}
	counts, err = countRoots(ctx, st, signingKey)
	if err != nil {
		return err
	}
	if !underOlder(counts, ring.ID()) {
		m.Rewrapping = false
		if err := writeRoots(cfg.DataDir, m); err != nil {
			return fmt.Errorf("kmsd root %s: writing the roots manifest: %w", cmd, err)
		}
		fmt.Fprintln(stdout, "Every stored secret is wrapped under the current root.")
	} else {
		fmt.Fprintln(stdout, "Some secrets are still wrapped under older roots: run kmsd root rotate --resume to go on.")
	}
	return printRootStatus(ctx, stdout, st, signingKey, m)
}

// openManifest opens every root of m (current first) and fills in the
// current root's id when the manifest was implicit.
func openManifest(ctx context.Context, cfg config.Config, getenv func(string) string, seal *keystore.SealKey, m *rootsManifest) ([]keystore.Root, func(), error) {
	var roots []keystore.Root
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i, r := range append([]rootRef{m.Current}, m.Kept...) {
		root, c, err := openRoot(ctx, cfg, getenv, seal, r)
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

// rewrapAll rewraps every stored secret (and the audit signing key) that
// is not wrapped under ring's current root, in pages of batch, stopping
// after max rewraps when max > 0. A blob that changed meanwhile is left
// for the next run. It returns how many it rewrapped.
func rewrapAll(ctx context.Context, st store.Store, ring *keystore.Ring, signingKey string, batch, max int) (int, error) {
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
				if errors.Is(err, store.ErrNotFound) {
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
	wrapped, err := audit.ReadWrappedSigningKey(signingKey)
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return done, err
	}
	if id, _ := keystore.WrappedRootID(wrapped); id != current && (max <= 0 || done < max) {
		if err := audit.RewrapSigningKey(ctx, signingKey, ring); err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

// countRoots counts the stored secrets (and the audit signing key) by the
// id of the root that wrapped them.
func countRoots(ctx context.Context, st store.Store, signingKey string) (map[string]int, error) {
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
	wrapped, err := audit.ReadWrappedSigningKey(signingKey)
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

func printRootStatus(ctx context.Context, w io.Writer, st store.Store, signingKey string, m rootsManifest) error {
	counts, err := countRoots(ctx, st, signingKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "current root %s: %d secrets\n", m.Current, counts[m.Current.ID])
	for _, r := range m.Kept {
		if n := counts[r.ID]; n > 0 {
			fmt.Fprintf(w, "kept root %s: %d secrets still depend on it\n", r, n)
		} else {
			fmt.Fprintf(w, "kept root %s: nothing depends on it; retire it with: kmsd root retire %s\n", r, r.ID)
		}
	}
	var unknown []string
	for id, n := range counts {
		if id != m.Current.ID && !slices.ContainsFunc(m.Kept, func(r rootRef) bool { return r.ID == id }) {
			unknown = append(unknown, fmt.Sprintf("%s (%d secrets)", id, n))
		}
	}
	sort.Strings(unknown)
	for _, u := range unknown {
		fmt.Fprintf(w, "UNKNOWN root %s: not in the roots manifest, these secrets cannot be unwrapped\n", u)
	}
	if m.Rewrapping || underOlder(counts, m.Current.ID) {
		fmt.Fprintln(w, "rewrap: not finished (kmsd root rotate --resume finishes it)")
	} else {
		fmt.Fprintln(w, "rewrap: finished")
	}
	return nil
}

func retireRoot(ctx context.Context, w io.Writer, st store.Store, signingKey, dataDir string, m rootsManifest, id string) error {
	i := slices.IndexFunc(m.Kept, func(r rootRef) bool { return r.ID == id })
	if i < 0 {
		if id == m.Current.ID {
			return fmt.Errorf("kmsd root retire: %s is the current root", id)
		}
		return fmt.Errorf("kmsd root retire: %s is not a kept root", id)
	}
	counts, err := countRoots(ctx, st, signingKey)
	if err != nil {
		return err
	}
	if n := counts[id]; n > 0 {
		return fmt.Errorf("kmsd root retire: %d secrets are still wrapped under root %s; run kmsd root rotate to rewrap them", n, id)
	}
	r := m.Kept[i]
	m.Kept = slices.Delete(m.Kept, i, i+1)
	if err := writeRoots(dataDir, m); err != nil {
		return err
	}
	where := "file " + filepath.Join(dataDir, r.File)
	if r.Kind == "pkcs11" {
		where = fmt.Sprintf("PKCS#11 key %q", r.Label)
	}
	fmt.Fprintf(w, "Root %s retired: kmsd no longer loads it. Its %s is left in place: keep it with your backups for as long as a backup of the store from before the rotation may be restored, then destroy it.\n", id, where)
	return nil
}
