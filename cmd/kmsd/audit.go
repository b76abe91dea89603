package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store/backend"
)

const auditUsage = `usage: kmsd audit <command> [flags]

commands:
  verify        check the audit log's hash chain and signed digests, and that
                it reaches its anchor in the store and the digests kept off
                the machine (kmsd audit verify -h lists the flags)
  accept-reset  --reason TEXT: accept that the audit log no longer reaches its
                anchor (cut back, replaced by an older copy, lost), so that
                kmsd serve starts again; the acceptance is itself audited
`

// auditMain runs "kmsd audit …".
func auditMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("no audit command given")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr, getenv)
	case "accept-reset":
		return auditAcceptReset(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	default:
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("unknown audit command %q", args[0])
	}
}

const auditVerifyUsage = `usage: kmsd audit verify [flags] [FILE...]

Verifies the audit log: every record's place in the hash chain, every
digest's signature, and that the log ends with the digest kmsd writes when
it stops. Prints "OK: …" or the first problem found (file, line, record),
and exits non-zero on a problem.

With FILE arguments, verifies those files in the order given (for example
a copy of the log kmsd sent to stdout) instead of the log directory.

The log must also reach the points it is known to have reached: its anchor
in the data folder's store (moved on by kmsd serve after every digest), and
with --digests, every digest in that file (as audit.digest_file or
audit.digest_command kept them off the machine). A log that falls short
was cut back, replaced by an older copy, or removed.

flags:
`

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditVerifyUsage)
		fs.PrintDefaults()
	}
	dirs := addDataDirFlags(fs)
	dir := fs.String("dir", "", "the audit log directory (default DATA_DIR/"+audit.DirName+")")
	pubPath := fs.String("public-key", "", "the signing public key, PEM (default DATA_DIR/"+audit.PublicKeyFile+")")
	allowOpen := fs.Bool("allow-open", false, "accept a log that does not end with a close digest, as while kmsd is running; its unsigned records are reported as a warning")
	digests := fs.String("digests", "", "a file of the log's digests kept off the machine (audit.digest_file): the log must reach every one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) > 0 && *dir != "" {
		return errors.New("give either --dir or files, not both")
	}
	cfg, err := dirs.load(getenv)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = filepath.Join(cfg.DataDir, audit.DirName)
	}
	if *pubPath == "" {
		*pubPath = filepath.Join(cfg.DataDir, audit.PublicKeyFile)
	}
	pub, err := audit.ReadPublicKey(*pubPath)
	if err != nil {
		return err
	}
	var checkpoints []audit.Checkpoint
	if *digests != "" {
		if checkpoints, err = audit.ReadDigests(*digests, pub); err != nil {
			return err
		}
	}
	anchor, note, err := storeAnchor(ctx, storeConfig(cfg), pub)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(stdout, "note: %s\n", note)
	}
	if anchor != nil {
		checkpoints = append(checkpoints, *anchor)
	}

	var rep *audit.Report
	if len(files) > 0 {
		rep, err = audit.VerifyFiles(files, pub, checkpoints...)
	} else {
		rep, err = audit.Verify(*dir, pub, checkpoints...)
	}
	var p *audit.Problem
	if err != nil && !errors.As(err, &p) {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}
	if p != nil && !(p.Kind == audit.ProblemUnclosed && *allowOpen) {
		fmt.Fprintf(stdout, "FAILED: %v\n", p)
		if rep.Records > 0 && p.Kind != audit.ProblemUnclosed {
			fmt.Fprintf(stdout, "(the %s before it verified, through sequence %d)\n", plural(rep.Records, "record"), rep.LastSequence)
		}
		return errors.New("the audit log failed verification")
	}
	fmt.Fprintf(stdout, "OK: %s, %s, chain intact through sequence %d\n",
		plural(rep.Records, "record"), plural(uint64(rep.Digests), "digest"), rep.LastSequence)
	if anchor != nil || *digests != "" {
		fmt.Fprintf(stdout, "the log reaches %s\n", reached(anchor, *digests))
	}
	if p != nil {
		fmt.Fprintf(stdout, "warning: %s\n", p.Message)
	}
	return nil
}

