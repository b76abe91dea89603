package datafolder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Installation is the store's record of kmsd's first start on it (the
// setting store.SettingInstallation): when, and its default Region then. A
// store that has it has been in use. The served Regions may change later
// (kmsd serve refuses only to leave keys in Regions not served).
type Installation struct {
	Region  string `json:"region"`
	Created string `json:"created"` // RFC 3339
}

// LoadInstallation returns the installation record and its revision, or
// nil and 0 when there is none (a store before its first start, or kept
// by a kmsd from before the record existed).
func LoadInstallation(ctx context.Context, st store.Settings) (*Installation, int64, error) {
	return loadRecord(ctx, st, store.SettingInstallation, "the installation record",
		func(inst *Installation) bool { return inst.Region != "" })
}

// RecordInstallation writes the installation record, once: a record
// written meanwhile by another node is kept if it names the same Region.
func RecordInstallation(ctx context.Context, st store.Settings, region string, now time.Time) error {
	b, err := json.Marshal(Installation{Region: region, Created: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	// Revision 0: written only if no node wrote it first.
	_, err = st.PutSetting(ctx, store.SettingInstallation, b, 0)
	if errors.Is(err, store.ErrConflict) {
		inst, _, lerr := LoadInstallation(ctx, st)
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

// loadRecord reads the JSON record kept in setting name, and its
// revision: nil and 0 when there is none. A record that does not decode
// into T, or that valid refuses (one naming another record than the one
// asked for), is an error naming it as what.
func loadRecord[T any](ctx context.Context, st store.Settings, name, what string, valid func(*T) bool) (*T, int64, error) {
	s, err := st.GetSetting(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", what, err)
	}
	var v T
	if err := decodeStrictJSON(s.Value, &v); err != nil || !valid(&v) {
		return nil, 0, fmt.Errorf("%s in the store is not valid (%v)", what, err)
	}
	return &v, s.Revision, nil
}

// decodeStrictJSON decodes one JSON value, refusing unknown members: a
// record of a later kmsd is refused rather than half understood.
func decodeStrictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
