package datafolder

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
)

// NoRecordYet reports whether p, the problem found with a log, is only
// that the log holds no record while its anchor a in the store says it
// never had one: the log of a kmsd that has served no request yet, which
// is whole. (kmsd serve anchors a new log at record 0 when it opens it,
// and writes a file only with the first record.)
func NoRecordYet(p *audit.Problem, a *audit.Anchor) bool {
	return p != nil && p.Kind == audit.ProblemNoLog && a != nil && a.Sequence == 0
}

// LogFindings is what the store says about one log, for kmsd audit verify.
type LogFindings struct {
	// Anchor is the log's anchor (nil: the store holds none).
	Anchor *audit.Anchor
	// Note says why the anchor is not checked, when the store holds none
	// and that is no problem.
	Note string
	// Problem is set when the store shows the log is not the one it
	// anchors (verify fails).
	Problem string
	// Kept are the records kept in the store for this log (not yet in it).
	Kept Kept
}

// FindLog reads, from the store st (of the data folder where), the anchor
// of the log signed by pub and the records kept for it. When the store
// holds no anchor for this log but has been started on (its installation
// record) or anchors other logs, the log is not this store's — another
// folder's log and signing key put in place of its own, or its anchor
// removed — and verify fails, as kmsd serve refuses to start on it.
func FindLog(ctx context.Context, st store.Settings, where string, pub ed25519.PublicKey) (LogFindings, error) {
	var out LogFindings
	id := audit.KeyID(pub)
	var err error
	if out.Kept, err = KeptFor(ctx, st, pub); err != nil {
		return out, err
	}
	a, _, err := AnchorsIn(st).LoadAnchor(ctx, id)
	if err == nil {
		out.Anchor = &a
		return out, nil
	}
	if !errors.Is(err, audit.ErrNoAnchor) {
		return out, err
	}
	inst, _, err := LoadInstallation(ctx, st)
	if err != nil {
		return out, err
	}
	others, err := AnchoredLogs(ctx, st)
	if err != nil {
		return out, err
	}
	if inst == nil && len(others) == 0 {
		// A store no kmsd that anchors its log has started on yet: kmsd
		// serve anchors the log at its next start.
		out.Note = fmt.Sprintf("the store in %s holds no anchor for log %s, nor any record of a start: the log's anchor was not checked", where, id)
		return out, nil
	}
	why := "it has been started on (it holds its installation record)"
	if len(others) > 0 {
		why = fmt.Sprintf("it anchors %s (%s)", plural(len(others), "other log"), strings.Join(others, ", "))
	}
	out.Problem = fmt.Sprintf("the store holds no anchor for log %s (the signing key in the data folder), although %s: this log and its signing key are not the ones this store keeps (another folder's were put in their place), or the log's anchor was removed; kmsd serve refuses to start on it", id, why)
	return out, nil
}

// NodeResult is what VerifyNodes found of one node's folder.
type NodeResult struct {
	Dir string
	// LogID is the node's log ("" when its public key cannot be read).
	LogID string
	// OK: the log verified and reaches its anchor.
	OK bool
	// Failure says why the log was not verified ("" when it was).
	Failure string
	// Kept are the records the store keeps for the log; a record in
	// Kept.Bad fails it.
	Kept   Kept
	Anchor audit.Anchor
	// NoRecordYet: the log holds no record, as its anchor says (see
	// NoRecordYet); OK is set.
	NoRecordYet bool
	// Report is what audit.Verify found (nil when not run), and Problem
	// its first problem: with OK, an unclosed log that allowOpen accepts.
	Report  *audit.Report
	Problem *audit.Problem
}

// AnchoredLog is a log the store anchors that no node folder held.
type AnchoredLog struct {
	LogID  string
	Anchor audit.Anchor
	// Lost is the record of its loss, when it was declared lost
	// (kmsd serve --accept-lost-log).
	Lost *LostLog
}

// NodesReport is what VerifyNodes found.
type NodesReport struct {
	Nodes []NodeResult
	// NotGiven are the logs the store anchors that no node held, in the
	// store's order: lost ones (Lost set) are accounted for, the others
	// are missing from the set.
	NotGiven []AnchoredLog
}

