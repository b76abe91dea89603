package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/store"
)

// A node of a shared store has a stable id (node_id, by default the host
// name and the data folder's path), and the store records which audit
// log each node keeps (store.SettingAuditNodePrefix). A node that comes
// back with a data folder that lost its log (wiped, replaced by an empty
// one) would otherwise join as a new node, and its old log would be lost
// unnoticed; with the record, it is refused until the log is restored or
// its loss is accepted (--accept-lost-log), on the record.

// nodeRecord is what the store records of one node.
type nodeRecord struct {
	Node  string `json:"node"`
	LogID string `json:"logId"`
	Since string `json:"since"` // when the node started this log (RFC 3339)
}

// lostLog records an audit log declared lost.
type lostLog struct {
	LogID string `json:"logId"`
	Node  string `json:"node"`
	// Anchor is how far the lost log was known to have come.
	Anchor audit.Anchor `json:"anchor"`
	// AcceptedBy is the log whose record AcceptLostNodeLog accepted the
	// loss, and Time when.
	AcceptedBy string `json:"acceptedBy"`
	Time       string `json:"time"`
}

// nodeState is what checkNode found, for registerNode.
type nodeState struct {
	id  string
	rec *nodeRecord // nil: the node is not recorded yet
	rev int64
	// lost is the anchor of the node's log that the folder lost, when
	// --accept-lost-log accepts the loss.
	lost *audit.Anchor
}

// nodeID returns the node id of cfg: node_id, or HOSTNAME:DATA_DIR.
func nodeID(cfg config.Config) (string, error) {
	if cfg.NodeID != "" {
		return cfg.NodeID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node id: no node_id set, and the host name is unknown: %w", err)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return host + ":" + dir, nil
}

// loadNode reads the record of node id: nil when there is none.
func loadNode(ctx context.Context, st store.Settings, id string) (*nodeRecord, int64, error) {
	s, err := st.GetSetting(ctx, store.SettingAuditNodePrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the record of node %s: %w", id, err)
	}
	var r nodeRecord
	if err := decodeStrictJSON(s.Value, &r); err != nil || r.Node != id {
		return nil, 0, fmt.Errorf("the record of node %s in the store is not valid (%v)", id, err)
	}
	return &r, s.Revision, nil
}

// loadLost reads the record of a lost log: nil when there is none.
func loadLost(ctx context.Context, st store.Settings, logID string) (*lostLog, error) {
	s, err := st.GetSetting(ctx, store.SettingAuditLostPrefix+logID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the record of lost log %s: %w", logID, err)
	}
	var l lostLog
	if err := decodeStrictJSON(s.Value, &l); err != nil || l.LogID != logID {
		return nil, fmt.Errorf("the record of lost log %s in the store is not valid (%v)", logID, err)
	}
	return &l, nil
}

// checkNode checks, before anything is written, that the folder of a
// node of a shared store holds the audit log the store says this node
// keeps: a folder with no log, of a node whose log is anchored, lost it
// (refused, unless cfg.AcceptLostLog); a folder with another log is a
// second node under the same id (refused).
func (f *dataFolder) checkNode(ctx context.Context, facts *folderFacts) error {
	id, err := nodeID(f.cfg)
	if err != nil {
		return err
	}
	rec, rev, err := loadNode(ctx, f.st, id)
	if err != nil {
		return err
	}
	f.node = &nodeState{id: id, rec: rec, rev: rev}
	noLog := !facts.Audit && !facts.SigningKey && !facts.PublicKey
	switch {
	case rec == nil:
	case f.facts.Restored:
		// kmsd restore just filled the store: its node records are
		// those of the snapshot's source, whose logs stay with its
		// nodes; this folder starts the restored store's first log.
	case noLog:
		a, _, err := storeAnchors{f.st}.LoadAnchor(ctx, rec.LogID)
		if errors.Is(err, audit.ErrNoAnchor) {
			break // nothing anchored: nothing to lose
		}
		if err != nil {
			return err
		}
		if !f.cfg.AcceptLostLog {
			return fmt.Errorf("data folder %s is node %q of this cluster, which keeps audit log %s (since %s, anchored at record %d, %s), but the folder holds no audit log: it was wiped or replaced, and kmsd will not start a new log over the lost one unnoticed (it has written nothing). Restore %s/, %s and %s from your backup of this node. If they are lost for good, start this node once with --accept-lost-log: it records the loss as the first record of a new log, and kmsd audit verify --node then reports log %s as lost. (A new node under an id already in use? Give it its own node_id.)",
				f.cfg.DataDir, id, rec.LogID, rec.Since, a.Sequence, a.Time, audit.DirName, audit.SigningKeyFile, audit.PublicKeyFile, rec.LogID)
		}
		f.node.lost = &a
	case facts.PublicKey:
		pub, err := audit.ReadPublicKey(filepath.Join(f.cfg.DataDir, audit.PublicKeyFile))
		if err != nil {
			return err
		}
		if got := audit.KeyID(pub); got != rec.LogID {
			return fmt.Errorf("node id %q keeps audit log %s (since %s), but data folder %s holds log %s: two nodes share the node id. Give each node its own node_id (kmsd has written nothing)", id, rec.LogID, rec.Since, f.cfg.DataDir, got)
		}
	}
	if f.cfg.AcceptLostLog && f.node.lost == nil {
		return fmt.Errorf("--accept-lost-log: node %q has lost no audit log (data folder %s), so there is nothing to accept: start it without the flag", id, f.cfg.DataDir)
	}
	return nil
}

// registerNode records, once the node's audit log is open, that this
// node keeps it; first, when the folder lost the node's earlier log and
// --accept-lost-log accepts that, it appends the acceptance to the new
// log (durably, before anything changes) and records the old log as lost.
func registerNode(ctx context.Context, f *dataFolder, alog *audit.Log, logID string) error {
	n := f.node
	if n == nil || n.rec != nil && n.rec.LogID == logID {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if n.lost != nil {
		rec := operatorRecord("AcceptLostNodeLog", f.cfg.Region, map[string]any{
			"node": n.id, "lostLog": n.rec.LogID, "lostSince": n.rec.Since,
			"anchorSequence": n.lost.Sequence, "anchorHash": n.lost.Hash, "anchorTime": n.lost.Time})
		if err := alog.Append(ctx, rec); err != nil {
			return fmt.Errorf("record the acceptance of the lost audit log %s: %w", n.rec.LogID, err)
		}
		b, err := json.Marshal(lostLog{LogID: n.rec.LogID, Node: n.id, Anchor: *n.lost, AcceptedBy: logID, Time: now})
		if err != nil {
			return err
		}
		if _, err := f.st.PutSetting(ctx, store.SettingAuditLostPrefix+n.rec.LogID, b, 0); err != nil {
			return fmt.Errorf("record audit log %s as lost: %w", n.rec.LogID, err)
		}
	}
	b, err := json.Marshal(nodeRecord{Node: n.id, LogID: logID, Since: now})
	if err != nil {
		return err
	}
	rev, err := f.st.PutSetting(ctx, store.SettingAuditNodePrefix+n.id, b, n.rev)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record node %q: another node with this id started meanwhile: give each node its own node_id", n.id)
	}
	if err != nil {
		return fmt.Errorf("record node %q: %w", n.id, err)
	}
	n.rec, n.rev, n.lost = &nodeRecord{Node: n.id, LogID: logID, Since: now}, rev, nil
	return nil
}
