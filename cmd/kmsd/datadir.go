package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/unseal"
)

// A data folder is started in one of three ways, decided by
// classifyDataFolder from what the folder and its store hold before
// anything is written (DESIGN.md, decision 8: a data folder that is
// neither empty nor whole is refused).
type startKind int

const (
	// firstStart: the folder holds nothing of kmsd's (at most the sealed
	// root kmsd init made) and the store is unused. kmsd creates
	// everything: the root key, the store, the audit signing key and log,
	// the admin access key, the installation record.
	firstStart startKind = iota + 1
	// existingStart: the store is in use and the folder is whole. kmsd
	// creates nothing that should already be there.
	existingStart
	// joinStart: the store lives outside the folder (PostgreSQL) and is in
	// use, and the folder holds no audit log: a new node of that store.
	// It starts an audit log of its own; the store is not touched.
	joinStart
)

// dbState is what became of an SQLite database file.
type dbState int

const (
	dbAbsent  dbState = iota
	dbEmpty           // the file exists with 0 bytes
	dbPresent         // the file has content
)

// folderFacts is what kmsd finds in a data folder, reading only.
type folderFacts struct {
	Dir string
	// Shared is set when the store lives outside the folder (PostgreSQL),
	// so that the folder holds no database.
	Shared bool
	DB     dbState // the SQLite database, kmsd.db (dbAbsent when Shared)
	// State lists the entries that are kmsd's state (database files, root
	// keys, the audit log and its keys, manifests), sorted; Unknown the
	// entries kmsd does not know. Locks, sockets, the development TLS
	// folder and lost+found are neither: nothing is lost with them.
	State, Unknown []string
	// Audit, SigningKey and PublicKey say whether the audit log folder,
	// audit-signing.key and audit-signing.pub exist.
	Audit, SigningKey, PublicKey bool
	// MissingRoots are the root key files that the roots manifest (or,
	// without one, the configuration) names and the folder lacks; set
	// only for a store in use.
	MissingRoots []string
}

// storeFacts is what kmsd finds in the store, reading only.
type storeFacts struct {
	Keys         int  // keys of every account and Region
	AccessKeys   bool // any access key
	Manifest     bool // a roots manifest
	Installation *installation
	// Restored: kmsd restore filled the store and no audit log has
	// started on it yet (store.SettingRestored).
	Restored    bool
	restoredRev int64
}

// inUse reports whether the store holds anything a first start would
// lose.
func (s storeFacts) inUse() bool {
	return s.Keys > 0 || s.AccessKeys || s.Manifest || s.Installation != nil
}

// preparedByInit are the entries kmsd init leaves in a folder for its
// first start: the sealed root and a database with no data.
var preparedByInit = []string{rootmgr.SealedRootFile, backend.DatabaseFile, backend.DatabaseFile + "-wal", backend.DatabaseFile + "-shm"}

