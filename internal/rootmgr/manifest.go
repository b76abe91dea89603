package rootmgr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/store"
)

// Kinds of root.
const (
	KindFile   = "file"   // a root key file in the data folder
	KindPKCS11 = "pkcs11" // a key in the configured PKCS#11 token
)

// Ref names one root key: a file (relative to the data folder) or a key
// label in the configured PKCS#11 token. ID is the root key id it had
// when it was listed, checked on open.
type Ref struct {
	Kind  string `json:"kind"` // KindFile or KindPKCS11
	File  string `json:"file,omitempty"`
	Label string `json:"label,omitempty"`
	ID    string `json:"id"`
}

func (r Ref) String() string {
	if r.Kind == KindPKCS11 {
		return fmt.Sprintf("%s (pkcs11 key %q)", r.ID, r.Label)
	}
	return fmt.Sprintf("%s (file %s)", r.ID, r.File)
}

// Manifest lists the roots of a data folder: which root key is current
// (used for new wraps) and which older ones are kept (to unwrap what they
// wrapped until it is rewrapped). Without one, the root is the one the
// configuration names (root.key, or the PKCS#11 key_label).
type Manifest struct {
	Current Ref   `json:"current"`
	Kept    []Ref `json:"kept,omitempty"`
	// Rewrapping is true from the moment a rotation made a new current
	// root until a rewrap pass found nothing under the kept roots.
	Rewrapping bool `json:"rewrapping,omitempty"`
}

// Rev identifies one stored version of the manifest, for
// compare-and-set.
type Rev string

// NoRev is the revision of a manifest that is not stored (yet).
const NoRev Rev = ""

// Errors of a ManifestStore.
var (
	// ErrNoManifest is returned by Load when no manifest is stored.
	ErrNoManifest = errors.New("no roots manifest")
	// ErrManifestChanged is returned by Save when the stored manifest is
	// no longer the revision given.
	ErrManifestChanged = errors.New("the roots manifest changed since it was read")
)

// ManifestStore holds the roots manifest. kmsd keeps it in the shared
// store (StoreManifest), so that every node follows a rotation; the file
// in the data folder (FileManifest) is where kmsd kept it before, which
// ImportManifestFile moves into the store.
type ManifestStore interface {
	// Load returns the stored manifest and its revision, or an error
	// wrapping ErrNoManifest when there is none.
	Load(ctx context.Context) (Manifest, Rev, error)
	// Save stores m in place of revision rev (NoRev: none is stored) and
	// returns the new revision; if the stored manifest is no longer rev
	// it stores nothing and returns an error wrapping
	// ErrManifestChanged.
	Save(ctx context.Context, m Manifest, rev Rev) (Rev, error)
}

// ManifestFile is the roots manifest's name in the data folder.
const ManifestFile = "roots.json"

// maxManifest bounds the manifest file: a few hundred bytes a root.
const maxManifest = 1 << 20

// FileManifest is the ManifestStore of a data folder: ManifestFile in it,
// mode 0600, replaced atomically. Its revision is a hash of its content.
type FileManifest struct {
	path string
}

// NewFileManifest returns the manifest file of the data folder dataDir.
func NewFileManifest(dataDir string) *FileManifest {
	return &FileManifest{path: filepath.Join(dataDir, ManifestFile)}
}

// Load reads the manifest file.
func (f *FileManifest) Load(_ context.Context) (Manifest, Rev, error) {
	b, err := f.read()
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, NoRev, fmt.Errorf("%s: %w", f.path, ErrNoManifest)
	}
	if err != nil {
		return Manifest{}, NoRev, err
	}
	m, err := decodeManifest(b)
	if err != nil {
		return Manifest{}, NoRev, fmt.Errorf("roots manifest %s: %w", f.path, err)
	}
	return m, revOf(b), nil
}

// Save replaces the manifest file (temporary file, fsync, rename,
// directory fsync) if it still holds revision rev. The check and the
// replace are not one atomic step: Lock keeps other writers out.
func (f *FileManifest) Save(_ context.Context, m Manifest, rev Rev) (Rev, error) {
	if err := m.check(); err != nil {
		return NoRev, fmt.Errorf("roots manifest: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return NoRev, err
	}
	b = append(b, '\n')
	cur, err := f.read()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if rev != NoRev {
			return NoRev, fmt.Errorf("%s was removed: %w", f.path, ErrManifestChanged)
		}
	case err != nil:
		return NoRev, err
	case revOf(cur) != rev:
		return NoRev, fmt.Errorf("%s: %w", f.path, ErrManifestChanged)
	}
	if err := durable.Replace(f.path, b, 0o600); err != nil {
		return NoRev, err
	}
	return revOf(b), nil
}

