package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/datafolder"
	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/snapshot"
)

const backupUsage = `usage: kmsd backup -o FILE [--config FILE] [--data-dir DIR] [--store sqlite|postgres] [--store-dsn DSN]

Writes a consistent snapshot of the store (every key, its materials, import
parameters, grants and aliases, access keys, custom key stores and shared
settings) to FILE (mode 0600, replaced atomically), or to standard output
with -o -. kmsd may keep serving: the snapshot is one state of the store,
and writes wait while it is read.

The snapshot holds no plaintext secret: key material and secrets stay
wrapped by the root of trust, which is NOT in it. Back up the root key
separately: without it the snapshot is useless. kmsd restore loads a
snapshot into an empty store of either kind (docs/operations.md).
`

const restoreUsage = `usage: kmsd restore [--config FILE] [--data-dir DIR] [--store sqlite|postgres] [--store-dsn DSN] FILE

Loads a snapshot written by kmsd backup (FILE, or - for standard input)
into an empty store: the SQLite store of the data folder, or a PostgreSQL
database (which is how a deployment moves from SQLite to PostgreSQL). The
whole snapshot is checked (format, counts, SHA-256) before anything is
written, and it is written in one transaction: on any error the store
stays empty. A store that holds anything is refused.

kmsd serve on the restored store needs the root keys that wrapped the
snapshot's secrets: the command lists them.
`

// backupMain runs kmsd backup.
func backupMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	flags := flag.NewFlagSet("backup", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, backupUsage); flags.PrintDefaults() }
	dirs := addDataDirFlags(flags)
	dirs.addStoreFlags(flags)
	out := flags.String("o", "", "file to write the snapshot to (- for standard output)")
	if err := flags.Parse(args); err != nil {
		return helpIsNoError(err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("kmsd backup: unexpected arguments %v", flags.Args())
	}
	if *out == "" {
		flags.Usage()
		return errors.New("kmsd backup: give the file to write with -o FILE (or -o - for standard output)")
	}
	cfg, err := dirs.load(getenv)
	if err != nil {
		return err
	}
	// Opening a SQLite store creates it: a backup of a data folder that
	// has none would be an empty snapshot of a new, empty database.
	if cfg.Store.Type == backend.SQLite {
		db := filepath.Join(cfg.DataDir, backend.DatabaseFile)
		if _, err := os.Stat(db); err != nil {
			return fmt.Errorf("kmsd backup: no store to back up in %s: %w", cfg.DataDir, err)
		}
	}
	st, err := backend.Open(ctx, storeConfig(cfg))
	if err != nil {
		return fmt.Errorf("kmsd backup: open store: %w", err)
	}
	defer st.Close()
	// As every command that opens a data folder: a roots manifest file
	// left by an earlier kmsd moves into the store first, so that the
	// snapshot holds it.
	if err := rootmgr.ImportManifestFile(ctx, st, cfg.DataDir); err != nil {
		return fmt.Errorf("kmsd backup: %w", err)
	}
	snap, err := snapshot.Take(ctx, st)
	if err != nil {
		return fmt.Errorf("kmsd backup: %w", err)
	}
	// Encoded only once Take's transaction has ended: writers wait for
	// the read alone, not for a slow disk or pipe.
	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, snap); err != nil {
		return fmt.Errorf("kmsd backup: %w", err)
	}
	report := stdout
	if *out == "-" {
		// The snapshot owns standard output.
		report = stderr
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("kmsd backup: write the snapshot: %w", err)
		}
	} else if err := durable.Replace(*out, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("kmsd backup: write %s: %w", *out, err)
	}
	where := *out
	if where == "-" {
		where = "standard output"
	}
	fmt.Fprintf(report, "kmsd backup: wrote a snapshot to %s\n", where)
	printSummary(report, cfg, snap)
	fmt.Fprintf(report, "  sha256:    %x\n\n", sha256.Sum256(buf.Bytes()))
	fmt.Fprint(report, "The snapshot holds no plaintext secret: its key material and secrets are wrapped by the\n"+
		"root keys above, which are NOT in the snapshot. Back them up separately: without them this\n"+
		"snapshot is useless, and anyone who holds both holds every key.\n")
	return nil
}

