package keystore

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// OpenPrivateFile opens a file that holds a secret (a root key, a wrapped
// signing key) for reading, and refuses it unless it is a regular file that
// neither group nor others may access. The checks apply to the opened file
// itself (Stat on the descriptor), not to whatever the path names later.
// what names the file in errors.
func OpenPrivateFile(path, what string) (*os.File, fs.FileInfo, error) {
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