// classifyDataFolder is the rule of a data folder's start, the only place
// it is written: from what the folder and its store hold, it says how
// kmsd starts, or why it must not (naming what is missing and how to
// restore it).
//
//   - The store is unused (no key, no access key, no roots manifest, no
//     installation record): a first start, when the folder holds nothing
//     of kmsd's but what kmsd init prepares (a sealed root, an empty
//     database). Anything else there (a root key, an audit log, a signing
//     key) belongs to a store that is gone: refused.
//   - The store is in use: the folder must be whole (every root key file
//     the roots name, the audit log folder, the audit signing key and its
//     public key). With a shared store, a folder with no audit log and no
//     signing key is a new node joining it; so is one on a store kmsd
//     restore just filled, once (store.SettingRestored). Anything
//     missing: refused.
//
// A folder holding only entries kmsd does not know is refused as well: a
// first start needs an empty folder.
func classifyDataFolder(f folderFacts, s storeFacts) (startKind, error) {
	if !s.inUse() {
		var leftovers []string
		for _, e := range f.State {
			if !slices.Contains(preparedByInit, e) {
				leftovers = append(leftovers, e)
			}
		}
		if len(leftovers) == 0 {
			if len(f.State) == 0 && len(f.Unknown) > 0 {
				return 0, fmt.Errorf("data folder %s is not empty (it holds %s) but holds nothing of kmsd's: kmsd starts afresh only in an empty folder; use another folder, or move those away. kmsd has written nothing", f.Dir, strings.Join(f.Unknown, ", "))
			}
			return firstStart, nil
		}
		var what, restore string
		switch {
		case f.Shared:
			what = "the store holds no kmsd data"
			restore = "point kmsd at the store this folder was used with, or restore that store from its backup"
		case f.DB == dbAbsent:
			what = backend.DatabaseFile + " (the store: keys, aliases, grants, access keys) is missing"
			restore = "restore " + backend.DatabaseFile + " from your backup (docs/operations.md#backups)"
		case f.DB == dbEmpty:
			what = backend.DatabaseFile + " (the store: keys, aliases, grants, access keys) is empty"
			restore = "restore " + backend.DatabaseFile + " from your backup (docs/operations.md#backups)"
		default:
			what = backend.DatabaseFile + " holds no kmsd data"
			restore = "restore " + backend.DatabaseFile + " from your backup (docs/operations.md#backups)"
		}
		return 0, fmt.Errorf("data folder %s: %s, but the folder holds %s, which belong to a store in use: this is not a first start (kmsd starts afresh only in an empty folder), and kmsd has written nothing. To go on, %s. If instead a first start was interrupted here and kmsd never served, empty the folder and start again",
			f.Dir, what, strings.Join(leftovers, ", "), restore)
	}

	if (f.Shared || s.Restored) && !f.Audit && !f.SigningKey && !f.PublicKey && len(f.MissingRoots) == 0 {
		// A new node of a shared store, or the first start on a store
		// kmsd restore just filled: a new audit log begins.
		return joinStart, nil
	}
	var missing []string
	if !f.Shared && f.DB != dbPresent {
		// Unreachable: a store in use in the folder is its database.
		missing = append(missing, backend.DatabaseFile+" is missing: restore it from your backup (docs/operations.md#backups)")
	}
	for _, r := range f.MissingRoots {
		missing = append(missing, fmt.Sprintf("root key %s is missing: every secret in the store is wrapped by it, and kmsd never makes a new root for a store in use; restore it from the copy you keep apart from the backups", r))
	}
	if !f.Audit {
		missing = append(missing, fmt.Sprintf("the audit log folder %s/ is missing: restore it from your backup; if it is lost for good, accept the loss with kmsd audit accept-reset (which is itself audited)", audit.DirName))
	}
	switch {
	case !f.SigningKey:
		missing = append(missing, fmt.Sprintf("the audit signing key %s is missing: restore it (and %s) from your backup", audit.SigningKeyFile, audit.PublicKeyFile))
	case !f.PublicKey:
		// Not rewritten from the signing key: the public key is what an
		// auditor verifies the log with, and the one kept beside the
		// backups is the reference; a folder that lost it lost something
		// else too, perhaps, and kmsd writes nothing into a partial folder.
		missing = append(missing, fmt.Sprintf("the audit public key %s is missing: restore it from your backup (it is the public half of %s, which kmsd audit verify checks the log with)", audit.PublicKeyFile, audit.SigningKeyFile))
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("data folder %s is incomplete, so kmsd will not start (it has written nothing):\n  - %s", f.Dir, strings.Join(missing, "\n  - "))
	}
	return existingStart, nil
}

// inspectFolder reads what the data folder holds. A folder that does
// not exist holds nothing.
func inspectFolder(dir string, shared bool) (folderFacts, error) {
	f := folderFacts{Dir: dir, Shared: shared}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("data folder: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == devTLSDir, name == rootmgr.ManifestFile+".lock", name == unseal.SocketFile, name == "lost+found":
			// Neither state nor a sign of it.
		case name == backend.DatabaseFile:
			f.State = append(f.State, name)
			f.DB = dbPresent
			if fi, err := e.Info(); err == nil && fi.Size() == 0 {
				f.DB = dbEmpty
			}
		case name == audit.DirName:
			f.State = append(f.State, name+"/")
			f.Audit = true
		case name == audit.SigningKeyFile:
			f.State = append(f.State, name)
			f.SigningKey = true
		case name == audit.PublicKeyFile:
			f.State = append(f.State, name)
			f.PublicKey = true
		case strings.HasPrefix(name, backend.DatabaseFile+"-"),
			name == rootmgr.ManifestFile, name == rootmgr.ImportedManifestFile,
			strings.HasPrefix(name, "root") && (strings.HasSuffix(name, ".key") || strings.HasSuffix(name, ".key"+keystore.SealedSuffix)):
			f.State = append(f.State, name)
		default:
			f.Unknown = append(f.Unknown, name)
		}
	}
	return f, nil
}