// restoreMain runs kmsd restore.
func restoreMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	flags := flag.NewFlagSet("restore", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, restoreUsage); flags.PrintDefaults() }
	dirs := addDataDirFlags(flags)
	dirs.addStoreFlags(flags)
	// Allow the file before or after the flags.
	var positional []string
	for rest := args; ; {
		if err := flags.Parse(rest); err != nil {
			return helpIsNoError(err)
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		rest = flags.Args()[1:]
	}
	if len(positional) != 1 {
		flags.Usage()
		return fmt.Errorf("kmsd restore: give one snapshot file (- for standard input), not %d", len(positional))
	}
	file := positional[0]
	cfg, err := dirs.load(getenv)
	if err != nil {
		return err
	}

	// The whole snapshot is read and checked before anything is created.
	in := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("kmsd restore: %w", err)
		}
		defer f.Close()
		in = f
	}
	snap, err := snapshot.Decode(in)
	if err != nil {
		return fmt.Errorf("kmsd restore: %s: %w", file, err)
	}

	if cfg.Store.Type == backend.SQLite {
		if err := datafolder.Prepare(cfg.DataDir); err != nil {
			return err
		}
	}
	st, err := backend.Open(ctx, storeConfig(cfg))
	if err != nil {
		return fmt.Errorf("kmsd restore: open store: %w", err)
	}
	defer st.Close()
	if err := snapshot.Restore(ctx, st, snap); err != nil {
		return fmt.Errorf("kmsd restore into the %s store: %w", storeName(cfg), err)
	}
	fmt.Fprintf(stdout, "kmsd restore: restored the snapshot taken %s\n", snap.Created.Format(time.RFC3339))
	printSummary(stdout, cfg, snap)
	fmt.Fprintf(stdout, "\nkmsd serve on this store needs the root keys above, which wrapped the snapshot's secrets:\n"+
		"put their files (root.key, or root.key.sealed, and the root-*.key files kmsd root status\n"+
		"lists) in the data folder %s, or configure the PKCS#11 token that holds them,\n"+
		"before kmsd serve starts. A kmsd started without them creates a new root key and cannot\n"+
		"use any restored key.\n", cfg.DataDir)
	return nil
}

// helpIsNoError returns nil for -h, whose usage the flag set printed, and
// err otherwise.
func helpIsNoError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// storeName names the store of cfg for the user: the SQLite database's
// folder, or "postgres" alone, since the DSN may hold a password.
func storeName(cfg config.Config) string {
	if cfg.Store.Type == backend.Postgres {
		return "postgres (the DSN is not shown)"
	}
	return "sqlite (" + filepath.Join(cfg.DataDir, backend.DatabaseFile) + ")"
}

// printSummary prints the store of cfg, what s holds and the ids of the
// root keys its secrets are wrapped under.
func printSummary(w io.Writer, cfg config.Config, s *snapshot.Snapshot) {
	c := s.Counts()
	fmt.Fprintf(w, "  store:     %s\n", storeName(cfg))
	fmt.Fprintf(w, "  records:   %d keys (%d key materials, %d import parameters, %d grants, %d aliases, %d last uses),\n"+
		"             %d access keys, %d custom key stores, %d settings\n",
		c.Keys, c.Materials, c.ImportParams, c.Grants, c.Aliases, c.KeyUsage, c.AccessKeys, c.CustomKeyStores, c.Settings)
	ids := rootIDs(s)
	roots := strings.Join(ids, ", ")
	if len(ids) == 0 {
		roots = "none (no secret is wrapped yet)"
	}
	fmt.Fprintf(w, "  root keys: %s\n", roots)
}

// rootIDs lists the ids of the root keys that wrapped the secrets of s,
// read from each wrapped blob's header.
func rootIDs(s *snapshot.Snapshot) []string {
	var ids []string
	add := func(blob []byte) {
		if id, ok := keystore.WrappedRootID(blob); ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, c := range s.CustomKeyStores {
		add(c.WrappedPassword)
	}
	for _, a := range s.AccessKeys {
		add(a.WrappedSecret)
	}
	for _, k := range s.Keys {
		for _, m := range k.Materials {
			add(m.Wrapped)
		}
		for _, p := range k.ImportParams {
			add(p.WrappedPrivateKey)
		}
	}
	slices.Sort(ids)
	return ids
}
