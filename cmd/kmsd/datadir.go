package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/datafolder"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// dataFolder is a data folder that checkDataFolder found fit to start,
// and then what open opened in it: the roots of trust, the keystore they
// make and the store.
type dataFolder struct {
	cfg            config.Config
	acceptingReset bool
	kind           datafolder.StartKind
	facts          datafolder.StoreFacts // what the store held when checked
	st             store.Store
	roots          *rootmgr.Manager
	// sealed is the seal of the roots when kmsd init sealed them, else
	// nil.
	sealed *keystore.SealInfo
	// node is this node's record in a shared store (see
	// datafolder.CheckNode); nil for a store in the data folder.
	node *datafolder.NodeState
	// ks is the live ring of the roots; nil unless asked for, and nil
	// while they are sealed (kmsd serve opens it once kmsd unseal gives
	// the seal key, and sets it here to be closed with the rest).
	ks *rootmgr.LiveRing
}

// checkDataFolder looks at the data folder of cfg and its store, writing
// nothing, and refuses a folder that is neither empty nor whole (see
// datafolder.Classify), a store that fails its integrity check and an audit
// log that does not reach its anchor. It opens the store when there is one
// (an SQLite database only when it has content: opening creates it).
//
// acceptingReset is for kmsd audit accept-reset, which exists for an
// audit log that is behind its anchor or gone: those are not refused.
func checkDataFolder(ctx context.Context, cfg config.Config, acceptingReset bool) (*dataFolder, error) {
	if err := datafolder.CheckMode(cfg.DataDir); err != nil {
		return nil, err
	}
	bcfg := storeConfig(cfg)
	if cfg.AcceptLostLog && bcfg.InDataFolder() {
		return nil, errors.New("--accept-lost-log is for a node of a shared (PostgreSQL) store; on one machine, kmsd audit accept-reset accepts a lost log")
	}
	facts, err := datafolder.Inspect(cfg.DataDir, !bcfg.InDataFolder())
	if err != nil {
		return nil, err
	}
	f := &dataFolder{cfg: cfg, acceptingReset: acceptingReset}
	if acceptingReset {
		facts.Audit = true // accept-reset makes the folder anew if it is gone
	}
	if facts.Shared || facts.DB == datafolder.DBPresent {
		if f.st, err = backend.Open(ctx, bcfg); err != nil {
			return nil, fmt.Errorf("open store: %w (if the database is damaged, restore %s from your backup)", err, backend.DatabaseFile)
		}
		if err := f.check(ctx, &facts); err != nil {
			f.close()
			return nil, err
		}
	}
	if f.kind, err = datafolder.Classify(facts, f.facts); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// check runs the checks that need the store: its integrity, its facts,
// the roots it names, its Region and the audit log's anchor.
func (f *dataFolder) check(ctx context.Context, facts *datafolder.FolderFacts) error {
	if c, ok := f.st.(store.Checker); ok {
		if err := c.Check(ctx, false); err != nil {
			return fmt.Errorf("the store failed its integrity check, so kmsd will not start: %w. Restore %s from your backup (docs/operations.md#backups); kmsd store check --data-dir %s lists the damage in full", err, backend.DatabaseFile, f.cfg.DataDir)
		}
	}
	var err error
	if f.facts, err = datafolder.ReadStoreFacts(ctx, f.st); err != nil {
		return err
	}
	if facts.Shared && !f.acceptingReset {
		id, err := datafolder.NodeID(f.cfg.NodeID, f.cfg.DataDir)
		if err != nil {
			return err
		}
		if f.node, err = datafolder.CheckNode(ctx, f.st, id, *facts, f.facts, f.cfg.AcceptLostLog); err != nil {
			return err
		}
	}
	if !f.facts.InUse() {
		return nil
	}
	roots := rootmgr.New(rootmgr.Config{DataDir: f.cfg.DataDir, Keystore: f.cfg.Keystore, Manifest: rootmgr.NewStoreManifest(f.st)})
	if facts.MissingRoots, err = roots.MissingRoots(ctx); err != nil {
		return err
	}
	if !facts.Audit || !facts.PublicKey || f.acceptingReset {
		return nil // refused by datafolder.Classify, or the anchor is checked when the log opens
	}
	return datafolder.CheckLogAnchor(ctx, f.st, f.cfg.DataDir, f.facts.Installation != nil)
}

// open opens the checked folder: on a first start it creates the folder
// (mode 0700) and the store; it opens the roots of trust (creating the
// first root on a first start) and, when withKeystore and the roots are
// not sealed, the keystore.
func (f *dataFolder) open(ctx context.Context, getenv func(string) string, log *slog.Logger, withKeystore bool) error {
	if f.st == nil {
		if err := datafolder.Prepare(f.cfg.DataDir); err != nil {
			return err
		}
		var err error
		if f.st, err = backend.Open(ctx, storeConfig(f.cfg)); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	// The roots manifest lives in the store, which every node shares; a
	// manifest file left by an earlier kmsd moves there first.
	if err := rootmgr.ImportManifestFile(ctx, f.st, f.cfg.DataDir); err != nil {
		return err
	}
	f.roots = rootmgr.New(rootmgr.Config{DataDir: f.cfg.DataDir, Keystore: f.cfg.Keystore, Getenv: getenv,
		Manifest: rootmgr.NewStoreManifest(f.st), CreateRoot: f.kind == datafolder.FirstStart})
	var err error
	if f.sealed, err = f.roots.SealInfo(ctx); err != nil {
		return err
	}
	if withKeystore && f.sealed == nil {
		if f.ks, err = f.roots.OpenLiveRing(ctx, nil, log); err != nil {
			return err
		}
		if err := f.ks.CheckStore(ctx, f.st); err != nil {
			return err
		}
	}
	return nil
}

// openDataFolder checks the data folder of cfg and opens it for a command
// that works on a folder kmsd serve made (kmsd iam, root, audit
// accept-reset): an empty folder is refused, never created.
func openDataFolder(ctx context.Context, cfg config.Config, getenv func(string) string, log *slog.Logger, withKeystore bool) (*dataFolder, error) {
	f, err := checkDataFolder(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	if f.kind == datafolder.FirstStart {
		f.close()
		return nil, fmt.Errorf("data folder %s holds no kmsd data yet: kmsd serve creates it on its first start", cfg.DataDir)
	}
	if err := f.open(ctx, getenv, log, withKeystore); err != nil {
		f.close()
		return nil, err
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

// storeConfig is the store cfg names: the SQLite database in the data
// folder, or a PostgreSQL database shared by every node.
func storeConfig(cfg config.Config) backend.Config {
	return backend.Config{Type: cfg.Store.Type, DataDir: cfg.DataDir, DSN: cfg.Store.DSN.Reveal()}
}
