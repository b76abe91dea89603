package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/rootmgr"
)

const iamUsage = `usage: kmsd iam <command> [flags]

commands:
  create-access-key (--user NAME | --role NAME [--session NAME]) [--account ID] [--config FILE] [--data-dir DIR]
        create an access key for a user (or a session of a role) declared in
        the iam section of the configuration, and print it once; a running
        kmsd accepts it at once. The creation is recorded in the data
        folder's audit log (the secret never is)
  list-access-keys [--account ID] [--config FILE] [--data-dir DIR]
        list the access keys of an account (ids and principals, no secrets)
  check [--config FILE]
        compile the iam section (every identity policy) and list the principals
`

// iamMain runs `kmsd iam ...`. It opens the data folder next to a running
// kmsd if need be: the SQLite store allows a second process.
func iamMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c, err := newCommand("iam", iamUsage, []string{"create-access-key", "list-access-keys", "check"}, args, stdout, stderr)
	if c == nil || err != nil {
		return err
	}
	cmd, fs := c.name, c.flags
	account := fs.String("account", "", "account of the principal (default: the configured account)")
	var user, role, session *string
	if cmd == "create-access-key" {
		user = fs.String("user", "", "IAM user name")
		role = fs.String("role", "", "IAM role name")
		session = fs.String("session", "kmsd", "role session name (with --role)")
	}
	if err := fs.Parse(c.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kmsd iam %s: unexpected arguments %v", cmd, fs.Args())
	}
	cfg, err := c.dirs.load(getenv)
	if err != nil {
		return err
	}
	if *account == "" {
		*account = cfg.Account
	}
	ids, err := iam.Compile(cfg.IAM, cfg.Account)
	if err != nil {
		return fmt.Errorf("iam configuration: %w", err)
	}
	if cmd == "check" {
		return printIdentities(stdout, cfg, ids)
	}

	// The roots of trust kmsd serve uses: a secret wrapped under another
	// root would never unwrap.
	f, err := openDataFolder(ctx, cfg, getenv, slog.New(slog.DiscardHandler), true)
	if err != nil {
		return err
	}
	defer f.close()
	if f.ks == nil {
		return fmt.Errorf("kmsd iam: %w (%s): access key secrets are wrapped by the root, and only kmsd serve (unsealed by kmsd unseal) opens it", rootmgr.ErrSealed, f.sealed.Describe())
	}
	dir := iam.NewDirectory(f.st, f.ks, nil)

	switch cmd {
	case "list-access-keys":
		keys, err := f.st.ListAccessKeys(ctx, *account)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			if _, ok, _ := ids.Lookup(k.PrincipalARN); !ok {
				state = "principal not declared: refused"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", k.ID, k.PrincipalARN, k.Created.Format("2006-01-02T15:04:05Z"), state)
		}
		return nil
	default: // create-access-key
		arn, err := ids.PrincipalARN(*account, *user, *role, *session)
		if err != nil {
			return err
		}
		// The record is signed with the audit signing key: loaded first,
		// so that a command that cannot record its change makes none.
		oa, err := newOperatorAudit(ctx, f, nil, stderr)
		if err != nil {
			return fmt.Errorf("kmsd iam create-access-key: %w", err)
		}
		defer oa.close()
		akid, secret, err := dir.CreateAccessKey(ctx, *account, arn)
		if err != nil {
			return err
		}
		// The access key id and its principal, never the secret.
		rec := audit.OperatorRecord("CreateAccessKey", cfg.Region, map[string]any{"principalArn": arn, "account": *account})
		rec.ResponseElements = map[string]any{"accessKeyId": akid}
		rec.RecipientAccountID = *account
		if err := oa.record(ctx, rec, stderr); err != nil {
			// Its secret is never shown, so no one can use the key that
			// has no record.
			return fmt.Errorf("kmsd iam create-access-key: access key %s was created but has no audit record (%w); its secret is not shown, so it cannot be used: run the command again once the audit log or the store works", akid, err)
		}
		fmt.Fprintf(stdout, "An access key was created for %s. Its secret is shown only this once:\n\n", arn)
		fmt.Fprintf(stdout, "export AWS_ACCESS_KEY_ID=%s\n", akid)
		fmt.Fprintf(stdout, "export AWS_SECRET_ACCESS_KEY=%s\n", secret)
		return nil
	}
}

func printIdentities(w io.Writer, cfg config.Config, ids *iam.Identities) error {
	fmt.Fprintf(w, "iam configuration OK (default account %s)\n", cfg.Account)
	for _, a := range cfg.IAM.Accounts {
		for _, u := range a.Users {
			fmt.Fprintf(w, "user %s: %d identity policies\n", iamARN(a.ID, "user", u), len(u.Policies))
		}
		for _, r := range a.Roles {
			fmt.Fprintf(w, "role %s: %d identity policies\n", iamARN(a.ID, "role", r), len(r.Policies))
		}
	}
	return nil
}

func iamARN(account, kind string, p config.IAMPrincipal) string {
	return awsarn.IAM(awsarn.Partition, account, kind, p.Path, p.Name)
}

// loadIdentities compiles the iam section of cfg into dir.
func loadIdentities(dir *iam.Directory, cfg config.Config) error {
	ids, err := iam.Compile(cfg.IAM, cfg.Account)
	if err != nil {
		return fmt.Errorf("iam configuration: %w", err)
	}
	dir.SetIdentities(ids)
	return nil
}

// identityReloader returns the SIGHUP reload of the iam section: the
// configuration is read again as at startup (args, environment, file); only
// its iam section is applied, with the account kmsd started with. On error
// the previous principals stay in force.
func identityReloader(dir *iam.Directory, started config.Config, args []string, getenv func(string) string, log *slog.Logger) func() error {
	return func() error {
		cfg, err := config.Load(args, getenv)
		if err != nil {
			return err
		}
		cfg.Account = started.Account
		if err := loadIdentities(dir, cfg); err != nil {
			return err
		}
		log.Debug("iam identities loaded", "accounts", strings.Join(dir.Identities().Accounts(), ","))
		return nil
	}
}

// reloader is one thing SIGHUP reloads.
type reloader struct {
	what   string
	reload func() error
}
