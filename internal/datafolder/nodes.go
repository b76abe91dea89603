package datafolder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
)

// A node of a shared store has a stable id (node_id, by default the host
// name and the data folder's path), and the store records which audit
// log each node keeps (store.SettingAuditNodePrefix). A node that comes
// back with a data folder that lost its log (wiped, replaced by an empty
// one) would otherwise join as a new node, and its old log would be lost
// unnoticed; with the record, it is refused until the log is restored or
// its loss is accepted (--accept-lost-log), on the record.

// NodeRecord is what the store records of one node.
type NodeRecord struct {
	Node  string `json:"node"`
	LogID string `json:"logId"`
	Since string `json:"since"` // when the node started this log (RFC 3339)
}

// LostLog records an audit log declared lost.
type LostLog struct {
	LogID string `json:"logId"`
	Node  string `json:"node"`
	// Anchor is how far the lost log was known to have come.
	Anchor audit.Anchor `json:"anchor"`
	// AcceptedBy is the log whose record AcceptLostNodeLog accepted the
	// loss, and Time when.
	AcceptedBy string `json:"acceptedBy"`
	Time       string `json:"time"`
}

// NodeState is what CheckNode found, for RegisterNode.
type NodeState struct {
	id  string
	rec *NodeRecord // nil: the node is not recorded yet
	rev int64
	// lost is the anchor of the node's log that the folder lost, when
	// --accept-lost-log accepts the loss.
	lost *audit.Anchor
}

// NodeID returns the id of the node whose data folder is dataDir: the
// configured id (node_id) when there is one, or HOSTNAME:DATA_DIR.
func NodeID(configured, dataDir string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("node id: no node_id set, and the host name is unknown: %w", err)
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return host + ":" + dir, nil
}

// LoadNode reads the record of node id: nil when there is none.
func LoadNode(ctx context.Context, st store.Settings, id string) (*NodeRecord, int64, error) {
	return loadRecord(ctx, st, store.SettingAuditNodePrefix+id, "the record of node "+id,
		func(r *NodeRecord) bool { return r.Node == id })
}

// LoadLost reads the record of a lost log: nil when there is none.
func LoadLost(ctx context.Context, st store.Settings, logID string) (*LostLog, error) {
	l, _, err := loadRecord(ctx, st, store.SettingAuditLostPrefix+logID, "the record of lost log "+logID,
		func(l *LostLog) bool { return l.LogID == logID })
	return l, err
}

// CheckNode checks, before anything is written, that the folder f of node
// id of a shared store holds the audit log the store says this node
// keeps: a folder with no log, of a node whose log is anchored, lost it
// (refused, unless acceptLost); a folder with another log is a second
// node under the same id (refused).
func CheckNode(ctx context.Context, st store.Settings, id string, f FolderFacts, s StoreFacts, acceptLost bool) (*NodeState, error) {
	rec, rev, err := LoadNode(ctx, st, id)
	if err != nil {
		return nil, err
	}
	n := &NodeState{id: id, rec: rec, rev: rev}
	noLog := !f.Audit && !f.SigningKey && !f.PublicKey
	switch {
	case rec == nil:
	case s.Restored:
		// kmsd restore just filled the store: its node records are
		// those of the snapshot's source, whose logs stay with its
		// nodes; this folder starts the restored store's first log.
	case noLog:
		a, _, err := AnchorsIn(st).LoadAnchor(ctx, rec.LogID)
		if errors.Is(err, audit.ErrNoAnchor) {
			break // nothing anchored: nothing to lose
		}
		if err != nil {
			return nil, err
		}
		if !acceptLost {
			return nil, fmt.Errorf("data folder %s is node %q of this cluster, which keeps audit log %s (since %s, anchored at record %d, %s), but the folder holds no audit log: it was wiped or replaced, and kmsd will not start a new log over the lost one unnoticed (it has written nothing). Restore %s/, %s and %s from your backup of this node. If they are lost for good, start this node once with --accept-lost-log: it records the loss as the first record of a new log, and kmsd audit verify --node then reports log %s as lost. (A new node under an id already in use? Give it its own node_id.)",
				f.Dir, id, rec.LogID, rec.Since, a.Sequence, a.Time, audit.DirName, audit.SigningKeyFile, audit.PublicKeyFile, rec.LogID)
		}
		n.lost = &a
	case f.PublicKey:
		pub, err := audit.ReadPublicKey(filepath.Join(f.Dir, audit.PublicKeyFile))
		if err != nil {
			return nil, err
		}
		if got := audit.KeyID(pub); got != rec.LogID {
			return nil, fmt.Errorf("node id %q keeps audit log %s (since %s), but data folder %s holds log %s: two nodes share the node id. Give each node its own node_id (kmsd has written nothing)", id, rec.LogID, rec.Since, f.Dir, got)
		}
	}
	if acceptLost && n.lost == nil {
		return nil, fmt.Errorf("--accept-lost-log: node %q has lost no audit log (data folder %s), so there is nothing to accept: start it without the flag", id, f.Dir)
	}
	return n, nil
}

// RegisterNode records, once the node's audit log alog (of id logID) is
// open, that node n keeps it; first, when the folder lost the node's
// earlier log and --accept-lost-log accepts that, it appends the
// acceptance to the new log (durably, before anything changes) and
// records the old log as lost. region is kmsd's default Region, for the
// acceptance's record. A nil n (a store in the data folder) does nothing.
func RegisterNode(ctx context.Context, st store.Settings, n *NodeState, alog *audit.Log, logID, region string) error {
	if n == nil || n.rec != nil && n.rec.LogID == logID {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if n.lost != nil {
		rec := audit.OperatorRecord("AcceptLostNodeLog", region, map[string]any{
			"node": n.id, "lostLog": n.rec.LogID, "lostSince": n.rec.Since,
			"anchorSequence": n.lost.Sequence, "anchorHash": n.lost.Hash, "anchorTime": n.lost.Time})
		if err := alog.Append(ctx, rec); err != nil {
			return fmt.Errorf("record the acceptance of the lost audit log %s: %w", n.rec.LogID, err)
		}
		b, err := json.Marshal(LostLog{LogID: n.rec.LogID, Node: n.id, Anchor: *n.lost, AcceptedBy: logID, Time: now})
		if err != nil {
			return err
		}
		if _, err := st.PutSetting(ctx, store.SettingAuditLostPrefix+n.rec.LogID, b, 0); err != nil {
			return fmt.Errorf("record audit log %s as lost: %w", n.rec.LogID, err)
		}
	}
	b, err := json.Marshal(NodeRecord{Node: n.id, LogID: logID, Since: now})
	if err != nil {
		return err
	}
	// Compare and set on the revision CheckNode read: a second node
	// started under the same id meanwhile loses.
	rev, err := st.PutSetting(ctx, store.SettingAuditNodePrefix+n.id, b, n.rev)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("record node %q: another node with this id started meanwhile: give each node its own node_id", n.id)
	}
	if err != nil {
		return fmt.Errorf("record node %q: %w", n.id, err)
	}
	n.rec, n.rev, n.lost = &NodeRecord{Node: n.id, LogID: logID, Since: now}, rev, nil
	return nil
}
