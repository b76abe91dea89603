//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockRoots takes an exclusive lock on the data folder's roots manifest
// for one kmsd root command, so that two rotations never run at once
// (each would make its own new root and the manifest would keep only one).
func lockRoots(dataDir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dataDir, rootsFile+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("roots lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another kmsd root command is running on %s (roots lock: %w)", dataDir, err)
	}
	return func() { f.Close() }, nil
}