// readStoreFacts reads what the store holds.
func readStoreFacts(ctx context.Context, st store.Store) (storeFacts, error) {
	var s storeFacts
	counts, err := st.CountKeysByState(ctx)
	if err != nil {
		return s, fmt.Errorf("read the store: %w", err)
	}
	for _, n := range counts {
		s.Keys += n
	}
	// Access keys of every account: the wrapped secrets list them all.
	aks, err := st.ListWrapped(ctx, store.WrappedAccessKey, store.WrappedRef{}, 1)
	if err != nil {
		return s, fmt.Errorf("read the store: %w", err)
	}
	s.AccessKeys = len(aks) > 0
	switch _, err := st.GetSetting(ctx, store.SettingRootManifest); {
	case err == nil:
		s.Manifest = true
	case !errors.Is(err, store.ErrNotFound):
		return s, fmt.Errorf("read the store: %w", err)
	}
	switch r, err := st.GetSetting(ctx, store.SettingRestored); {
	case err == nil:
		s.Restored, s.restoredRev = !strings.HasPrefix(string(r.Value), consumedPrefix), r.Revision
	case !errors.Is(err, store.ErrNotFound):
		return s, fmt.Errorf("read the store: %w", err)
	}
	if s.Installation, _, err = loadInstallation(ctx, st); err != nil {
		return s, err
	}
	return s, nil
}

// consumedPrefix starts the value of store.SettingRestored once an audit
// log has started on the restored store.
const consumedPrefix = "consumed by log "

// consumeRestored records that the audit log keyID started on a restored
// store, so that no other log can start on it as a new one.
func (f *dataFolder) consumeRestored(ctx context.Context, keyID string) error {
	if !f.facts.Restored {
		return nil
	}
	if _, err := f.st.PutSetting(ctx, store.SettingRestored, []byte(consumedPrefix+keyID), f.facts.restoredRev); err != nil {
		return fmt.Errorf("record the audit log started on the restored store: %w", err)
	}
	f.facts.Restored = false
	return nil
}

// dataFolder is a data folder that checkDataFolder found fit to start,
// and then what open opened in it: the roots of trust, the keystore they
// make and the store.
type dataFolder struct {
	cfg            config.Config
	acceptingReset bool
	kind           startKind
	facts          storeFacts // what the store held when checked
	st             store.Store
	roots          *rootmgr.Manager
	// sealed is the seal of the roots when kmsd init sealed them, else
	// nil.
	sealed *keystore.SealInfo
	// node is this node's record in a shared store (see checkNode); nil
	// for a store in the data folder.
	node *nodeState
	// ks is the live ring of the roots; nil unless asked for, and nil
	// while they are sealed (kmsd serve opens it once kmsd unseal gives
	// the seal key, and sets it here to be closed with the rest).
	ks *rootmgr.LiveRing
}

