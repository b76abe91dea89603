package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

const storeUsage = `usage: kmsd store <command> [flags]

commands:
  check [--config FILE] [--data-dir DIR]
        check the integrity of the whole store (for SQLite: PRAGMA
        integrity_check, every page and every index); kmsd serve runs the
        quick form (quick_check) at every start. Safe next to a running kmsd.
`

// storeMain runs "kmsd store …".
func storeMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c, err := newCommand("store", storeUsage, []string{"check"}, args, stdout, stderr)
	if c == nil || err != nil {
		return err
	}
	if err := c.flags.Parse(c.args); err != nil {
		return err
	}
	if c.flags.NArg() > 0 {
		return fmt.Errorf("kmsd store check: unexpected arguments %v", c.flags.Args())
	}
	cfg, err := c.dirs.load(getenv)
	if err != nil {
		return err
	}
	bcfg := storeConfig(cfg)
	if bcfg.InDataFolder() {
		// Opening a missing database would create it.
		path := filepath.Join(cfg.DataDir, backend.DatabaseFile)
		if fi, err := os.Stat(path); err != nil {
			return fmt.Errorf("kmsd store check: %w", err)
		} else if fi.Size() == 0 {
			return fmt.Errorf("kmsd store check: %s is empty", path)
		}
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: the store does not open: %v\n", err)
		return errors.New("the store failed its check")
	}
	defer st.Close()
	checker, ok := st.(store.Checker)
	if !ok {
		return errors.New("kmsd store check: this store offers no integrity check")
	}
	if err := checker.Check(ctx, true); err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\nRestore the store from your backup (docs/operations.md#backups).\n", err)
		return errors.New("the store failed its check")
	}
	fmt.Fprintln(stdout, "OK: the store is intact")
	return nil
}