// Failed counts the node logs that did not verify.
func (r *NodesReport) Failed() int {
	n := 0
	for _, nr := range r.Nodes {
		if !nr.OK {
			n++
		}
	}
	return n
}

// Missing returns the logs the store anchors that no node held and that
// were not declared lost.
func (r *NodesReport) Missing() []AnchoredLog {
	var out []AnchoredLog
	for _, a := range r.NotGiven {
		if a.Lost == nil {
			out = append(out, a)
		}
	}
	return out
}

// Records counts the records of the logs that verified.
func (r *NodesReport) Records() uint64 {
	var n uint64
	for _, nr := range r.Nodes {
		if nr.OK && nr.Report != nil {
			n += nr.Report.Records
		}
	}
	return n
}

// VerifyNodes verifies the audit logs of a cluster's nodes, each in its
// own folder (its audit/ log and public key), against their anchors in
// the shared store st: every log must verify and reach its anchor, and no
// log may be given twice. It reports as well the logs the store anchors
// that no folder held (whether that fails is the caller's: kmsd audit
// verify --partial accepts it). allowOpen accepts a log that does not end
// with a close digest, as while kmsd runs.
func VerifyNodes(ctx context.Context, st store.Settings, nodes []string, allowOpen bool) (*NodesReport, error) {
	rep := &NodesReport{}
	seen := make(map[string]string) // log id -> the node folder that had it
	for _, node := range nodes {
		r := verifyNode(ctx, st, node, allowOpen, seen)
		if r.LogID != "" && seen[r.LogID] == "" {
			seen[r.LogID] = node
		}
		rep.Nodes = append(rep.Nodes, r)
	}
	ids, err := AnchoredLogs(ctx, st)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if seen[id] != "" {
			continue
		}
		a, _, err := AnchorsIn(st).LoadAnchor(ctx, id)
		if err != nil {
			return nil, err
		}
		lost, err := LoadLost(ctx, st, id)
		if err != nil {
			return nil, err
		}
		rep.NotGiven = append(rep.NotGiven, AnchoredLog{LogID: id, Anchor: a, Lost: lost})
	}
	return rep, nil
}

// verifyNode verifies the log in one node folder against its anchor; seen
// holds the logs earlier folders held.
func verifyNode(ctx context.Context, st store.Settings, node string, allowOpen bool, seen map[string]string) NodeResult {
	r := NodeResult{Dir: node}
	pub, err := audit.ReadPublicKey(filepath.Join(node, audit.PublicKeyFile))
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	id := audit.KeyID(pub)
	if other := seen[id]; other != "" {
		r.Failure = fmt.Sprintf("log %s was given already, by %s: each node has a log of its own", id, other)
		return r
	}
	r.LogID = id
	a, _, err := AnchorsIn(st).LoadAnchor(ctx, id)
	if errors.Is(err, audit.ErrNoAnchor) {
		r.Failure = fmt.Sprintf("the store holds no anchor for log %s: it is not the log of a node of this store, or its anchor was removed", id)
		return r
	}
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	r.Anchor = a
	if r.Kept, err = KeptFor(ctx, st, pub); err != nil {
		r.Failure = err.Error()
		return r
	}
	if len(r.Kept.Bad) > 0 {
		return r
	}
	cp := audit.Checkpoint{Sequence: a.Sequence, Hash: a.Hash, Source: fmt.Sprintf("the log's anchor in the store (set %s)", a.Time)}
	rep, err := audit.Verify(filepath.Join(node, audit.DirName), pub, cp)
	var p *audit.Problem
	if err != nil && !errors.As(err, &p) {
		r.Failure = err.Error()
		return r
	}
	r.Report, r.Problem = rep, p
	switch {
	case NoRecordYet(p, &a):
		r.OK, r.NoRecordYet = true, true
	case p == nil, p.Kind == audit.ProblemUnclosed && allowOpen:
		r.OK = true
	}
	return r
}

// plural is "1 word" or "N words".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
