package rootmgr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/store/backend"
)

func TestFileManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := NewFileManifest(dir)
	if _, rev, err := f.Load(ctx); !errors.Is(err, ErrNoManifest) || rev != NoRev {
		t.Fatalf("Load without a manifest: %q, %v; want ErrNoManifest", rev, err)
	}

	m := Manifest{Current: Ref{Kind: KindFile, File: "root-2.key", ID: "2222"}, Kept: []Ref{{Kind: KindFile, File: RootKeyFile, ID: "1111"}}, Rewrapping: true}
	rev1, err := f.Save(ctx, m, NoRev)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %04o, want 0600", fi.Mode().Perm())
	}
	got, rev, err := f.Load(ctx)
	if err != nil || rev != rev1 || got.Current != m.Current || len(got.Kept) != 1 || got.Kept[0] != m.Kept[0] || !got.Rewrapping {
		t.Fatalf("Load = %+v, %q, %v; want %+v, %q", got, rev, err, m, rev1)
	}

	// Compare and set: a stale revision, or NoRev over a stored manifest,
	// stores nothing.
	m2 := m
	m2.Rewrapping = false
	if _, err := f.Save(ctx, m2, NoRev); !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("Save with NoRev over a manifest: %v, want ErrManifestChanged", err)
	}
	if _, err := f.Save(ctx, m2, "0123"); !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("Save with a wrong revision: %v, want ErrManifestChanged", err)
	}
	if _, rev, _ := f.Load(ctx); rev != rev1 {
		t.Fatal("a refused Save changed the manifest")
	}
	rev2, err := f.Save(ctx, m2, rev1)
	if err != nil || rev2 == rev1 {
		t.Fatalf("Save with the current revision: %q, %v", rev2, err)
	}
	if _, err := f.Save(ctx, m, rev1); !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("Save with the previous revision: %v, want ErrManifestChanged", err)
	}
	if got, rev, err := f.Load(ctx); err != nil || rev != rev2 || got.Rewrapping {
		t.Fatalf("after the second Save: %+v, %q, %v", got, rev, err)
	}
	// Saving the same content gives the same revision: the revision
	// identifies the content.
	if rev3, err := f.Save(ctx, m2, rev2); err != nil || rev3 != rev2 {
		t.Fatalf("saving the same manifest again: %q, %v; want %q", rev3, err, rev2)
	}

	if _, err := f.Save(ctx, Manifest{}, rev2); err == nil || !strings.Contains(err.Error(), "no current root") {
		t.Fatalf("Save of a manifest without a current root: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the folder holds %d files after the saves, want only the manifest", len(entries))
	}
}

func TestFileManifestRefuses(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"unknown member": {`{"current":{"kind":"file","file":"root.key","id":"1"},"extra":1}`, 0o600, "unknown field"},
		"no current":     {`{"kept":[{"kind":"file","file":"root.key","id":"1"}]}`, 0o600, "no current root"},
		"no current id":  {`{"current":{"kind":"file","file":"root.key"}}`, 0o600, "no current root"},
		"not JSON":       {`roots`, 0o600, "invalid character"},
		"readable":       {`{"current":{"kind":"file","file":"root.key","id":"1"}}`, 0o644, "chmod 600"},
	} {
		t.Run(name, func(t *testing.T) {
			if c.mode == 0o644 && runtime.GOOS == "windows" {
				t.Skip("no Unix permission bits on Windows")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, ManifestFile)
			if err := os.WriteFile(path, []byte(c.content), c.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, c.mode)
			_, _, err := NewFileManifest(dir).Load(ctx)
			if err == nil || errors.Is(err, ErrNoManifest) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestFileManifestLock(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on Windows")
	}
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); err == nil || !strings.Contains(err.Error(), "another kmsd root command") {
		t.Fatalf("a second lock while the first is held: %v", err)
	}
	unlock()
	unlock, err = Lock(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock()
}

// TestStoreManifest: the manifest every node shares is kept in the store,
// written by compare and set; a manifest file left by an earlier kmsd
// moves there once.
func TestStoreManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := backend.Open(ctx, backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// An earlier kmsd's manifest file.
	old := Manifest{Current: Ref{Kind: KindFile, File: "root-2.key", ID: "2222"}, Kept: []Ref{{Kind: KindFile, File: RootKeyFile, ID: "1111"}}}
	if _, err := NewFileManifest(dir).Save(ctx, old, NoRev); err != nil {
		t.Fatal(err)
	}
	if err := ImportManifestFile(ctx, st, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest file still there after the import: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ImportedManifestFile)); err != nil {
		t.Errorf("imported manifest file: %v", err)
	}
	sm := NewStoreManifest(st)
	got, rev, err := sm.Load(ctx)
	if err != nil || got.Current != old.Current || len(got.Kept) != 1 {
		t.Fatalf("store manifest after import: %+v, %v", got, err)
	}
	// A second import finds no file: nothing changes.
	if err := ImportManifestFile(ctx, st, dir); err != nil {
		t.Fatal(err)
	}

	// Compare and set: a writer that read an older revision is refused.
	next := Manifest{Current: Ref{Kind: KindFile, File: "root-3.key", ID: "3333"}, Kept: append(got.Kept, got.Current)}
	rev2, err := sm.Save(ctx, next, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sm.Save(ctx, got, rev); !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("save over a stale revision: %v, want ErrManifestChanged", err)
	}
	if _, err := sm.Save(ctx, got, NoRev); !errors.Is(err, ErrManifestChanged) {
		t.Fatalf("save as new over an existing manifest: %v, want ErrManifestChanged", err)
	}
	if m, r, err := sm.Load(ctx); err != nil || r != rev2 || m.Current.ID != "3333" {
		t.Fatalf("after the refused saves: %+v %q %v", m, r, err)
	}

	// A manifest file appearing beside the store's is refused, not merged.
	if _, err := NewFileManifest(dir).Save(ctx, old, NoRev); err != nil {
		t.Fatal(err)
	}
	if err := ImportManifestFile(ctx, st, dir); err == nil || !strings.Contains(err.Error(), "so does the store") {
		t.Fatalf("a second manifest: %v", err)
	}
}
