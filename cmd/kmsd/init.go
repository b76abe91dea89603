package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/datafolder"
	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/shamir"
	"github.com/kmsd/kmsd/internal/store/backend"
)

const initUsage = `usage: kmsd init [--config FILE] [--data-dir DIR] (--passphrase [--passphrase-file FILE] | --shares N --threshold K) [--seal-existing]

Creates a sealed root of trust in a fresh data folder: a new root key,
stored only encrypted (root.key.sealed) under a seal key derived from a
passphrase (Argon2id) or split into N Shamir shares, any K of which unseal
it. kmsd serve then starts sealed until kmsd unseal gives it the passphrase
or K shares.

With --passphrase, the passphrase is asked twice on the terminal, or read
from --passphrase-file (mode 0600). With --shares, the shares are printed
once, here: hand each to its holder and keep no copy together.
--seal-existing seals the plaintext root.key of a data folder instead
(stop kmsd first), then removes root.key.
`

// minPassphrase is the shortest passphrase kmsd init accepts, in
// characters. A stolen sealed root can be attacked offline; Argon2id slows
// each guess, it cannot make a short passphrase strong.
const minPassphrase = 12

// initMain runs kmsd init.
func initMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	flags := flag.NewFlagSet("init", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, initUsage); flags.PrintDefaults() }
	dirFlags := addDataDirFlags(flags)
	usePassphrase := flags.Bool("passphrase", false, "seal under a passphrase")
	shares := flags.Int("shares", 0, "seal under a key split into this many Shamir shares (2..255)")
	threshold := flags.Int("threshold", 0, "how many shares unseal (2..shares)")
	sealExisting := flags.Bool("seal-existing", false, "seal the data folder's existing plaintext root.key instead of creating a root key")
	var material unsealMaterial
	flags.StringVar(&material.passphraseFile, "passphrase-file", "", "file holding the passphrase (mode 0600; one trailing newline is ignored)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("kmsd init: unexpected arguments %v", flags.Args())
	}
	if material.passphraseFile != "" {
		*usePassphrase = true
	}
	switch {
	case *usePassphrase && (*shares != 0 || *threshold != 0):
		return errors.New("kmsd init: give either --passphrase or --shares and --threshold, not both")
	case !*usePassphrase && *shares == 0 && *threshold == 0:
		fmt.Fprint(stderr, initUsage)
		return errors.New("kmsd init: give --passphrase or --shares N --threshold K")
	case !*usePassphrase && (*threshold < 2 || *shares < *threshold || *shares > shamir.MaxShares):
		return fmt.Errorf("kmsd init: --shares %d --threshold %d: want 2 <= threshold <= shares <= %d (for a single secret use --passphrase)", *shares, *threshold, shamir.MaxShares)
	}
	cfg, err := dirFlags.load(getenv)
	if err != nil {
		return err
	}
	if cfg.Keystore.Type != "file" {
		return fmt.Errorf("kmsd init: keystore.type is %s: a sealed root is a file root of trust, for machines without an HSM", cfg.Keystore.Type)
	}
	// kmsd init prepares an empty folder for its first start, or seals the
	// root of a whole one: never a partial folder.
	f, err := checkDataFolder(ctx, cfg, false)
	if err != nil {
		return fmt.Errorf("kmsd init: %w", err)
	}
	defer f.close()
	if f.kind == datafolder.JoinStart {
		return fmt.Errorf("kmsd init: the store of %s is in use by other nodes: their roots are in its manifest", cfg.DataDir)
	}
	if err := datafolder.Prepare(cfg.DataDir); err != nil {
		return err
	}
	unlock, err := rootmgr.Lock(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if f.st == nil {
		if f.st, err = backend.Open(ctx, storeConfig(cfg)); err != nil {
			return fmt.Errorf("kmsd init: open store: %w", err)
		}
	}
	st := f.st
	if err := rootmgr.ImportManifestFile(ctx, st, cfg.DataDir); err != nil {
		return fmt.Errorf("kmsd init: %w", err)
	}
	manifest := rootmgr.NewStoreManifest(st)

	plain := filepath.Join(cfg.DataDir, rootmgr.RootKeyFile)
	sealed := filepath.Join(cfg.DataDir, rootmgr.SealedRootFile)
	switch _, _, err := manifest.Load(ctx); {
	case err == nil:
		return fmt.Errorf("kmsd init: %s has a roots manifest: its root was rotated, and sealing a ring of roots is not supported; run kmsd init on a new data folder", cfg.DataDir)
	case !errors.Is(err, rootmgr.ErrNoManifest):
		return fmt.Errorf("kmsd init: %w", err)
	}
	if _, err := os.Lstat(sealed); err == nil {
		return fmt.Errorf("kmsd init: %s is already sealed (%s exists)", cfg.DataDir, sealed)
	}
	_, err = os.Lstat(plain)
	switch {
	case err == nil && !*sealExisting:
		return fmt.Errorf("kmsd init: %s already has a root key (%s); kmsd init --seal-existing seals it", cfg.DataDir, plain)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("kmsd init: %w", err)
	case err != nil && *sealExisting:
		return fmt.Errorf("kmsd init --seal-existing: %s has no root key to seal", cfg.DataDir)
	}

	var key *keystore.SealKey
	var split []shamir.Share
	defer func() {
		for i := range split {
			split[i].Wipe()
		}
	}()
	if *usePassphrase {
		p, err := material.passphrase(stderr, true)
		if errors.Is(err, errNoTerminal) {
			return errors.New("kmsd init: standard input is not a terminal: give --passphrase-file FILE")
		}
		if err != nil {
			return fmt.Errorf("kmsd init: %w", err)
		}
		if n := utf8.RuneCount(p); n < minPassphrase {
			clear(p)
			return fmt.Errorf("kmsd init: the passphrase has %d characters; use at least %d", n, minPassphrase)
		}
		key, err = keystore.NewPassphraseSealKey(p, keystore.DefaultArgon2Params())
		clear(p)
		if err != nil {
			return fmt.Errorf("kmsd init: %w", err)
		}
	} else {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("kmsd init: %w", err)
		}
		split, err = shamir.Split(rand.Reader, secret, *shares, *threshold)
		if err == nil {
			key, err = keystore.NewShamirSealKey(secret, *shares, *threshold, split[0].Set)
		}
		clear(secret)
		if err != nil {
			return fmt.Errorf("kmsd init: %w", err)
		}
	}
	defer key.Wipe()

	var root *keystore.FileKeystore
	if *sealExisting {
		root, err = keystore.SealRootKeyFile(plain, sealed, key)
	} else {
		root, err = keystore.CreateSealedFile(sealed, key)
	}
	if err != nil {
		return fmt.Errorf("kmsd init: %w", err)
	}
	fmt.Fprintf(stdout, "Sealed root key %s created in %s (%s).\n", root.ID(), sealed, key.Info().Describe())
	if *sealExisting {
		// The sealed file was read back and holds the same key: the
		// plaintext copy can go.
		if err := os.Remove(plain); err != nil {
			return fmt.Errorf("kmsd init: the root is sealed, but removing %s failed (remove it yourself): %w", plain, err)
		}
		if err := durable.SyncDir(cfg.DataDir); err != nil {
			return fmt.Errorf("kmsd init: %w", err)
		}
		fmt.Fprintf(stdout, "Removed %s. Copies of it in backups, snapshots or the disk's free space are not sealed: destroy them.\n", plain)
	}
	if split != nil {
		fmt.Fprintf(stdout, "\nThe %d shares below are shown only this once. Any %d of them unseal kmsd; fewer reveal nothing.\n", len(split), *threshold)
		fmt.Fprintf(stdout, "Give each to a different person, keep no copy of them together, and never store one in the data folder or its backups.\n\n")
		for _, s := range split {
			fmt.Fprintln(stdout, s.Encode())
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "Start kmsd serve: it starts sealed. Then unseal it on this machine with: kmsd unseal --data-dir %s\n", cfg.DataDir)
	return nil
}
