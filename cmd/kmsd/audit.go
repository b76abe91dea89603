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
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
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
       kmsd audit verify [--config FILE] --node DIR --node DIR ... [--allow-open] [--partial]

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

In a cluster each node keeps its own log, anchored in the shared store.
With --node (repeated, one per node: the node's data folder, or a copy of
its audit/ folder and audit-signing.pub), verify checks every node's log
against its own anchor in the store named by the configuration (--config,
KMSD_STORE, KMSD_STORE_DSN), prints one line per node and one summary, and
fails unless every log verifies and every log the store anchors was given
(--partial: only the logs given).

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
	var nodes stringList
	fs.Var(&nodes, "node", "a cluster node's folder holding its audit/ log and "+audit.PublicKeyFile+"; repeat it for every node")
	partial := fs.Bool("partial", false, "with --node: do not fail for logs the store anchors that no --node gave")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if len(nodes) > 0 {
		if len(files) > 0 || *dir != "" || *pubPath != "" || *digests != "" {
			return errors.New("--node verifies whole node folders: give neither --dir, --public-key, --digests nor files with it")
		}
		cfg, err := dirs.load(getenv)
		if err != nil {
			return err
		}
		return verifyNodes(ctx, storeConfig(cfg), nodes, *allowOpen, *partial, stdout)
	}
	if *partial {
		return errors.New("--partial goes with --node")
	}
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
	found, err := storeAnchor(ctx, storeConfig(cfg), pub)
	if err != nil {
		return err
	}
	if found.note != "" {
		fmt.Fprintf(stdout, "note: %s\n", found.note)
	}
	if found.problem != "" {
		fmt.Fprintf(stdout, "FAILED: %s\n", found.problem)
		return errors.New("the audit log failed verification")
	}
	if printKept(stdout, "", found.kept, found.keptBad) {
		return errors.New("the store keeps records for the audit log that are not its own")
	}
	anchor := found.anchor
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

// verifyNodes verifies the audit logs of a cluster's nodes, each in its
// own folder, against their anchors in the store bcfg names: every log
// must verify and reach its anchor, no log may be given twice, and unless
// partial every log the store anchors must be among them.
func verifyNodes(ctx context.Context, bcfg backend.Config, nodes []string, allowOpen, partial bool, stdout io.Writer) error {
	if bcfg.InDataFolder() {
		fi, err := os.Stat(filepath.Join(bcfg.DataDir, backend.DatabaseFile))
		if err != nil || fi.Size() == 0 {
			return fmt.Errorf("no store in %s: --node checks each log against its anchor in the cluster's store; name it (KMSD_STORE and KMSD_STORE_DSN, or --config)", bcfg.DataDir)
		}
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		return fmt.Errorf("open store (for the logs' anchors): %w", err)
	}
	defer st.Close()
	anchors := storeAnchors{st}

	var records uint64
	failed := 0
	seen := make(map[string]string) // log id -> the node folder that had it
	for _, node := range nodes {
		ok, n, id := verifyNode(ctx, anchors, node, allowOpen, seen, stdout)
		if !ok {
			failed++
		}
		records += n
		if id != "" {
			seen[id] = node
		}
	}

	// Logs the store anchors that no node gave: a node's log left out.
	settings, err := st.ListSettings(ctx)
	if err != nil {
		return fmt.Errorf("list the anchors in the store: %w", err)
	}
	var missing []string
	for _, s := range settings {
		id, ok := strings.CutPrefix(s.Name, store.SettingAuditAnchorPrefix)
		if !ok || seen[id] != "" {
			continue
		}
		a, _, err := anchors.LoadAnchor(ctx, id)
		if err != nil {
			return err
		}
		lost, err := loadLost(ctx, st, id)
		if err != nil {
			return err
		}
		if lost != nil {
			fmt.Fprintf(stdout, "note: log %s of node %q (anchored at record %d, %s) was declared lost on %s; the acceptance is in log %s (AcceptLostNodeLog)\n",
				id, lost.Node, a.Sequence, a.Time, lost.Time, lost.AcceptedBy)
			continue
		}
		missing = append(missing, fmt.Sprintf("log %s (anchored at record %d, %s)", id, a.Sequence, a.Time))
	}
	for _, m := range missing {
		if partial {
			fmt.Fprintf(stdout, "note: not given (--partial): %s\n", m)
		} else {
			fmt.Fprintf(stdout, "FAILED: the store anchors %s, which no --node holds: a node's log is missing from the set (give it, or --partial)\n", m)
		}
	}
	if failed > 0 || len(missing) > 0 && !partial {
		switch {
		case failed > 0 && len(missing) > 0 && !partial:
			fmt.Fprintf(stdout, "FAILED: %d of %s failed verification, and %s missing\n", failed, plural(uint64(len(nodes)), "node log"), plural(uint64(len(missing)), "anchored log is"))
		case failed > 0:
			fmt.Fprintf(stdout, "FAILED: %d of %s failed verification\n", failed, plural(uint64(len(nodes)), "node log"))
		default:
			fmt.Fprintf(stdout, "FAILED: %s verified, but %s missing\n", plural(uint64(len(nodes)), "node log"), plural(uint64(len(missing)), "anchored log is"))
		}
		return errors.New("the audit logs failed verification")
	}
	what := "every log the store anchors"
	if len(missing) > 0 {
		what = fmt.Sprintf("%d of the %d logs the store anchors", len(nodes), len(nodes)+len(missing))
	}
	fmt.Fprintf(stdout, "OK: %s, %s in all, each reaching its anchor in the store; %s\n", plural(uint64(len(nodes)), "node log"), plural(records, "record"), what)
	return nil
}

