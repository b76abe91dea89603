package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
)

const rootUsage = `usage: kmsd root <command> [flags]

commands:
  rotate [--resume] [--batch N] [--max N] [--config FILE] [--data-dir DIR]
        create a new root key of the current kind (a new root key file, or a
        new key in the PKCS#11 token) and rewrap every stored secret under
        it. An interrupted rewrap, or secrets a running kmsd wrapped under
        the old root before it noticed the new one, make the next run resume
        instead (--resume: only resume, never make a new root)
  migrate --to pkcs11|file [--resume] [--batch N] [--max N] [--config FILE] [--data-dir DIR]
        the same, with a new root of the other kind (the PKCS#11 token is the
        one keystore.pkcs11 configures)
  status [--config FILE] [--data-dir DIR]
        list the roots and how many wrapped secrets each one holds
  retire ID [--config FILE] [--data-dir DIR]
        drop a kept root that nothing depends on any more from the roots
        manifest (its file or HSM key is left in place)

rotate, migrate and retire are recorded in the data folder's audit log (at
once, or by the running kmsd serve within seconds).

On a sealed data folder (kmsd init), rotate, migrate and retire need the
unseal material (the roots wrap the keys, and the audit signing key):
--passphrase-file FILE, or --share-file FILE once per share (as many as the
threshold), or, on a terminal, they ask for it. A new file root is sealed
under the same seal key. status needs none.
`

