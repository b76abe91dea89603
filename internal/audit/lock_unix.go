//go:build unix

package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir's lock file, so that two
// processes never append to one log (they would fork its chain). Closing
// the returned file releases it; so does the process ending.
func lockDir(dir string) (io.Closer, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit: the log in %s: %w (locked %s)", dir, ErrLocked, path)
		}
		return nil, fmt.Errorf("audit: locking %s: %w", path, err)
	}
	return f, nil
}