// verifyNode verifies the log in one node folder against its anchor and
// prints one line about it. It returns whether it verified, its records
// and its log id ("" when its public key cannot be read).
func verifyNode(ctx context.Context, anchors storeAnchors, node string, allowOpen bool, seen map[string]string, stdout io.Writer) (ok bool, records uint64, id string) {
	pub, err := audit.ReadPublicKey(filepath.Join(node, audit.PublicKeyFile))
	if err != nil {
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", node, err)
		return false, 0, ""
	}
	id = audit.KeyID(pub)
	if other := seen[id]; other != "" {
		fmt.Fprintf(stdout, "%s: FAILED: log %s was given already, by %s: each node has a log of its own\n", node, id, other)
		return false, 0, ""
	}
	a, _, err := anchors.LoadAnchor(ctx, id)
	if errors.Is(err, audit.ErrNoAnchor) {
		fmt.Fprintf(stdout, "%s: FAILED: the store holds no anchor for log %s: it is not the log of a node of this store, or its anchor was removed\n", node, id)
		return false, 0, id
	}
	if err != nil {
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", node, err)
		return false, 0, id
	}
	kept, bad, err := keptFor(ctx, anchors.st, pub)
	if err != nil {
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", node, err)
		return false, 0, id
	}
	if printKept(stdout, node+": ", kept, bad) {
		return false, 0, id
	}
	cp := audit.Checkpoint{Sequence: a.Sequence, Hash: a.Hash, Source: fmt.Sprintf("the log's anchor in the store (set %s)", a.Time)}
	rep, err := audit.Verify(filepath.Join(node, audit.DirName), pub, cp)
	var p *audit.Problem
	if err != nil && !errors.As(err, &p) {
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", node, err)
		return false, 0, id
	}
	if p != nil && p.Kind == audit.ProblemNoLog && a.Sequence == 0 {
		// A node that has served no request yet: its anchor is the
		// empty log's.
		fmt.Fprintf(stdout, "%s: OK: log %s, no record yet, as its anchor says\n", node, id)
		return true, 0, id
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "%s: note: %s\n", node, n)
	}
	if p != nil && !(p.Kind == audit.ProblemUnclosed && allowOpen) {
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", node, p)
		return false, rep.Records, id
	}
	fmt.Fprintf(stdout, "%s: OK: log %s, %s, %s, chain intact through sequence %d, reaches its anchor (record %d)\n",
		node, id, plural(rep.Records, "record"), plural(uint64(rep.Digests), "digest"), rep.LastSequence, a.Sequence)
	if p != nil {
		fmt.Fprintf(stdout, "%s: warning: %s\n", node, p.Message)
	}
	return true, rep.Records, id
}

// storeFindings is what the store says about one log, for verify.
type storeFindings struct {
	// anchor is the log's anchor as a checkpoint (nil: none to check).
	anchor *audit.Checkpoint
	// note says why the anchor was not checked, when it was not.
	note string
	// problem is set when the store shows the log is not the one it
	// anchors (verify fails).
	problem string
	// kept are the records kept in the store for this log (not yet in
	// it), and keptBad those that fail audit.CheckKept.
	kept    []audit.KeptInfo
	keptBad []error
}

