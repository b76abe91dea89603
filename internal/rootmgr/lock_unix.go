//go:build unix

package rootmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive lock on the manifest for one command that
// changes the roots (kmsd root, kmsd init), so that two rotations never
// run at once: each would make its own new root and the manifest would
// keep only one. unlock releases it.
func (f *FileManifest) Lock() (unlock func(), err error) {
	file, err := os.OpenFile(f.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("roots lock: %w", err)
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		file.Close()
		return nil, fmt.Errorf("another kmsd root command is running on %s (roots lock: %w)", filepath.Dir(f.path), err)
	}
	return func() { file.Close() }, nil
}
