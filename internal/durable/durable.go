// Package durable writes files that must survive a crash whole (root keys,
// the audit signing key, the roots manifest) and opens files that hold a
// secret only when nobody but their owner can reach them.
//
// A write goes to a fresh temporary file next to its target, is fsynced,
// then takes the target's name (a hard link, or a rename), and the
// directory is fsynced: a reader or a crash sees the whole old file or the
// whole new one, never a part.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// OpenPrivate opens a file that holds a secret (a root key, a wrapped
// signing key) for reading, and refuses it unless it is a regular file that
// neither group nor others may access. The checks apply to the opened file
// itself (Stat on the descriptor), not to whatever the path names later.
// what names the file in errors.
func OpenPrivate(path, what string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", what, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	// Windows has no Unix permission bits; elsewhere a secret readable by
	// others is as good as published, and one writable by others could be
	// swapped for one the attacker knows.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		f.Close()
		return nil, nil, fmt.Errorf("%s %s has mode %04o, which lets group or others access it; run: chmod 600 %s", what, path, perm, path)
	}
	return f, fi, nil
}

// CreateExclusive creates path holding data with mode: written and fsynced
// under a temporary name, then hard-linked to path, which fails with an
// error wrapping fs.ErrExist rather than replace an existing file; then the
// directory is fsynced. So path appears only complete, never replaces
// another file (two processes racing to create a root key agree on one),
// and survives a crash once this returns.
func CreateExclusive(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Link)
}

// Replace replaces path with data and mode atomically (temporary file,
// fsync, rename, directory fsync): a reader or a crash sees the old
// content or the new one, never a mix.
func Replace(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, os.Rename)
}

// write writes data to a fresh temporary file next to path, fsyncs it,
// gives it its name with place (link or rename), and fsyncs the directory.
func write(path string, data []byte, mode os.FileMode, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	// os.CreateTemp opens with O_CREATE|O_EXCL and mode 0600: a fresh file
	// nobody else can have opened, never an existing one.
	tmp, err := os.CreateTemp(dir, ".kmsd-*.tmp")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	// The temporary name holds a copy of the data until it is removed
	// (after a rename it no longer exists, and Remove fails harmlessly).
	defer os.Remove(tmpName)
	// Make the mode exactly what is asked, whatever the umask.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing: %w", err)
	}
	// The data must be on disk before its name appears: a root key lost in
	// a crash makes every wrapped secret unrecoverable.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing: %w", err)
	}
	if err := place(tmpName, path); err != nil {
		return err
	}
	if err := os.Remove(tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the temporary file: %w", err)
	}
	// Persist the new directory entry (and the removal of the temporary
	// one); without this a crash could lose the file after it was used.
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("syncing the directory: %w", err)
	}
	return nil
}

// SyncDir fsyncs a directory so that entries created or removed in it are
// durable.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be fsynced there; NTFS journals metadata
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
