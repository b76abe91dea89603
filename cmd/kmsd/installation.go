package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/store"
)

// installation is the store's record of kmsd's first start on it (the
// setting store.SettingInstallation): when, and its default Region then. A
// store that has it has been in use. The served Regions may change later
// (checkKeyRegions refuses only to leave keys in Regions not served).
type installation struct {
	Region  string `json:"region"`
	Created string `json:"created"` // RFC 3339
}

// loadInstallation returns the installation record and its revision, or
// nil and 0 when there is none (a store before its first start, or kept
// by a kmsd from before the record existed).
func loadInstallation(ctx context.Context, st store.Settings) (*installation, int64, error) {
	s, err := st.GetSetting(ctx, store.SettingInstallation)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the installation record: %w", err)
	}
	var inst installation
	if err := decodeStrictJSON(s.Value, &inst); err != nil || inst.Region == "" {
		return nil, 0, fmt.Errorf("the store's installation record is not valid (%v): %q", err, s.Value)
	}
	return &inst, s.Revision, nil
}

// recordInstallation writes the installation record, once: a record
// written meanwhile by another node is kept if it names the same Region.
func recordInstallation(ctx context.Context, st store.Settings, region string, now time.Time) error {
	b, err := json.Marshal(installation{Region: region, Created: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	_, err = st.PutSetting(ctx, store.SettingInstallation, b, 0)
	if errors.Is(err, store.ErrConflict) {
		inst, _, lerr := loadInstallation(ctx, st)
		if lerr != nil {
			return lerr
		}
		if inst != nil && inst.Region == region {
			return nil
		}
		return fmt.Errorf("the store was meanwhile recorded as serving Region %s, not %s", inst.Region, region)
	}
	if err != nil {
		return fmt.Errorf("record the installation: %w", err)
	}
	return nil
}

// storeAnchors keeps the audit logs' anchors as settings of the store
// (store.SettingAuditAnchorPrefix + the log id), so that they work
// unchanged whatever the store's backend.
type storeAnchors struct {
	st store.Settings
}

var _ audit.Anchors = storeAnchors{}

// LoadAnchor reads the anchor of log id.
func (a storeAnchors) LoadAnchor(ctx context.Context, id string) (audit.Anchor, int64, error) {
	s, err := a.st.GetSetting(ctx, store.SettingAuditAnchorPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return audit.Anchor{}, 0, fmt.Errorf("log %s: %w", id, audit.ErrNoAnchor)
	}
	if err != nil {
		return audit.Anchor{}, 0, fmt.Errorf("read the audit anchor of log %s: %w", id, err)
	}
	var an audit.Anchor
	if err := decodeStrictJSON(s.Value, &an); err != nil || an.LogID != id {
		return audit.Anchor{}, 0, fmt.Errorf("the audit anchor of log %s in the store is not valid (%v)", id, err)
	}
	return an, s.Revision, nil
}

// SaveAnchor writes an anchor by compare and set on its revision.
func (a storeAnchors) SaveAnchor(ctx context.Context, an audit.Anchor, rev int64) (int64, error) {
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

// storeOutbox keeps the records kept for the audit logs (audit.Outbox) as
// settings of the store, one per log: they follow it to PostgreSQL
// unchanged, and a kmsd command next to a running kmsd serve reaches them.
type storeOutbox struct {
	st store.Settings
}

var _ audit.Outbox = storeOutbox{}

// keptSet is the value of a log's kept-records setting.
type keptSet struct {
	LogID   string             `json:"logId"`
	Records []audit.KeptRecord `json:"records"`
}

// LoadKept reads the records kept for log id.
func (o storeOutbox) LoadKept(ctx context.Context, id string) ([]audit.KeptRecord, int64, error) {
	s, err := o.st.GetSetting(ctx, store.SettingAuditKeptPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the audit records kept for log %s: %w", id, err)
	}
	var set keptSet
	if err := decodeStrictJSON(s.Value, &set); err != nil || set.LogID != id {
		return nil, 0, fmt.Errorf("the audit records kept for log %s in the store are not valid (%v)", id, err)
	}
	return set.Records, s.Revision, nil
}

// SaveKept replaces the records kept for log id by compare and set on its
// revision.
func (o storeOutbox) SaveKept(ctx context.Context, id string, recs []audit.KeptRecord, rev int64) (int64, error) {
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

// decodeStrictJSON decodes one JSON value, refusing unknown members.
func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
