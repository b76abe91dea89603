package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/seed"
)

// loadSeed returns the seed of cfg: its seed section, or the seed file it
// names; nil when there is none. A seed file of local-kms is converted
// as kmsd import local-kms would (its notes go to notes, if not nil), so
// that a team moving from local-kms starts kmsd on the file it has.
func loadSeed(cfg config.Config, notes func(string)) (*config.Seed, error) {
	if cfg.SeedFile == "" {
		return cfg.Seed, nil
	}
	b, err := os.ReadFile(cfg.SeedFile)
	if err != nil {
		return nil, fmt.Errorf("read seed file: %w", err)
	}
	defer clear(b)
	if !seed.IsLocalKMS(b) {
		return config.ParseSeed(b, cfg.SeedFile)
	}
	converted, ns, err := seed.FromLocalKMS(b)
	if err != nil {
		return nil, fmt.Errorf("seed file %s: %w", cfg.SeedFile, err)
	}
	defer clear(converted)
	if notes != nil {
		for _, n := range ns {
			notes(n)
		}
	}
	return config.ParseSeed(converted, cfg.SeedFile)
}

// applySeed applies the seed of cfg, if any, through the service's
// server as the admin user of the default account in the default
// Region: every step is a request, authorized and audited (userAgent
// kmsd-seed).
func (a *service) applySeed(ctx context.Context, cfg config.Config, dir *iam.Directory) error {
	s, err := loadSeed(cfg, func(note string) { a.log.Warn("local-kms seed file converted", "file", cfg.SeedFile, "note", note) })
	if err != nil || s == nil {
		return err
	}
	arn := iam.UserARN(cfg.Account, iam.AdminUser)
	id, ok, err := dir.Identities().Lookup(arn)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if !ok {
		return fmt.Errorf("seed: the admin user %s is not declared", arn)
	}
	caller := kms.Caller{Scope: kms.ScopeOf(cfg.Region, cfg.Account),
		ARN: arn, UserName: iam.AdminUser, Identity: id}
	r, err := seed.Apply(ctx, s, a.node.Handler, caller)
	if err != nil {
		return fmt.Errorf("seed (%s; kmsd did not start; what was applied before the error stays, audited): %w", r, err)
	}
	a.seeded = r.String()
	a.log.Info("seed applied", "keys_created", r.Keys, "materials_imported", r.Imported, "aliases_created", r.Aliases, "grants_created", r.Grants, "updates", r.Updated, "unchanged", r.Unchanged)
	return nil
}
