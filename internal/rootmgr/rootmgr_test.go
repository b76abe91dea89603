package rootmgr

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

var quiet = slog.New(slog.DiscardHandler)

// testArgon2 keeps the tests fast; kmsd init always uses
// keystore.DefaultArgon2Params.
var testArgon2 = keystore.Argon2Params{Time: 1, MemoryKiB: 256, Threads: 1}

func openLive(t *testing.T, g *Manager) *LiveRing {
	t.Helper()
	l, err := g.OpenLiveRing(context.Background(), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// newFileRoot creates a root key file in dir outside the Manager, as
// another process (kmsd root rotate) does.
func newFileRoot(t *testing.T, dir, name string) *keystore.FileKeystore {
	t.Helper()
	ks, err := keystore.OpenFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestLiveRingImplicitRoot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Only a first start creates the root: a missing root.key is
	// otherwise refused, and nothing is written.
	if _, err := New(Config{DataDir: dir}).OpenLiveRing(ctx, nil, quiet); err == nil || !strings.Contains(err.Error(), "root.key is missing") {
		t.Fatalf("OpenLiveRing without root.key: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused OpenLiveRing wrote %v", entries)
	}
	if missing, err := New(Config{DataDir: dir}).MissingRoots(ctx); err != nil || len(missing) != 1 || missing[0] != RootKeyFile {
		t.Fatalf("MissingRoots = %v, %v", missing, err)
	}
	g := New(Config{DataDir: dir, CreateRoot: true})
	if info, err := g.SealInfo(ctx); err != nil || info != nil {
		t.Fatalf("SealInfo of a plain folder: %v, %v", info, err)
	}
	l := openLive(t, g)
	if missing, err := g.MissingRoots(ctx); err != nil || len(missing) != 0 {
		t.Fatalf("MissingRoots after the first start = %v, %v", missing, err)
	}
	// The first start creates root.key; no manifest is written.
	root := newFileRoot(t, dir, RootKeyFile)
	if l.ID() != root.ID() {
		t.Fatalf("live ring root %s, root.key %s", l.ID(), root.ID())
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		t.Fatal("opening the implicit root wrote a manifest")
	}
	blob, err := l.Wrap(ctx, []byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := root.Unwrap(ctx, blob, []byte("aad")); err != nil || string(got) != "secret" {
		t.Fatalf("root.key unwraps %q, %v", got, err)
	}
}

// TestLiveRingFollowsManifest: a new manifest is taken up by Reload, and
// a blob wrapped under a root the ring does not hold makes it reload by
// itself.
func TestLiveRingFollowsManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	g := New(Config{DataDir: dir, CreateRoot: true})
	l := openLive(t, g)
	old := l.ID()
	oldBlob, err := l.Wrap(ctx, []byte("old"), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Another process rotates: a new root, named current by the manifest.
	next := newFileRoot(t, dir, "root-2.key")
	m := Manifest{Current: Ref{Kind: KindFile, File: "root-2.key", ID: next.ID()}, Kept: []Ref{{Kind: KindFile, File: RootKeyFile, ID: old}}, Rewrapping: true}
	rev, err := NewFileManifest(dir).Save(ctx, m, NoRev)
	if err != nil {
		t.Fatal(err)
	}
	newBlob, err := next.Wrap(ctx, []byte("new"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Unwrapping a blob under the new root reloads the manifest.
	if got, err := l.Unwrap(ctx, newBlob, nil); err != nil || string(got) != "new" {
		t.Fatalf("Unwrap under a root the ring did not hold: %q, %v", got, err)
	}
	if l.ID() != next.ID() {
		t.Fatalf("after the reload the current root is %s, want %s", l.ID(), next.ID())
	}
	if got, err := l.Unwrap(ctx, oldBlob, nil); err != nil || string(got) != "old" {
		t.Fatalf("Unwrap under the kept root: %q, %v", got, err)
	}
	w, err := l.Wrap(ctx, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := keystore.WrappedRootID(w); id != next.ID() {
		t.Fatalf("wraps under %s, want the new current root %s", id, next.ID())
	}

	// The kept root retired: Reload drops it.
	m.Kept, m.Rewrapping = nil, false
	if _, err := NewFileManifest(dir).Save(ctx, m, rev); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Unwrap(ctx, oldBlob, nil); err == nil {
		t.Fatal("unwrapped under a retired root")
	}

	// A manifest that cannot be opened leaves the ring in use.
	bad := Manifest{Current: Ref{Kind: KindFile, File: "missing.key", ID: "00"}}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), mustJSON(t, bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(ctx); err == nil {
		t.Fatal("Reload opened a manifest naming a missing root")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("Reload created a root the manifest lists")
	}
	if l.ID() != next.ID() {
		t.Fatalf("after a failed reload the current root is %s, want %s", l.ID(), next.ID())
	}
}

func TestOpenRootChecksID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	newFileRoot(t, dir, RootKeyFile)
	other := newFileRoot(t, dir, "other.key")
	m := Manifest{Current: Ref{Kind: KindFile, File: RootKeyFile, ID: other.ID()}}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), mustJSON(t, m), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{DataDir: dir}).OpenLiveRing(ctx, nil, quiet)
	if err == nil || !strings.Contains(err.Error(), "not the key the roots manifest lists") {
		t.Fatalf("a root with another id: %v", err)
	}
	m.Current = Ref{Kind: KindPKCS11, Label: "k", ID: "1"}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), mustJSON(t, m), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{DataDir: dir}).OpenLiveRing(ctx, nil, quiet)
	if err == nil || !strings.Contains(err.Error(), "no keystore.pkcs11 settings") {
		t.Fatalf("a PKCS#11 root without PKCS#11 settings: %v", err)
	}
}

// testPassphrase seals the roots of sealedFolder.
var testPassphrase = []byte("a long passphrase")

// sealedFolder makes a data folder sealed as kmsd init does, and returns
// it, its seal key and its root.
func sealedFolder(t *testing.T) (string, *keystore.SealKey, *keystore.FileKeystore) {
	t.Helper()
	dir := t.TempDir()
	key, err := keystore.NewPassphraseSealKey(testPassphrase, testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	root, err := keystore.CreateSealedFile(filepath.Join(dir, SealedRootFile), key)
	if err != nil {
		t.Fatal(err)
	}
	return dir, key, root
}

func TestSealedRoots(t *testing.T) {
	ctx := context.Background()
	dir, key, root := sealedFolder(t)
	g := New(Config{DataDir: dir})
	info, err := g.SealInfo(ctx)
	if err != nil || info == nil || info.RootID != root.ID() || info.Kind != keystore.SealPassphrase {
		t.Fatalf("SealInfo: %+v, %v", info, err)
	}
	if _, err := g.OpenLiveRing(ctx, nil, quiet); !errors.Is(err, ErrSealed) {
		t.Fatalf("opening sealed roots without the seal key: %v, want ErrSealed", err)
	}
	l, err := g.OpenLiveRing(ctx, key, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != root.ID() {
		t.Fatalf("unsealed root %s, want %s", l.ID(), root.ID())
	}
	l.Close()

	// A plaintext root.key beside the sealed one is refused: one of them
	// is left over.
	newFileRoot(t, dir, RootKeyFile)
	if _, err := g.SealInfo(ctx); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("both root.key and root.key.sealed: %v", err)
	}
}

// TestCheckStore: a node refuses a store whose secrets another root
// wrapped (another deployment's database, or a node given the wrong root
// key), and accepts its own and an empty one.
func TestCheckStore(t *testing.T) {
	ctx := context.Background()
	mine, theirs := t.TempDir(), t.TempDir()
	st, err := backend.Open(ctx, backend.Config{DataDir: theirs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := openLive(t, New(Config{DataDir: mine, CreateRoot: true}))
	if err := l.CheckStore(ctx, st); err != nil {
		t.Fatalf("empty store: %v", err)
	}
	other := openLive(t, New(Config{DataDir: theirs, CreateRoot: true}))
	secret, err := other.Wrap(ctx, []byte("secret access key"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutAccessKey(ctx, &store.AccessKey{ID: "AKIAOTHER", Account: "111122223333",
		PrincipalARN: "arn:aws:iam::111122223333:user/admin", WrappedSecret: secret, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	err = l.CheckStore(ctx, st)
	if err == nil || !strings.Contains(err.Error(), "another kmsd deployment") || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("another deployment's store: %v", err)
	}
	if err := other.CheckStore(ctx, st); err != nil {
		t.Fatalf("its own store: %v", err)
	}
}
