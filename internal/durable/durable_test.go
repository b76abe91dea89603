package durable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// onlyFile checks that dir holds exactly name: no temporary file is left.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only %s", names, name)
	}
}

func checkFile(t *testing.T, path string, want []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", path, got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != mode {
		t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), mode)
	}
}

func TestCreateExclusive(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o644, 0o400} {
		dir := t.TempDir()
		path := filepath.Join(dir, "secret")
		if err := CreateExclusive(path, []byte("first"), mode); err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		checkFile(t, path, []byte("first"), mode)
		onlyFile(t, dir, "secret")

		// An existing file is never replaced.
		err := CreateExclusive(path, []byte("second"), 0o600)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("creating over an existing file: %v, want fs.ErrExist", err)
		}
		checkFile(t, path, []byte("first"), mode)
		onlyFile(t, dir, "secret")
	}
}

// Racing creators agree on one file: exactly one wins, the others see
// fs.ErrExist and the winner's content is what stays.
func TestCreateExclusiveConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root.key")
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = CreateExclusive(path, []byte(fmt.Sprint("writer ", i)), 0o600) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer created the file")
	}
	checkFile(t, path, []byte(fmt.Sprint("writer ", winner)), 0o600)
	onlyFile(t, dir, "root.key")
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "roots.json")
	if err := Replace(path, []byte("v1"), 0o600); err != nil {
		t.Fatalf("creating: %v", err)
	}
	checkFile(t, path, []byte("v1"), 0o600)
	// A reader holding the old file keeps the old content: the new one is
	// a new file, renamed into place.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := Replace(path, []byte("version 2"), 0o640); err != nil {
		t.Fatalf("replacing: %v", err)
	}
	checkFile(t, path, []byte("version 2"), 0o640)
	onlyFile(t, dir, "roots.json")
	if b, err := io.ReadAll(old); err != nil || string(b) != "v1" {
		t.Fatalf("the old file read %q, %v after the replace, want v1", b, err)
	}
}

func TestWriteInMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "file")
	if err := CreateExclusive(path, []byte("x"), 0o600); err == nil {
		t.Error("CreateExclusive succeeded in a missing directory")
	}
	if err := Replace(path, []byte("x"), 0o600); err == nil {
		t.Error("Replace succeeded in a missing directory")
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("SyncDir of a missing directory: %v", err)
		}
	}
}

func TestOpenPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		f, fi, err := OpenPrivate(path, "test secret")
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "s3cret" || fi.Size() != 6 {
			t.Fatalf("mode %04o: read %q (size %d), %v", mode, b, fi.Size(), err)
		}
	}

	if runtime.GOOS != "windows" {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o610, 0o601, 0o777} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := OpenPrivate(path, "test secret")
			if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), "test secret") {
				t.Errorf("mode %04o: %v, want an error naming the file and saying chmod 600", mode, err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("mode %04o: the error shows the content: %v", mode, err)
			}
		}
	}
	if _, _, err := OpenPrivate(dir, "test secret"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if _, _, err := OpenPrivate(filepath.Join(dir, "missing"), "test secret"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
}
