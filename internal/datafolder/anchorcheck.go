package datafolder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
)

// CheckLogAnchor checks, before kmsd writes anything (or starts sealed),
// that the audit log of the data folder dir reaches its anchor in the
// store, with the public key alone (audit.Open checks it again). A log
// with no anchor is refused when the store has its installation record
// (installed): every log started by this kmsd has one; without it, the
// log was kept by an earlier kmsd and is anchored when it opens.
func CheckLogAnchor(ctx context.Context, st store.Settings, dir string, installed bool) error {
	pub, err := audit.ReadPublicKey(filepath.Join(dir, audit.PublicKeyFile))
	if err != nil {
		return err
	}
	a, _, err := AnchorsIn(st).LoadAnchor(ctx, audit.KeyID(pub))
	switch {
	case errors.Is(err, audit.ErrNoAnchor):
		if installed {
			return fmt.Errorf("the audit log of %s (signing key %s) has no anchor in the store, which every log started by this kmsd has: the anchor was removed, or the log and its signing key were replaced. kmsd will not start (it has written nothing)", dir, audit.KeyID(pub))
		}
		return nil
	case err != nil:
		return err
	}
	if err := audit.CheckAnchor(filepath.Join(dir, audit.DirName), a); err != nil {
		return BehindHint(err, dir)
	}
	return nil
}

// BehindHint adds what the operator can do to an error of a log that
// does not reach its anchor.
func BehindHint(err error, dataDir string) error {
	if !errors.Is(err, audit.ErrBehindAnchor) {
		return err
	}
	return fmt.Errorf("%w. kmsd will not start on it (it has written nothing). Restore the audit log from your backup; if the missing records are lost for good, accept that with kmsd audit accept-reset --data-dir %s --reason TEXT (the acceptance is itself audited)", err, dataDir)
}