// storeAnchor reads, from the store of the data folder, the anchor of the
// log signed by pub and the records kept for it. When there is no store
// to read (an SQLite database is opened only when it has content: opening
// creates it), the anchor is not checked (a note says so). When the store
// holds no anchor for this log but has been started on (its installation
// record) or anchors other logs, the log is not this store's — another
// folder's log and signing key put in place of its own, or its anchor
// removed — and verify fails, as kmsd serve refuses to start on it.
func storeAnchor(ctx context.Context, bcfg backend.Config, pub ed25519.PublicKey) (storeFindings, error) {
	var out storeFindings
	if bcfg.InDataFolder() {
		fi, err := os.Stat(filepath.Join(bcfg.DataDir, backend.DatabaseFile))
		if err != nil || fi.Size() == 0 {
			out.note = fmt.Sprintf("no store in %s: the log's anchor was not checked", bcfg.DataDir)
			return out, nil
		}
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		return out, fmt.Errorf("open store (for the log's anchor): %w", err)
	}
	defer st.Close()
	id := audit.KeyID(pub)
	if out.kept, out.keptBad, err = keptFor(ctx, st, pub); err != nil {
		return out, err
	}
	a, _, err := storeAnchors{st}.LoadAnchor(ctx, id)
	if errors.Is(err, audit.ErrNoAnchor) {
		inst, _, err := loadInstallation(ctx, st)
		if err != nil {
			return out, err
		}
		others, err := anchoredLogs(ctx, st)
		if err != nil {
			return out, err
		}
		if inst == nil && len(others) == 0 {
			// A store no kmsd that anchors its log has started on yet:
			// kmsd serve anchors the log at its next start.
			out.note = fmt.Sprintf("the store in %s holds no anchor for log %s, nor any record of a start: the log's anchor was not checked", bcfg.DataDir, id)
			return out, nil
		}
		why := "it has been started on (it holds its installation record)"
		if len(others) > 0 {
			why = fmt.Sprintf("it anchors %s (%s)", plural(uint64(len(others)), "other log"), strings.Join(others, ", "))
		}
		out.problem = fmt.Sprintf("the store holds no anchor for log %s (the signing key in the data folder), although %s: this log and its signing key are not the ones this store keeps (another folder's were put in their place), or the log's anchor was removed; kmsd serve refuses to start on it", id, why)
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.anchor = &audit.Checkpoint{Sequence: a.Sequence, Hash: a.Hash, Source: fmt.Sprintf("the log's anchor in the store (set %s)", a.Time)}
	return out, nil
}

// anchoredLogs lists the ids of the logs the store anchors.
func anchoredLogs(ctx context.Context, st store.Settings) ([]string, error) {
	settings, err := st.ListSettings(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the anchors in the store: %w", err)
	}
	var ids []string
	for _, s := range settings {
		if id, ok := strings.CutPrefix(s.Name, store.SettingAuditAnchorPrefix); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// keptFor reads the records kept in the store for the log signed by pub:
// those that are the log's own (signed by its key) and the errors of
// those that are not.
func keptFor(ctx context.Context, st store.Settings, pub ed25519.PublicKey) ([]audit.KeptInfo, []error, error) {
	id := audit.KeyID(pub)
	recs, _, err := storeOutbox{st}.LoadKept(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	var good []audit.KeptInfo
	var bad []error
	for _, k := range recs {
		info, err := audit.CheckKept(pub, id, k)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		good = append(good, info)
	}
	return good, bad, nil
}

// printKept reports the records kept in the store for a log, with prefix
// before each line. It returns whether any is not the log's own.
func printKept(w io.Writer, prefix string, kept []audit.KeptInfo, bad []error) bool {
	if len(kept) > 0 {
		fmt.Fprintf(w, "%swarning: the store keeps %s of this log that the log does not hold yet (changes committed while the log could not write, or made by kmsd commands while kmsd serve held it); kmsd serve appends them when it starts, or within seconds if it runs:\n", prefix, plural(uint64(len(kept)), "record"))
		for _, k := range kept {
			fmt.Fprintf(w, "%s  %s %s eventID %s\n", prefix, k.EventTime, k.EventName, k.EventID)
		}
	}
	for _, err := range bad {
		fmt.Fprintf(w, "%sFAILED: %v\n", prefix, err)
	}
	return len(bad) > 0
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