// rootMain runs `kmsd root ...`, next to a running kmsd if need be: the
// store allows a second process, every rewrap is a compare and set, and
// kmsd serve follows the roots manifest.
func rootMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c, err := newCommand("root", rootUsage, []string{"rotate", "migrate", "status", "retire"}, args, stdout, stderr)
	if c == nil || err != nil {
		return err
	}
	cmd, fs := c.name, c.flags
	var batch, maxN *int
	var resume *bool
	var to *string
	var material unsealMaterial
	material.addSealedFlags(fs)
	if cmd == "rotate" || cmd == "migrate" {
		batch = fs.Int("batch", 100, "secrets listed per store query")
		resume = fs.Bool("resume", false, "only finish rewrapping under the current root; never create a new one")
		maxN = fs.Int("max", 0, "rewrap at most this many secrets in this run (0: all); run again to go on")
		if cmd == "migrate" {
			to = fs.String("to", "", "kind of the new root: pkcs11 or file")
		}
	}
	// Allow the retire argument before or after the flags.
	var positional []string
	for args := c.args; ; {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	wantArgs := 0
	if cmd == "retire" {
		wantArgs = 1
	}
	if len(positional) != wantArgs {
		return fmt.Errorf("kmsd root %s: unexpected arguments %v", cmd, positional)
	}
	cfg, err := c.dirs.load(getenv)
	if err != nil {
		return err
	}
	if cmd == "migrate" && *to != rootmgr.KindFile && *to != rootmgr.KindPKCS11 {
		return fmt.Errorf("kmsd root migrate: --to must be pkcs11 or file, not %q", *to)
	}
	f, err := openDataFolder(ctx, cfg, getenv, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer f.close()
	if cmd != "status" {
		unlock, err := rootmgr.Lock(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	// On a sealed folder, rotate and migrate need the roots themselves,
	// so the unseal material; status and retire only the root ids (in
	// the manifest, or the sealed file's header), unless it is given.
	var unseal rootmgr.UnsealFunc
	if cmd == "rotate" || cmd == "migrate" || !material.empty() {
		unseal = onceUnseal(&material, stderr)
	}
	// The commands that change the roots record it in the audit log,
	// whose signing key the roots wrap (on a sealed folder, retire too
	// needs the unseal material). It is loaded before the change, so that
	// a command that cannot record its change makes none: here for
	// retire, by the rotation's Prepare for rotate and migrate.
	var oa *operatorAudit
	if cmd == "retire" {
		if unseal == nil && f.sealed != nil {
			unseal = onceUnseal(&material, stderr)
		}
		if oa, err = newOperatorAudit(ctx, f, unseal, stderr); err != nil {
			return fmt.Errorf("kmsd root %s: %w", cmd, err)
		}
		defer oa.close()
	}

	switch cmd {
	case "status":
		st, err := f.roots.Status(ctx, f.st, unseal)
		if err != nil {
			return fmt.Errorf("kmsd root status: %w", err)
		}
		printRootStatus(stdout, st)
		return nil
	case "retire":
		r, err := f.roots.Retire(ctx, f.st, positional[0], unseal)
		if err != nil {
			return fmt.Errorf("kmsd root retire: %w", err)
		}
		rec := audit.OperatorRecord("RetireRoot", cfg.Region, map[string]any{"rootId": r.ID})
		rec.ResponseElements = map[string]any{"retired": r.String()}
		if err := oa.record(ctx, rec, stderr); err != nil {
			return fmt.Errorf("kmsd root retire: root %s was retired, but %w", r.ID, err)
		}
		where := "file " + filepath.Join(cfg.DataDir, r.File)
		if r.Kind == rootmgr.KindPKCS11 {
			where = fmt.Sprintf("PKCS#11 key %q", r.Label)
		}
		fmt.Fprintf(stdout, "Root %s retired: kmsd no longer loads it. Its %s is left in place: keep it with your backups for as long as a backup of the store from before the rotation may be restored, then destroy it.\n", r.ID, where)
		return nil
	}

	opts := rootmgr.RotateOptions{Resume: *resume, Unseal: unseal, Prepare: func(ctx context.Context, ks keystore.Keystore) (err error) {
		oa, err = operatorAuditWith(ctx, f, ks, stderr)
		return err
	}}
	if cmd == "migrate" {
		opts.To = *to
	}
	rot, err := f.roots.StartRotation(ctx, f.st, opts)
	if err != nil {
		return fmt.Errorf("kmsd root %s: %w", cmd, err)
	}
	defer rot.Close()
	switch {
	case rot.Idle:
		// Nothing changed: nothing to record.
		fmt.Fprintln(stdout, "Nothing to resume: every stored secret is wrapped under the current root.")
		return printRotationStatus(ctx, stdout, rot)
	case rot.Resumed:
		fmt.Fprintf(stdout, "Resuming the rewrap under root %s.\n", rot.Current)
	default:
		fmt.Fprintf(stdout, "New root %s; the previous root %s is kept until nothing depends on it.\n", rot.Current, rot.Previous)
	}
	n, finished, err := rot.Rewrap(ctx, *batch, *maxN)
	fmt.Fprintf(stdout, "Rewrapped %d secrets under root %s.\n", n, rot.Current.ID)
	// A new root, a rewrap (finished or not): each changed the store.
	event := "RotateRoot"
	params := map[string]any{"resume": *resume, "batch": *batch, "max": *maxN}
	if cmd == "migrate" {
		event, params["to"] = "MigrateRoot", *to
	}
	rec := audit.OperatorRecord(event, cfg.Region, params)
	rec.ResponseElements = map[string]any{"currentRoot": rot.Current.String(), "newRoot": !rot.Resumed, "rewrapped": n, "finished": finished}
	if !rot.Resumed {
		rec.ResponseElements["previousRoot"] = rot.Previous.String()
	}
	if err != nil {
		rec.ErrorCode, rec.ErrorMessage = "RewrapFailed", err.Error()
	}
	if rerr := oa.record(ctx, rec, stderr); rerr != nil {
		return fmt.Errorf("kmsd root %s: %w", cmd, errors.Join(err, rerr))
	}
	if err != nil {
		return fmt.Errorf("kmsd root %s: %w (run it again to resume)", cmd, err)
	}
	if finished {
		fmt.Fprintln(stdout, "Every stored secret is wrapped under the current root.")
	} else {
		fmt.Fprintln(stdout, "Some secrets are still wrapped under older roots: run kmsd root rotate --resume to go on.")
	}
	return printRotationStatus(ctx, stdout, rot)
}

func printRotationStatus(ctx context.Context, w io.Writer, rot *rootmgr.Rotation) error {
	st, err := rot.Status(ctx)
	if err != nil {
		return err
	}
	printRootStatus(w, st)
	return nil
}

func printRootStatus(w io.Writer, st rootmgr.Status) {
	fmt.Fprintf(w, "current root %s: %d secrets\n", st.Current.Root, st.Current.Secrets)
	for _, k := range st.Kept {
		if k.Secrets > 0 {
			fmt.Fprintf(w, "kept root %s: %d secrets still depend on it\n", k.Root, k.Secrets)
		} else {
			fmt.Fprintf(w, "kept root %s: nothing depends on it; retire it with: kmsd root retire %s\n", k.Root, k.Root.ID)
		}
	}
	for _, u := range st.Unknown {
		fmt.Fprintf(w, "UNKNOWN root %s (%d secrets): not in the roots manifest, these secrets cannot be unwrapped\n", u.Root.ID, u.Secrets)
	}
	if st.Finished {
		fmt.Fprintln(w, "rewrap: finished")
	} else {
		fmt.Fprintln(w, "rewrap: not finished (kmsd root rotate --resume finishes it)")
	}
}
