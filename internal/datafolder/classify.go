// Package datafolder holds the rules and the stored records of a kmsd data
// folder and its store: how a folder starts (Classify, from what Inspect
// and ReadStoreFacts find, before anything is written), the installation
// record, the records of a shared store's nodes and of their lost logs,
// the audit logs' anchors and kept records in the store, and the
// verification of a cluster's logs against them. It reads and writes the
// store and the folder; kmsd's commands wire it and print what it finds.
package datafolder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/unseal"
)

// DevTLSDir holds the --dev-tls certificates in the data folder.
const DevTLSDir = "dev-tls"

// A data folder is started in one of three ways, decided by Classify from
// what the folder and its store hold before anything is written
// (DESIGN.md, decision 8: a data folder that is neither empty nor whole is
// refused).
type StartKind int

const (
	// FirstStart: the folder holds nothing of kmsd's (at most the sealed
	// root kmsd init made) and the store is unused. kmsd creates
	// everything: the root key, the store, the audit signing key and log,
	// the admin access key, the installation record.
	FirstStart StartKind = iota + 1
	// ExistingStart: the store is in use and the folder is whole. kmsd
	// creates nothing that should already be there.
	ExistingStart
	// JoinStart: the store lives outside the folder (PostgreSQL) and is in
	// use, and the folder holds no audit log: a new node of that store.
	// It starts an audit log of its own; the store is not touched.
	JoinStart
)

// DBState is what became of an SQLite database file.
type DBState int

const (
	DBAbsent  DBState = iota
	DBEmpty           // the file exists with 0 bytes
	DBPresent         // the file has content
)

// FolderFacts is what kmsd finds in a data folder, reading only.
type FolderFacts struct {
	Dir string
	// Shared is set when the store lives outside the folder (PostgreSQL),
	// so that the folder holds no database.
	Shared bool
	DB     DBState // the SQLite database, kmsd.db (DBAbsent when Shared)
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

// StoreFacts is what kmsd finds in the store, reading only.
type StoreFacts struct {
	AnyKey       bool // a key of any account and Region
	AccessKeys   bool // any access key
	Manifest     bool // a roots manifest
	Installation *Installation
	// Restored: kmsd restore filled the store and no audit log has
	// started on it yet (store.SettingRestored), at RestoredRevision.
	Restored         bool
	RestoredRevision int64
}

// InUse reports whether the store holds anything a first start would
// lose.
func (s StoreFacts) InUse() bool {
	return s.AnyKey || s.AccessKeys || s.Manifest || s.Installation != nil
}

// preparedByInit are the entries kmsd init leaves in a folder for its
// first start: the sealed root and a database with no data.
var preparedByInit = []string{rootmgr.SealedRootFile, backend.DatabaseFile, backend.DatabaseFile + "-wal", backend.DatabaseFile + "-shm"}

// Classify is the rule of a data folder's start, the only place it is
// written: from what the folder and its store hold, it says how kmsd
// starts, or why it must not (naming what is missing and how to restore
// it).
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
func Classify(f FolderFacts, s StoreFacts) (StartKind, error) {
	if !s.InUse() {
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
			return FirstStart, nil
		}
		var what, restore string
		switch {
		case f.Shared:
			what = "the store holds no kmsd data"
			restore = "point kmsd at the store this folder was used with, or restore that store from its backup"
		case f.DB == DBAbsent:
			what = backend.DatabaseFile + " (the store: keys, aliases, grants, access keys) is missing"
			restore = "restore " + backend.DatabaseFile + " from your backup (docs/operations.md#backups)"
		case f.DB == DBEmpty:
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
		return JoinStart, nil
	}
	var missing []string
	if !f.Shared && f.DB != DBPresent {
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
	return ExistingStart, nil
}

// Inspect reads what the data folder holds. A folder that does not exist
// holds nothing.
func Inspect(dir string, shared bool) (FolderFacts, error) {
	f := FolderFacts{Dir: dir, Shared: shared}
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
		case name == DevTLSDir, name == rootmgr.ManifestFile+".lock", name == unseal.SocketFile, name == "lost+found":
			// Neither state nor a sign of it.
		case name == backend.DatabaseFile:
			f.State = append(f.State, name)
			f.DB = DBPresent
			if fi, err := e.Info(); err == nil && fi.Size() == 0 {
				f.DB = DBEmpty
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

// ReadStoreFacts reads what the store holds. It runs at every start, so
// each question is answered by reading at most one row: a store holds a
// million keys.
func ReadStoreFacts(ctx context.Context, st store.Store) (StoreFacts, error) {
	var s StoreFacts
	// Whether any key exists, of any account, Region or state: the first
	// in id order, one row (not a count, which reads every key).
	keys, err := st.ListAllKeys(ctx, "", 1)
	if err != nil {
		return s, fmt.Errorf("read the store: %w", err)
	}
	s.AnyKey = len(keys) > 0
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
		s.Restored, s.RestoredRevision = !strings.HasPrefix(string(r.Value), consumedPrefix), r.Revision
	case !errors.Is(err, store.ErrNotFound):
		return s, fmt.Errorf("read the store: %w", err)
	}
	if s.Installation, _, err = LoadInstallation(ctx, st); err != nil {
		return s, err
	}
	return s, nil
}

// consumedPrefix starts the value of store.SettingRestored once an audit
// log has started on the restored store.
const consumedPrefix = "consumed by log "

// ConsumeRestored records that the audit log logID started on a restored
// store (s.Restored), so that no other log can start on it as a new one.
func ConsumeRestored(ctx context.Context, st store.Settings, s *StoreFacts, logID string) error {
	if !s.Restored {
		return nil
	}
	// Compare and set: a second node that read the same marker loses.
	if _, err := st.PutSetting(ctx, store.SettingRestored, []byte(consumedPrefix+logID), s.RestoredRevision); err != nil {
		return fmt.Errorf("record the audit log started on the restored store: %w", err)
	}
	s.Restored = false
	return nil
}

// CheckMode refuses an existing data folder that others can reach; a
// missing one is fine (a first start creates it).
func CheckMode(dir string) error {
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

// Prepare creates the data folder with mode 0700, and refuses an existing
// one that others can read.
func Prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	return CheckMode(dir)
}
