package datafolder

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
)

// Anchors keeps the audit logs' anchors as settings of the store
// (store.SettingAuditAnchorPrefix + the log id), so that they work
// unchanged whatever the store's backend.
type Anchors struct {
	st store.Settings
}

var _ audit.Anchors = Anchors{}

// AnchorsIn returns the anchors kept in st.
func AnchorsIn(st store.Settings) Anchors { return Anchors{st} }

// LoadAnchor reads the anchor of log id.
func (a Anchors) LoadAnchor(ctx context.Context, id string) (audit.Anchor, int64, error) {
	an, rev, err := loadRecord(ctx, a.st, store.SettingAuditAnchorPrefix+id, "the audit anchor of log "+id,
		func(an *audit.Anchor) bool { return an.LogID == id })
	if err != nil {
		return audit.Anchor{}, 0, err
	}
	if an == nil {
		return audit.Anchor{}, 0, fmt.Errorf("log %s: %w", id, audit.ErrNoAnchor)
	}
	return *an, rev, nil
}

// SaveAnchor writes an anchor by compare and set on its revision.
func (a Anchors) SaveAnchor(ctx context.Context, an audit.Anchor, rev int64) (int64, error) {
	b, err := json.Marshal(an)
	if err != nil {
		return 0, err
	}
	next, err := a.st.PutSetting(ctx, store.SettingAuditAnchorPrefix+an.LogID, b, rev)
	if errors.Is(err, store.ErrConflict) {
		return 0, fmt.Errorf("%w: %v", audit.ErrAnchorChanged, err)
	}
	return next, err
}

// AnchoredLogs lists the ids of the logs the store anchors.
func AnchoredLogs(ctx context.Context, st store.Settings) ([]string, error) {
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

// Outbox keeps the records kept for the audit logs (audit.Outbox) as
// settings of the store, one per log: they follow it to PostgreSQL
// unchanged, and a kmsd command next to a running kmsd serve reaches them.
type Outbox struct {
	st store.Settings
}

var _ audit.Outbox = Outbox{}

// OutboxIn returns the outbox kept in st.
func OutboxIn(st store.Settings) Outbox { return Outbox{st} }

// keptSet is the value of a log's kept-records setting.
type keptSet struct {
	LogID   string             `json:"logId"`
	Records []audit.KeptRecord `json:"records"`
}

// LoadKept reads the records kept for log id.
func (o Outbox) LoadKept(ctx context.Context, id string) ([]audit.KeptRecord, int64, error) {
	set, rev, err := loadRecord(ctx, o.st, store.SettingAuditKeptPrefix+id, "the list of audit records kept for log "+id,
		func(set *keptSet) bool { return set.LogID == id })
	if err != nil || set == nil {
		return nil, 0, err
	}
	return set.Records, rev, nil
}

// SaveKept replaces the records kept for log id by compare and set on its
// revision.
func (o Outbox) SaveKept(ctx context.Context, id string, recs []audit.KeptRecord, rev int64) (int64, error) {
	if recs == nil {
		recs = []audit.KeptRecord{}
	}
	b, err := json.Marshal(keptSet{LogID: id, Records: recs})
	if err != nil {
		return 0, err
	}
	next, err := o.st.PutSetting(ctx, store.SettingAuditKeptPrefix+id, b, rev)
	if errors.Is(err, store.ErrConflict) {
		return 0, fmt.Errorf("%w: %v", audit.ErrKeptChanged, err)
	}
	return next, err
}

// Kept is what the store keeps for one log: the records that are the
// log's own (signed by its key) and the errors of those that are not.
type Kept struct {
	Records []audit.KeptInfo
	Bad     []error
}

// KeptFor reads the records kept in the store for the log signed by pub.
func KeptFor(ctx context.Context, st store.Settings, pub ed25519.PublicKey) (Kept, error) {
	id := audit.KeyID(pub)
	recs, _, err := OutboxIn(st).LoadKept(ctx, id)
	if err != nil {
		return Kept{}, err
	}
	var k Kept
	for _, r := range recs {
		info, err := audit.CheckKept(pub, id, r)
		if err != nil {
			k.Bad = append(k.Bad, err)
			continue
		}
		k.Records = append(k.Records, info)
	}
	return k, nil
}
