package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
)

// presetKey is an admin access key given by the user (dev mode's
// environment, or an admin credentials file) rather than made by kmsd.
type presetKey struct {
	id     string
	secret config.Secret
	from   string // where it came from, for the banner
}

// adminPreset returns the preset admin access key of cfg, or nil when
// kmsd makes a fresh one: from KMSD_DEV_ACCESS_KEY_ID (or
// --dev-access-key-id) and KMSD_DEV_SECRET_ACCESS_KEY in dev mode, or
// from the admin credentials file (which must be private). The secret is
// never read from a flag.
func adminPreset(cfg config.Config) (*presetKey, error) {
	var p *presetKey
	switch {
	case cfg.DevAccessKeyID != "":
		p = &presetKey{id: cfg.DevAccessKeyID, secret: cfg.DevSecretAccessKey, from: "KMSD_DEV_SECRET_ACCESS_KEY"}
	case cfg.AdminCredentialsFile != "":
		id, secret, err := config.ReadAdminCredentials(cfg.AdminCredentialsFile)
		if err != nil {
			return nil, err
		}
		p = &presetKey{id: id, secret: secret, from: cfg.AdminCredentialsFile}
	default:
		return nil, nil
	}
	if err := iam.ValidateAccessKeyID(p.id); err != nil {
		return nil, fmt.Errorf("admin access key (%s): %w", p.from, err)
	}
	if err := iam.ValidateSecretAccessKey(p.secret.Reveal()); err != nil {
		return nil, fmt.Errorf("admin access key %s (%s): %w", p.id, p.from, err)
	}
	return p, nil
}

// devDataDir gives dev mode without a named data folder a new temporary
// one (mode 0700), and returns the function that removes it when kmsd
// stops.
func devDataDir(cfg *config.Config) (cleanup func(), err error) {
	if !cfg.Dev || cfg.DataDir != "" {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "kmsd-dev-")
	if err != nil {
		return nil, fmt.Errorf("dev mode: create a temporary data folder: %w", err)
	}
	cfg.DataDir = dir
	return func() { os.RemoveAll(dir) }, nil
}

// ensureAdmin makes sure the admin user has its access key: the preset
// one when there is one (created if absent, left alone if present with
// that secret: every start, idempotent), else, on the first start of the
// account, a fresh one whose secret is returned to be shown once.
// created says whether this call made the key (which is then audited).
func ensureAdmin(ctx context.Context, dir *iam.Directory, account string, preset *presetKey) (akid, secret string, created bool, err error) {
	if preset == nil {
		akid, secret, err = bootstrapAdmin(ctx, dir, account)
		return akid, secret, akid != "", err
	}
	created, err = dir.EnsureAccessKey(ctx, account, iam.UserARN(account, iam.AdminUser), preset.id, preset.secret.Reveal())
	if err != nil {
		return "", "", false, fmt.Errorf("admin access key from %s: %w", preset.from, err)
	}
	return preset.id, "", created, nil
}

// devWarning is the first thing a dev-mode kmsd prints.
func devWarning(w io.Writer, cfg config.Config, temporary bool) {
	where := "in " + cfg.DataDir
	if temporary {
		where = "in the temporary folder " + cfg.DataDir + ", DELETED when kmsd stops"
	}
	fmt.Fprintf(w, `==========================================================================
 kmsd is running in DEV MODE. It is NOT FOR PRODUCTION.
 Its data lives %s.
 Use it for development, tests and CI only.
==========================================================================

`, where)
}