func plural(n uint64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// reached names what the log was checked against, for verify's report.
func reached(anchor *audit.Checkpoint, digests string) string {
	var what []string
	if anchor != nil {
		what = append(what, fmt.Sprintf("its anchor in the store (record %d)", anchor.Sequence))
	}
	if digests != "" {
		what = append(what, "every digest in "+digests)
	}
	if len(what) == 2 {
		return what[0] + " and " + what[1]
	}
	return what[0]
}

// storeAnchor returns the anchor of the log signed by pub, from the store
// of the data folder, as a checkpoint. When there is no store to read (an
// SQLite database is opened only when it has content: opening creates
// it), or it holds no anchor for this log, it returns a note saying the
// anchor was not checked.
func storeAnchor(ctx context.Context, bcfg backend.Config, pub ed25519.PublicKey) (*audit.Checkpoint, string, error) {
	if bcfg.InDataFolder() {
		fi, err := os.Stat(filepath.Join(bcfg.DataDir, backend.DatabaseFile))
		if err != nil || fi.Size() == 0 {
			return nil, fmt.Sprintf("no store in %s: the log's anchor was not checked", bcfg.DataDir), nil
		}
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		return nil, "", fmt.Errorf("open store (for the log's anchor): %w", err)
	}
	defer st.Close()
	a, _, err := storeAnchors{st}.LoadAnchor(ctx, audit.KeyID(pub))
	if errors.Is(err, audit.ErrNoAnchor) {
		return nil, fmt.Sprintf("the store in %s holds no anchor for log %s: the log's anchor was not checked", bcfg.DataDir, audit.KeyID(pub)), nil
	}
	if err != nil {
		return nil, "", err
	}
	return &audit.Checkpoint{Sequence: a.Sequence, Hash: a.Hash, Source: fmt.Sprintf("the log's anchor in the store (set %s)", a.Time)}, "", nil
}

const auditAcceptResetUsage = `usage: kmsd audit accept-reset --reason TEXT [--config FILE] [--data-dir DIR] [--passphrase-file FILE | --share-file FILE...]

kmsd serve refuses an audit log that no longer reaches its anchor in the
store: records were removed from its end, it was replaced by an older copy,
or its folder was removed. Restore it from a backup if you can. If the
missing records are lost for good, this command accepts that: with kmsd
stopped, it appends a record of the acceptance to the log as it is (naming
the anchor it replaces, the operator and the reason), and moves the anchor
to it, so that kmsd serve starts again. Verification of the log then goes
on from there; the records lost stay lost.

On a sealed data folder it needs the unseal material (the signing key is
wrapped by the root).

flags:
`

// auditAcceptReset runs kmsd audit accept-reset.
func auditAcceptReset(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("audit accept-reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditAcceptResetUsage)
		fs.PrintDefaults()
	}
	dirs := addDataDirFlags(fs)
	reason := fs.String("reason", "", "why the loss is accepted (recorded in the log)")
	var material unsealMaterial
	fs.StringVar(&material.passphraseFile, "passphrase-file", "", "on a sealed data folder: file holding the passphrase (mode 0600)")
	fs.Var(&material.shareFiles, "share-file", "on a sealed data folder: file holding one Shamir share (mode 0600); repeat it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kmsd audit accept-reset: unexpected arguments %v", fs.Args())
	}
	if *reason == "" {
		return errors.New("kmsd audit accept-reset: give --reason: it is recorded with the acceptance")
	}
	cfg, err := dirs.load(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := checkDataFolder(ctx, cfg, true)
	if err != nil {
		return fmt.Errorf("kmsd audit accept-reset: %w", err)
	}
	defer f.close()
	if f.kind != existingStart {
		return fmt.Errorf("kmsd audit accept-reset: data folder %s has no audit log in use: there is nothing to accept", cfg.DataDir)
	}
	if err := f.open(ctx, getenv, log, true); err != nil {
		return fmt.Errorf("kmsd audit accept-reset: %w", err)
	}
	if f.ks == nil {
		key, err := material.localKey(*f.sealed, stderr)
		if err != nil {
			return fmt.Errorf("kmsd audit accept-reset: %w", err)
		}
		if f.ks, err = f.roots.OpenLiveRing(ctx, key, log); err != nil {
			return fmt.Errorf("kmsd audit accept-reset: %w", err)
		}
	}
	signer, err := audit.LoadSigningKey(ctx, filepath.Join(cfg.DataDir, audit.SigningKeyFile), f.ks)
	if err != nil {
		return fmt.Errorf("kmsd audit accept-reset: %w", err)
	}
	rec := operatorRecord("AcceptAuditLogReset", cfg.Region, map[string]any{"reason": *reason})
	prev, err := audit.AcceptReset(ctx, auditOptions(cfg, signer, f.st, log), rec)
	if err != nil {
		return fmt.Errorf("kmsd audit accept-reset: %w", err)
	}
	fmt.Fprintf(stdout, "Accepted: the audit log no longer holds what its anchor named (record %d, signed %s).\nThe acceptance is record %d of the log, and the anchor now names it; kmsd serve starts again.\n", prev.Sequence, prev.Time, rec.Sequence)
	return nil
}

// operatorRecord is the audit record of a command an operator ran on the
// machine (not a request): who ran it, where, with what parameters.
func operatorRecord(event, region string, params map[string]any) *audit.Record {
	rec := &audit.Record{
		EventName:         event,
		EventSource:       "kmsd",
		EventType:         "KmsdOperatorAction",
		AWSRegion:         region,
		UserIdentity:      audit.UserIdentity{Type: "Operator"},
		RequestParameters: params,
	}
	if u, err := user.Current(); err == nil {
		rec.UserIdentity.UserName = u.Username
		rec.UserIdentity.PrincipalID = u.Uid
	}
	if h, err := os.Hostname(); err == nil {
		rec.UserAgent = "kmsd on " + h
	}
	return rec
}
