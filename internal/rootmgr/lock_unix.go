//go:build unix

package rootmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive lock on the roots of the data folder dataDir
// for one command that changes them (kmsd root, kmsd init), so that two
// commands on one machine never interleave. (Across machines sharing a
// store, the manifest's compare and set refuses the second writer.)
// unlock releases it.
func Lock(dataDir string) (unlock func(), err error) {
	file, err := os.OpenFile(filepath.Join(dataDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("roots lock: %w", err)
	}
	if err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		file.Close()
		return nil, fmt.Errorf("another kmsd root command is running on %s (roots lock: %w)", dataDir, err)
	}
	return func() { file.Close() }, nil
}
