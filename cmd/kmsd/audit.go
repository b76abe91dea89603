package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"unicode/utf8"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/datafolder"
	"github.com/kmsd/kmsd/internal/rootmgr"
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
  drop-kept     --refused | --event-id ID: remove from the store records kept
                for the audit log that the log refuses (not signed by its
                key, altered); the removal is itself audited
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
	case "drop-kept":
		return auditDropKept(ctx, args[1:], stdout, stderr, getenv)
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
	fs := newCommandFlags("audit verify", auditVerifyUsage, stderr)
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
	found, err := findLog(ctx, storeConfig(cfg), pub)
	if err != nil {
		return err
	}
	if found.Note != "" {
		fmt.Fprintf(stdout, "note: %s\n", found.Note)
	}
	if found.Problem != "" {
		fmt.Fprintf(stdout, "FAILED: %s\n", found.Problem)
		return errors.New("the audit log failed verification")
	}
	if printKept(stdout, "", found.Kept) {
		return errors.New("the store keeps records for the audit log that are not its own")
	}
	var anchor *audit.Checkpoint
	if a := found.Anchor; a != nil {
		anchor = &audit.Checkpoint{Sequence: a.Sequence, Hash: a.Hash, Source: fmt.Sprintf("the log's anchor in the store (set %s)", a.Time)}
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
	if len(files) == 0 && datafolder.NoRecordYet(p, found.Anchor) {
		// The folder of a kmsd that has served no request: its log has no
		// file yet, and its anchor says it never had a record.
		fmt.Fprintf(stdout, "note: %s; the log's anchor in the store says it has no record yet: kmsd has served no request with it\n", p.Message)
		fmt.Fprintf(stdout, "OK: 0 records, as the log's anchor in the store says\n")
		return nil
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
	printDuplicates(stdout, "", rep)
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
// own folder, against their anchors in the store bcfg names
// (datafolder.VerifyNodes), and prints one line per node and a summary:
// every log must verify and reach its anchor, and unless partial every
// log the store anchors must be among them.
func verifyNodes(ctx context.Context, bcfg backend.Config, nodes []string, allowOpen, partial bool, stdout io.Writer) error {
	if !hasStore(bcfg) {
		return fmt.Errorf("no store in %s: --node checks each log against its anchor in the cluster's store; name it (KMSD_STORE and KMSD_STORE_DSN, or --config)", bcfg.DataDir)
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		return fmt.Errorf("open store (for the logs' anchors): %w", err)
	}
	defer st.Close()
	rep, err := datafolder.VerifyNodes(ctx, st, nodes, allowOpen)
	if err != nil {
		return err
	}
	return printNodes(stdout, rep, partial)
}

// printNodes prints what verify --node found: one line per node (and its
// notes), the logs the store anchors that no node held, and a summary. It
// fails unless every log verified and, unless partial, every log the
// store anchors was given.
func printNodes(stdout io.Writer, rep *datafolder.NodesReport, partial bool) error {
	nodes := len(rep.Nodes)
	for _, r := range rep.Nodes {
		printNode(stdout, r)
	}
	for _, a := range rep.NotGiven {
		if a.Lost != nil {
			fmt.Fprintf(stdout, "note: log %s of node %q (anchored at record %d, %s) was declared lost on %s; the acceptance is in log %s (AcceptLostNodeLog)\n",
				a.LogID, a.Lost.Node, a.Anchor.Sequence, a.Anchor.Time, a.Lost.Time, a.Lost.AcceptedBy)
		}
	}
	missing := rep.Missing()
	for _, m := range missing {
		what := fmt.Sprintf("log %s (anchored at record %d, %s)", m.LogID, m.Anchor.Sequence, m.Anchor.Time)
		if partial {
			fmt.Fprintf(stdout, "note: not given (--partial): %s\n", what)
		} else {
			fmt.Fprintf(stdout, "FAILED: the store anchors %s, which no --node holds: a node's log is missing from the set (give it, or --partial)\n", what)
		}
	}
	failed := rep.Failed()
	if failed > 0 || len(missing) > 0 && !partial {
		switch {
		case failed > 0 && len(missing) > 0 && !partial:
			fmt.Fprintf(stdout, "FAILED: %d of %s failed verification, and %s missing\n", failed, plural(uint64(nodes), "node log"), plural(uint64(len(missing)), "anchored log is"))
		case failed > 0:
			fmt.Fprintf(stdout, "FAILED: %d of %s failed verification\n", failed, plural(uint64(nodes), "node log"))
		default:
			fmt.Fprintf(stdout, "FAILED: %s verified, but %s missing\n", plural(uint64(nodes), "node log"), plural(uint64(len(missing)), "anchored log is"))
		}
		return errors.New("the audit logs failed verification")
	}
	what := "every log the store anchors"
	if len(missing) > 0 {
		what = fmt.Sprintf("%d of the %d logs the store anchors", nodes, nodes+len(missing))
	}
	fmt.Fprintf(stdout, "OK: %s, %s in all, each reaching its anchor in the store; %s\n", plural(uint64(nodes), "node log"), plural(rep.Records(), "record"), what)
	return nil
}

// printNode prints what verify found of one node's log, each line
// starting with the node's folder.
func printNode(w io.Writer, r datafolder.NodeResult) {
	p := r.Dir + ": "
	badKept := printKept(w, p, r.Kept)
	switch {
	case r.Failure != "":
		fmt.Fprintf(w, "%sFAILED: %s\n", p, r.Failure)
	case badKept:
	case r.NoRecordYet:
		fmt.Fprintf(w, "%sOK: log %s, no record yet, as its anchor says\n", p, r.LogID)
	default:
		for _, n := range r.Report.Notes {
			fmt.Fprintf(w, "%snote: %s\n", p, n)
		}
		if !r.OK {
			fmt.Fprintf(w, "%sFAILED: %v\n", p, r.Problem)
			return
		}
		fmt.Fprintf(w, "%sOK: log %s, %s, %s, chain intact through sequence %d, reaches its anchor (record %d)\n",
			p, r.LogID, plural(r.Report.Records, "record"), plural(uint64(r.Report.Digests), "digest"), r.Report.LastSequence, r.Anchor.Sequence)
		if r.Problem != nil {
			fmt.Fprintf(w, "%swarning: %s\n", p, r.Problem.Message)
		}
		printDuplicates(w, p, r.Report)
	}
}

// hasStore reports whether there is a store to read at bcfg: an SQLite
// database is opened only when it has content (opening creates it).
func hasStore(bcfg backend.Config) bool {
	if !bcfg.InDataFolder() {
		return true
	}
	fi, err := os.Stat(filepath.Join(bcfg.DataDir, backend.DatabaseFile))
	return err == nil && fi.Size() > 0
}

// findLog reads, from the store of the data folder, what it holds of the
// log signed by pub (datafolder.FindLog). When there is no store to
// read, the anchor is not checked (a note says so).
func findLog(ctx context.Context, bcfg backend.Config, pub ed25519.PublicKey) (datafolder.LogFindings, error) {
	if !hasStore(bcfg) {
		return datafolder.LogFindings{Note: fmt.Sprintf("no store in %s: the log's anchor was not checked", bcfg.DataDir)}, nil
	}
	st, err := backend.Open(ctx, bcfg)
	if err != nil {
		return datafolder.LogFindings{}, fmt.Errorf("open store (for the log's anchor): %w", err)
	}
	defer st.Close()
	return datafolder.FindLog(ctx, st, bcfg.DataDir, pub)
}

// printKept reports the records kept in the store for a log, with prefix
// before each line. It returns whether any is not the log's own.
func printKept(w io.Writer, prefix string, k datafolder.Kept) bool {
	kept, bad := k.Records, k.Bad
	if len(kept) > 0 {
		fmt.Fprintf(w, "%swarning: the store keeps %s of this log that the log does not hold yet (changes committed while the log could not write, or made by kmsd commands while kmsd serve held it); kmsd serve appends them when it starts, or within seconds if it runs:\n", prefix, plural(uint64(len(kept)), "record"))
		for _, k := range kept {
			fmt.Fprintf(w, "%s  %s %s eventID %s\n", prefix, k.EventTime, k.EventName, k.EventID)
		}
	}
	for _, err := range bad {
		fmt.Fprintf(w, "%sFAILED: %v\n", prefix, err)
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "%s(kmsd serve never appends a refused record; kmsd audit drop-kept --refused removes them from the store, on the record)\n", prefix)
	}
	return len(bad) > 0
}

// printDuplicates warns of the records of rep whose eventID an earlier
// record carries, with prefix before each line.
func printDuplicates(w io.Writer, prefix string, rep *audit.Report) {
	if rep == nil || rep.DuplicateRecords == 0 {
		return
	}
	fmt.Fprintf(w, "%swarning: %s an eventID that an earlier record has (the same event recorded twice: a record kept in the store appended again):\n", prefix, verbForm(rep.DuplicateRecords, "record carries", "records carry"))
	for _, d := range rep.Duplicates {
		fmt.Fprintf(w, "%s  eventID %q: record %d, first at record %d\n", prefix, d.EventID, d.Sequence, d.FirstSequence)
	}
	if n := rep.DuplicateRecords - uint64(len(rep.Duplicates)); n > 0 {
		fmt.Fprintf(w, "%s  and %d more\n", prefix, n)
	}
}

// verbForm is "1 <singular>" or "N <plural>".
func verbForm(n uint64, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
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
	fs := newCommandFlags("audit accept-reset", auditAcceptResetUsage, stderr)
	dirs := addDataDirFlags(fs)
	reason := fs.String("reason", "", "why the loss is accepted (recorded in the log)")
	var material unsealMaterial
	material.addSealedFlags(fs)
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
	if f.kind != datafolder.ExistingStart {
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
	rec := audit.OperatorRecord("AcceptAuditLogReset", cfg.Region, map[string]any{"reason": *reason})
	prev, err := audit.AcceptReset(ctx, auditOptions(cfg, signer, f.st, log), rec)
	if err != nil {
		return fmt.Errorf("kmsd audit accept-reset: %w", err)
	}
	fmt.Fprintf(stdout, "Accepted: the audit log no longer holds what its anchor named (record %d, signed %s).\nThe acceptance is record %d of the log, and the anchor now names it; kmsd serve starts again.\n", prev.Sequence, prev.Time, rec.Sequence)
	return nil
}

const auditDropKeptUsage = `usage: kmsd audit drop-kept (--refused | --event-id ID) [--config FILE] [--data-dir DIR] [--passphrase-file FILE | --share-file FILE...]

Removes from the store records kept for the audit log (the setting
audit-kept/<log id>) that the log refuses: not signed by its signing key
(put in the store by someone else), altered since, or not records at all.
kmsd serve never appends them, and kmsd audit verify fails while the store
keeps them (it lists them). With --refused every refused record goes; with
--event-id only the refused ones whose body claims that eventID.

A record the log accepts is never removed: it is the record of a committed
change, which kmsd serve appends to its log (or, if the log holds it
already, only removes from the store).

The removal is itself audited (DropKeptAuditRecords, naming each record
removed), and works while kmsd serve runs. On a sealed data folder it needs
the unseal material (the record is signed with the audit signing key, which
the root wraps).

flags:
`

// auditDropKept runs kmsd audit drop-kept.
func auditDropKept(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := newCommandFlags("audit drop-kept", auditDropKeptUsage, stderr)
	dirs := addDataDirFlags(fs)
	refused := fs.Bool("refused", false, "remove every record kept for the log that the log refuses")
	eventID := fs.String("event-id", "", "remove the refused records kept for the log whose body claims this eventID")
	var material unsealMaterial
	material.addSealedFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kmsd audit drop-kept: unexpected arguments %v", fs.Args())
	}
	if *refused == (*eventID != "") {
		return errors.New("kmsd audit drop-kept: give either --refused (every refused record) or --event-id ID (the refused records claiming that eventID)")
	}
	cfg, err := dirs.load(getenv)
	if err != nil {
		return err
	}
	f, err := openDataFolder(ctx, cfg, getenv, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return fmt.Errorf("kmsd audit drop-kept: %w", err)
	}
	defer f.close()
	// The record of the removal is signed with the audit signing key:
	// loaded first, so that a removal that cannot be recorded is not made.
	var unseal rootmgr.UnsealFunc
	if f.sealed != nil {
		unseal = onceUnseal(&material, stderr)
	}
	oa, err := newOperatorAudit(ctx, f, unseal, stderr)
	if err != nil {
		return fmt.Errorf("kmsd audit drop-kept: %w", err)
	}
	defer oa.close()
	pub := oa.opts.Signer.PublicKey()
	dropped, err := audit.DropRefusedKept(ctx, datafolder.OutboxIn(f.st), pub, *eventID)
	if err != nil {
		return fmt.Errorf("kmsd audit drop-kept: %w", err)
	}
	if len(dropped) == 0 {
		// Nothing changed: nothing to record.
		what := "no record kept for the audit log is refused"
		if *eventID != "" {
			what = fmt.Sprintf("no refused record kept for the audit log claims eventID %q", *eventID)
			if k, err := datafolder.KeptFor(ctx, f.st, pub); err == nil && slices.ContainsFunc(k.Records, func(i audit.KeptInfo) bool { return i.EventID == *eventID }) {
				what += " (a record the log accepts does: the record of a change, which kmsd serve appends, and which this command never removes)"
			}
		}
		return fmt.Errorf("kmsd audit drop-kept: %s: nothing was removed", what)
	}
	params := map[string]any{"refused": *refused}
	if *eventID != "" {
		params = map[string]any{"eventId": *eventID}
	}
	list := make([]any, len(dropped))
	for i, d := range dropped {
		// What a refused record claims is anyone's writing: bounded here,
		// escaped by the record's JSON, quoted on the terminal.
		list[i] = map[string]any{"id": d.ID, "eventId": clip(d.EventID, 128), "reason": d.Reason}
	}
	rec := audit.OperatorRecord("DropKeptAuditRecords", cfg.Region, params)
	rec.ResponseElements = map[string]any{"dropped": list}
	if err := oa.record(ctx, rec, stderr); err != nil {
		return fmt.Errorf("kmsd audit drop-kept: %d refused records were removed from the store, but %w", len(dropped), err)
	}
	for _, d := range dropped {
		fmt.Fprintf(stdout, "Removed refused record %s (eventID %q): %s\n", d.ID[:16], clip(d.EventID, 128), d.Reason)
	}
	fmt.Fprintf(stdout, "%s removed from the store.\n", verbForm(uint64(len(dropped)), "refused kept record", "refused kept records"))
	return nil
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