// checkDataFolder looks at the data folder of cfg and its store, writing
// nothing, and refuses a folder that is neither empty nor whole (see
// classifyDataFolder), a store that fails its integrity check and an audit
// log that does not reach its anchor. It opens the store when there is one
// (an SQLite database only when it has content: opening creates it).
//
// acceptingReset is for kmsd audit accept-reset, which exists for an
// audit log that is behind its anchor or gone: those are not refused.
func checkDataFolder(ctx context.Context, cfg config.Config, acceptingReset bool) (*dataFolder, error) {
	if err := checkDataDirMode(cfg.DataDir); err != nil {
		return nil, err
	}
	bcfg := storeConfig(cfg)
	if cfg.AcceptLostLog && bcfg.InDataFolder() {
		return nil, errors.New("--accept-lost-log is for a node of a shared (PostgreSQL) store; on one machine, kmsd audit accept-reset accepts a lost log")
	}
	facts, err := inspectFolder(cfg.DataDir, !bcfg.InDataFolder())
	if err != nil {
		return nil, err
	}
	f := &dataFolder{cfg: cfg, acceptingReset: acceptingReset}
	if acceptingReset {
		facts.Audit = true // accept-reset makes the folder anew if it is gone
	}
	if facts.Shared || facts.DB == dbPresent {
		if f.st, err = backend.Open(ctx, bcfg); err != nil {
			return nil, fmt.Errorf("open store: %w (if the database is damaged, restore %s from your backup)", err, backend.DatabaseFile)
		}
		if err := f.check(ctx, &facts); err != nil {
			f.close()
			return nil, err
		}
	}
	if f.kind, err = classifyDataFolder(facts, f.facts); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// check runs the checks that need the store: its integrity, its facts,
// the roots it names, its Region and the audit log's anchor.
func (f *dataFolder) check(ctx context.Context, facts *folderFacts) error {
	if c, ok := f.st.(store.Checker); ok {
		if err := c.Check(ctx, false); err != nil {
			return fmt.Errorf("the store failed its integrity check, so kmsd will not start: %w. Restore %s from your backup (docs/operations.md#backups); kmsd store check --data-dir %s lists the damage in full", err, backend.DatabaseFile, f.cfg.DataDir)
		}
	}
	var err error
	if f.facts, err = readStoreFacts(ctx, f.st); err != nil {
		return err
	}
	if facts.Shared && !f.acceptingReset {
		if err := f.checkNode(ctx, facts); err != nil {
			return err
		}
	}
	if !f.facts.inUse() {
		return nil
	}
	roots := rootmgr.New(rootmgr.Config{DataDir: f.cfg.DataDir, Keystore: f.cfg.Keystore, Manifest: rootmgr.NewStoreManifest(f.st)})
	if facts.MissingRoots, err = roots.MissingRoots(ctx); err != nil {
		return err
	}
	if !facts.Audit || !facts.PublicKey || f.acceptingReset {
		return nil // refused by classifyDataFolder, or the anchor is checked when the log opens
	}
	// The anchor is checked now, before kmsd writes anything (or starts
	// sealed), with the public key alone; audit.Open checks it again.
	pub, err := audit.ReadPublicKey(filepath.Join(f.cfg.DataDir, audit.PublicKeyFile))
	if err != nil {
		return err
	}
	a, _, err := storeAnchors{f.st}.LoadAnchor(ctx, audit.KeyID(pub))
	switch {
	case errors.Is(err, audit.ErrNoAnchor):
		if f.facts.Installation != nil {
			return fmt.Errorf("the audit log of %s (signing key %s) has no anchor in the store, which every log started by this kmsd has: the anchor was removed, or the log and its signing key were replaced. kmsd will not start (it has written nothing)", f.cfg.DataDir, audit.KeyID(pub))
		}
		return nil // kept before anchors existed: anchored when it opens
	case err != nil:
		return err
	}
	if err := audit.CheckAnchor(filepath.Join(f.cfg.DataDir, audit.DirName), a); err != nil {
		return behindHint(err, f.cfg.DataDir)
	}
	return nil
}

// behindHint adds what the operator can do to an error of a log that
// does not reach its anchor.
func behindHint(err error, dataDir string) error {
	if !errors.Is(err, audit.ErrBehindAnchor) {
		return err
	}
	return fmt.Errorf("%w. kmsd will not start on it (it has written nothing). Restore the audit log from your backup; if the missing records are lost for good, accept that with kmsd audit accept-reset --data-dir %s --reason TEXT (the acceptance is itself audited)", err, dataDir)
}

// open opens the checked folder: on a first start it creates the folder
// (mode 0700) and the store; it opens the roots of trust (creating the
// first root on a first start) and, when withKeystore and the roots are
// not sealed, the keystore.
func (f *dataFolder) open(ctx context.Context, getenv func(string) string, log *slog.Logger, withKeystore bool) error {
	if f.st == nil {
		if err := prepareDataDir(f.cfg.DataDir); err != nil {
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
		Manifest: rootmgr.NewStoreManifest(f.st), CreateRoot: f.kind == firstStart})
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
	if f.kind == firstStart {
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

// checkDataDirMode refuses an existing data folder that others can
// reach; a missing one is fine (a first start creates it).
func checkDataDirMode(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data folder %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data folder %s has mode %o: it holds the root key, make it private (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// prepareDataDir creates the data folder with mode 0700, and refuses an
// existing one that others can read.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	return checkDataDirMode(dir)
}

// storeConfig is the store cfg names: the SQLite database in the data
// folder, or a PostgreSQL database shared by every node.
func storeConfig(cfg config.Config) backend.Config {
	return backend.Config{Type: cfg.Store.Type, DataDir: cfg.DataDir, DSN: cfg.Store.DSN.Reveal()}
}
