package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// dataFolder is what kmsd serve, iam and root open in a data folder: its
// roots of trust, the keystore they make and the store.
type dataFolder struct {
	roots *rootmgr.Manager
	// sealed is the seal of the roots when kmsd init sealed them, else
	// nil.
	sealed *keystore.SealInfo
	// ks is the live ring of the roots; nil unless asked for, and nil
	// while they are sealed (kmsd serve opens it once kmsd unseal gives
	// the seal key, and sets it here to be closed with the rest).
	ks *rootmgr.LiveRing
	st store.Store
}

// openDataFolder creates the data folder of cfg (mode 0700) or checks an
// existing one, and opens the store, the roots of trust (whose manifest
// the store holds) and, when withKeystore and the roots are not sealed,
// the keystore, in that order.
func openDataFolder(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger, withKeystore bool) (*dataFolder, error) {
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	f := &dataFolder{}
	var err error
	if f.st, err = backend.Open(ctx, storeConfig(cfg)); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// The roots manifest lives in the store, which every node shares; a
	// manifest file left by an earlier kmsd moves there first.
	if err := rootmgr.ImportManifestFile(ctx, f.st, cfg.DataDir); err != nil {
		f.close()
		return nil, err
	}
	f.roots = rootmgr.New(rootmgr.Config{DataDir: cfg.DataDir, Keystore: cfg.Keystore, Getenv: getenv, Manifest: rootmgr.NewStoreManifest(f.st)})
	if f.sealed, err = f.roots.SealInfo(ctx); err != nil {
		f.close()
		return nil, err
	}
	if withKeystore && f.sealed == nil {
		if f.ks, err = f.roots.OpenLiveRing(ctx, nil, log); err != nil {
			f.close()
			return nil, err
		}
		if err := f.ks.CheckStore(ctx, f.st); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// close closes the store and the keystore.
func (f *dataFolder) close() {
	if f.st != nil {
		f.st.Close()
	}
	if f.ks != nil {
		f.ks.Close()
	}
}

// prepareDataDir creates the data folder with mode 0700, and refuses an
// existing one that others can read.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data folder %s has mode %o: it holds the root key, make it private (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// storeConfig is the store cfg names: the SQLite database in the data
// folder, or a PostgreSQL database shared by every node.
func storeConfig(cfg config.Config) backend.Config {
	return backend.Config{Type: cfg.Store.Type, DataDir: cfg.DataDir, DSN: cfg.Store.DSN.Reveal()}
}