// read returns the content of the manifest file, which must be private
// like every file kmsd trusts.
func (f *FileManifest) read() ([]byte, error) {
	file, _, err := durable.OpenPrivate(f.path, "roots manifest")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("reading roots manifest %s: %w", f.path, err)
	}
	if len(b) > maxManifest {
		return nil, fmt.Errorf("roots manifest %s is larger than %d bytes", f.path, maxManifest)
	}
	return b, nil
}

func revOf(b []byte) Rev {
	sum := sha256.Sum256(b)
	return Rev(hex.EncodeToString(sum[:16]))
}

// decodeManifest parses a stored manifest strictly: unknown members are
// refused, and it must name a current root.
func decodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, err
	}
	if err := m.check(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// check refuses a manifest without a current root.
func (m Manifest) check() error {
	if m.Current.Kind == "" || m.Current.ID == "" {
		return errors.New("it names no current root")
	}
	return nil
}

// lockFile is the lock of Lock in the data folder (named after the
// manifest file that once held the roots).
const lockFile = ManifestFile + ".lock"

// StoreManifest is the ManifestStore every kmsd node sharing a store
// sees: the setting store.SettingRootManifest. Its revision is the
// setting's.
type StoreManifest struct {
	st store.Settings
}

var (
	_ ManifestStore = (*StoreManifest)(nil)
	_ ManifestStore = (*FileManifest)(nil)
)

// NewStoreManifest returns the manifest kept in st.
func NewStoreManifest(st store.Settings) *StoreManifest { return &StoreManifest{st: st} }

// Load reads the manifest from the store.
func (s *StoreManifest) Load(ctx context.Context) (Manifest, Rev, error) {
	set, err := s.st.GetSetting(ctx, store.SettingRootManifest)
	if errors.Is(err, store.ErrNotFound) {
		return Manifest{}, NoRev, fmt.Errorf("store: %w", ErrNoManifest)
	}
	if err != nil {
		return Manifest{}, NoRev, fmt.Errorf("read the roots manifest: %w", err)
	}
	m, err := decodeManifest(set.Value)
	if err != nil {
		return Manifest{}, NoRev, fmt.Errorf("roots manifest in the store: %w", err)
	}
	return m, Rev(strconv.FormatInt(set.Revision, 10)), nil
}

// Save writes the manifest to the store by compare and set on its
// revision.
func (s *StoreManifest) Save(ctx context.Context, m Manifest, rev Rev) (Rev, error) {
	if err := m.check(); err != nil {
		return NoRev, fmt.Errorf("roots manifest: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return NoRev, err
	}
	var cur int64
	if rev != NoRev {
		if cur, err = strconv.ParseInt(string(rev), 10, 64); err != nil {
			return NoRev, fmt.Errorf("roots manifest revision %q: %w", rev, ErrManifestChanged)
		}
	}
	next, err := s.st.PutSetting(ctx, store.SettingRootManifest, b, cur)
	if errors.Is(err, store.ErrConflict) {
		return NoRev, fmt.Errorf("store: %w", ErrManifestChanged)
	}
	if err != nil {
		return NoRev, fmt.Errorf("write the roots manifest: %w", err)
	}
	return Rev(strconv.FormatInt(next, 10)), nil
}

// ImportedManifestFile is what ImportManifestFile renames the manifest
// file of a data folder to once the store holds its content.
const ImportedManifestFile = ManifestFile + ".imported"

// ImportManifestFile moves the roots manifest of a data folder written
// by an earlier kmsd (ManifestFile) into the store, where every node sees
// it: when the store has no manifest yet, the file's is saved there and
// the file renamed to ImportedManifestFile. When the store already has
// one, the file is refused: two manifests that may disagree about which
// root wraps cannot both be right.
func ImportManifestFile(ctx context.Context, st store.Settings, dataDir string) error {
	file := NewFileManifest(dataDir)
	m, _, err := file.Load(ctx)
	if errors.Is(err, ErrNoManifest) {
		return nil
	}
	if err != nil {
		return err
	}
	sm := NewStoreManifest(st)
	switch _, _, err := sm.Load(ctx); {
	case err == nil:
		return fmt.Errorf("%s holds a roots manifest and so does the store: remove the file if the store's is right (kmsd root status shows it)", file.path)
	case !errors.Is(err, ErrNoManifest):
		return err
	}
	if _, err := sm.Save(ctx, m, NoRev); err != nil {
		return err
	}
	if err := os.Rename(file.path, filepath.Join(dataDir, ImportedManifestFile)); err != nil {
		return fmt.Errorf("the roots manifest is now in the store; rename %s: %w", file.path, err)
	}
	return durable.SyncDir(dataDir)
}
