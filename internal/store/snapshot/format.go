package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"reflect"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// The snapshot format, version 2 (docs/operations.md, "Backup and
// restore", describes it for readers without this code):
//
//	{"format":"kmsd-snapshot","version":2,"created":"2026-01-02T03:04:05.123456789Z","key_usage_since":"…"}
//	{"kind":"setting",...}           every setting, by name
//	{"kind":"custom_key_store",...}  every custom key store, by id
//	{"kind":"access_key",...}        every access key, by id
//	{"kind":"key",...}               every key, by id, each followed by its
//	{"kind":"material",...}            materials in the order the store lists them,
//	{"kind":"import_params",...}       import parameters by id,
//	{"kind":"grant",...}               grants by id,
//	{"kind":"alias",...}               aliases by (account, region, name),
//	{"kind":"key_usage",...}           its last recorded use, if any
//	{"kind":"end","counts":{...},"sha256":"..."}
//
// Every line is one JSON object ending in "\n", in its canonical form:
// what Go's encoding/json writes for the record types below with HTML
// escaping off (members in the order declared, no spaces, map members
// sorted by key). Decode accepts exactly that form, so that one snapshot
// has one encoding: a line that decodes but does not re-encode to the
// same bytes is refused, as are unknown members and kinds. Times are RFC
// 3339 strings in UTC with nanoseconds as needed, or null for none; byte
// strings are standard base64 with padding. The end record counts the
// records of each kind and holds the SHA-256 (lowercase hex) of every byte
// before it, header included.
//
// Version 1 (kmsd before multi-Region keys and GetKeyLastUsage) had no
// key_usage_since in its header, no multi_region_key_id and primary_region
// in its key records, no key_usage records and no key_usage count. Decode
// reads it still, in its own canonical form: its keys are single-Region
// keys and it holds no key usage. Encode writes version 2 only.

// Format and Version name the format the header line declares; Decode
// also reads VersionOne.
const (
	Format     = "kmsd-snapshot"
	Version    = 2
	VersionOne = 1
)

// maxLine bounds one line, so that a file that is not a snapshot cannot
// make Decode buffer it whole. A line holds one record: a key policy is at
// most 32 KiB, a setting a few KiB.
const maxLine = 16 << 20

// ErrFormat is wrapped by every error of Decode about its input.
var ErrFormat = errors.New("not a valid kmsd snapshot")

// Record kinds.
const (
	kindSetting        = "setting"
	kindCustomKeyStore = "custom_key_store"
	kindAccessKey      = "access_key"
	kindKey            = "key"
	kindMaterial       = "material"
	kindImportParams   = "import_params"
	kindGrant          = "grant"
	kindAlias          = "alias"
	kindKeyUsage       = "key_usage"
	kindEnd            = "end"
)

// headerV1 is the first line of version 1.
type headerV1 struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Created stamp  `json:"created"`
}

// header is the first line: version 1's and when the store began recording
// key usage (null in a snapshot of a store that records none).
type header struct {
	headerV1
	KeyUsageSince stamp `json:"key_usage_since"`
}

// The records, one type per kind. They are the format, not the store's
// types, so that renaming a field of package store cannot change it.

type settingRecord struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Value    []byte `json:"value"`
	Revision int64  `json:"revision"`
	Updated  stamp  `json:"updated"`
}

type customKeyStoreRecord struct {
	Kind                string `json:"kind"`
	ID                  string `json:"id"`
	Account             string `json:"account"`
	Region              string `json:"region"`
	Name                string `json:"name"`
	Type                string `json:"type"`
	ClusterID           string `json:"cluster_id"`
	TrustAnchor         string `json:"trust_anchor"`
	WrappedPassword     []byte `json:"wrapped_password"`
	Created             stamp  `json:"created"`
	ConnectionState     string `json:"connection_state"`
	ConnectionErrorCode string `json:"connection_error_code"`
	Revision            int64  `json:"revision"`
}

type accessKeyRecord struct {
	Kind          string `json:"kind"`
	ID            string `json:"id"`
	Account       string `json:"account"`
	PrincipalARN  string `json:"principal_arn"`
	WrappedSecret []byte `json:"wrapped_secret"`
	Created       stamp  `json:"created"`
}

type tagRecord struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// keyRecordV1 is the key record of version 1.
type keyRecordV1 struct {
	Kind               string      `json:"kind"`
	ID                 string      `json:"id"`
	Account            string      `json:"account"`
	Region             string      `json:"region"`
	Description        string      `json:"description"`
	KeySpec            string      `json:"key_spec"`
	KeyUsage           string      `json:"key_usage"`
	Origin             string      `json:"origin"`
	KeyManager         string      `json:"key_manager"`
	State              string      `json:"state"`
	Created            stamp       `json:"created"`
	DeletionDate       stamp       `json:"deletion_date"`
	PendingWindowDays  int         `json:"pending_window_days"`
	Policy             string      `json:"policy"`
	Tags               []tagRecord `json:"tags"`
	CurrentMaterial    string      `json:"current_material"`
	RotationEnabled    bool        `json:"rotation_enabled"`
	RotationPeriodDays int         `json:"rotation_period_days"`
	NextRotation       stamp       `json:"next_rotation"`
	OnDemandRotations  int         `json:"on_demand_rotations"`
	MaterialValidTo    stamp       `json:"material_valid_to"`
	ExpirationModel    string      `json:"expiration_model"`
	CustomKeyStoreID   string      `json:"custom_key_store_id"`
	Revision           int64       `json:"revision"`
}

// keyRecord is version 1's key record and the key's multi-Region key id and
// primary Region (both "" for a single-Region key). Its members are
// encoded in this order: version 1's, then these two.
type keyRecord struct {
	keyRecordV1
	MultiRegionKeyID string `json:"multi_region_key_id"`
	PrimaryRegion    string `json:"primary_region"`
}

// keyUsageRecord is the last recorded use of the key it follows.
type keyUsageRecord struct {
	Kind      string `json:"kind"`
	KeyID     string `json:"key_id"`
	Operation string `json:"operation"`
	Time      stamp  `json:"time"`
	RequestID string `json:"request_id"`
	EventID   string `json:"event_id"`
}

type materialRecord struct {
	Kind         string `json:"kind"`
	KeyID        string `json:"key_id"`
	ID           string `json:"id"`
	Wrapped      []byte `json:"wrapped"`
	Created      stamp  `json:"created"`
	RotationType string `json:"rotation_type"`
}

type importParamsRecord struct {
	Kind              string `json:"kind"`
	KeyID             string `json:"key_id"`
	ID                string `json:"id"`
	WrappedPrivateKey []byte `json:"wrapped_private_key"`
	WrappingAlgorithm string `json:"wrapping_algorithm"`
	WrappingKeySpec   string `json:"wrapping_key_spec"`
	Created           stamp  `json:"created"`
	ValidTo           stamp  `json:"valid_to"`
}

type grantRecord struct {
	Kind                    string            `json:"kind"`
	ID                      string            `json:"id"`
	KeyID                   string            `json:"key_id"`
	Name                    string            `json:"name"`
	GranteePrincipal        string            `json:"grantee_principal"`
	RetiringPrincipal       string            `json:"retiring_principal"`
	IssuingAccount          string            `json:"issuing_account"`
	Operations              []string          `json:"operations"`
	EncryptionContextEquals map[string]string `json:"encryption_context_equals"`
	EncryptionContextSubset map[string]string `json:"encryption_context_subset"`
	TokenHash               []byte            `json:"token_hash"`
	Created                 stamp             `json:"created"`
}

type aliasRecord struct {
	Kind     string `json:"kind"`
	Account  string `json:"account"`
	Region   string `json:"region"`
	Name     string `json:"name"`
	KeyID    string `json:"key_id"`
	Created  stamp  `json:"created"`
	Updated  stamp  `json:"updated"`
	Revision int64  `json:"revision"`
}

// Counts are how many records of each kind a snapshot holds; the end
// record carries them.
type Counts struct {
	Settings        int `json:"setting"`
	CustomKeyStores int `json:"custom_key_store"`
	AccessKeys      int `json:"access_key"`
	Keys            int `json:"key"`
	Materials       int `json:"material"`
	ImportParams    int `json:"import_params"`
	Grants          int `json:"grant"`
	Aliases         int `json:"alias"`
	KeyUsage        int `json:"key_usage"`
}

type endRecord struct {
	Kind   string `json:"kind"`
	Counts Counts `json:"counts"`
	SHA256 string `json:"sha256"`
}

// countsV1 and endRecordV1 are version 1's end record, without key_usage.
type countsV1 struct {
	Settings        int `json:"setting"`
	CustomKeyStores int `json:"custom_key_store"`
	AccessKeys      int `json:"access_key"`
	Keys            int `json:"key"`
	Materials       int `json:"material"`
	ImportParams    int `json:"import_params"`
	Grants          int `json:"grant"`
	Aliases         int `json:"alias"`
}

func (c countsV1) counts() Counts {
	return Counts{Settings: c.Settings, CustomKeyStores: c.CustomKeyStores, AccessKeys: c.AccessKeys, Keys: c.Keys,
		Materials: c.Materials, ImportParams: c.ImportParams, Grants: c.Grants, Aliases: c.Aliases}
}

type endRecordV1 struct {
	Kind   string   `json:"kind"`
	Counts countsV1 `json:"counts"`
	SHA256 string   `json:"sha256"`
}

// stamp is a time in the format: RFC 3339 in UTC with as many fractional
// digits as the nanoseconds need, or "" (JSON null) for the zero time.
type stamp string

func stampOf(t time.Time) stamp {
	if t.IsZero() {
		return ""
	}
	return stamp(t.UTC().Format(time.RFC3339Nano))
}

func (s stamp) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

func (s *stamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return err
	}
	if stampOf(t) != stamp(v) {
		return fmt.Errorf("time %q is not in UTC in its shortest RFC 3339 form (%s)", v, stampOf(t))
	}
	*s = stamp(v)
	return nil
}

// time returns the time s names; it was checked when s was decoded.
func (s stamp) time() time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		// Unreachable: stampOf and UnmarshalJSON make only valid stamps.
		panic(fmt.Sprintf("snapshot: invalid stamp %q", s))
	}
	return t.UTC()
}

// blob returns b, or an empty slice for nil: the format has no null byte
// string (the store's blob columns are NOT NULL).
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// contextMap returns m, or nil for an empty map: the store keeps no
// difference between an absent and an empty encryption context
// constraint, and the format writes both as null.
func contextMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// Encode writes s in the snapshot format. It refuses a snapshot whose
// records are out of order (see Snapshot), and one holding a string that
// is not valid UTF-8, which JSON cannot carry unchanged: everything Encode
// writes, Decode reads back as it was.
func Encode(w io.Writer, s *Snapshot) error {
	if err := s.check(); err != nil {
		return err
	}
	e := &encoder{w: w, sum: sha256.New()}
	e.line(&header{headerV1: headerV1{Format: Format, Version: Version, Created: stampOf(s.Created)},
		KeyUsageSince: stampOf(s.KeyUsageSince)})
	for _, st := range s.Settings {
		e.line(&settingRecord{Kind: kindSetting, Name: st.Name, Value: blob(st.Value), Revision: st.Revision, Updated: stampOf(st.Updated)})
	}
	for _, c := range s.CustomKeyStores {
		e.line(&customKeyStoreRecord{Kind: kindCustomKeyStore, ID: c.ID, Account: c.Account, Region: c.Region, Name: c.Name,
			Type: c.Type, ClusterID: c.ClusterID, TrustAnchor: c.TrustAnchor, WrappedPassword: blob(c.WrappedPassword),
			Created: stampOf(c.Created), ConnectionState: c.ConnectionState, ConnectionErrorCode: c.ConnectionErrorCode,
			Revision: c.Revision})
	}
	for _, a := range s.AccessKeys {
		e.line(&accessKeyRecord{Kind: kindAccessKey, ID: a.ID, Account: a.Account, PrincipalARN: a.PrincipalARN,
			WrappedSecret: blob(a.WrappedSecret), Created: stampOf(a.Created)})
	}
	for _, k := range s.Keys {
		e.line(keyRecordOf(k.Key))
		for _, m := range k.Materials {
			e.line(&materialRecord{Kind: kindMaterial, KeyID: m.KeyID, ID: m.ID, Wrapped: blob(m.Wrapped),
				Created: stampOf(m.Created), RotationType: m.RotationType})
		}
		for _, p := range k.ImportParams {
			e.line(&importParamsRecord{Kind: kindImportParams, KeyID: p.KeyID, ID: p.ID, WrappedPrivateKey: blob(p.WrappedPrivateKey),
				WrappingAlgorithm: p.WrappingAlgorithm, WrappingKeySpec: p.WrappingKeySpec, Created: stampOf(p.Created), ValidTo: stampOf(p.ValidTo)})
		}
		for _, g := range k.Grants {
			e.line(&grantRecord{Kind: kindGrant, ID: g.ID, KeyID: g.KeyID, Name: g.Name, GranteePrincipal: g.GranteePrincipal,
				RetiringPrincipal: g.RetiringPrincipal, IssuingAccount: g.IssuingAccount, Operations: append([]string{}, g.Operations...),
				EncryptionContextEquals: contextMap(g.EncryptionContextEquals), EncryptionContextSubset: contextMap(g.EncryptionContextSubset),
				TokenHash: blob(g.TokenHash), Created: stampOf(g.Created)})
		}
		for _, a := range k.Aliases {
			e.line(&aliasRecord{Kind: kindAlias, Account: a.Account, Region: a.Region, Name: a.Name, KeyID: a.KeyID,
				Created: stampOf(a.Created), Updated: stampOf(a.Updated), Revision: a.Revision})
		}
		if u := k.Usage; u != nil {
			e.line(&keyUsageRecord{Kind: kindKeyUsage, KeyID: u.KeyID, Operation: u.Operation, Time: stampOf(u.Time),
				RequestID: u.RequestID, EventID: u.EventID})
		}
	}
	if e.err != nil {
		return e.err
	}
	end := endRecord{Kind: kindEnd, Counts: s.Counts(), SHA256: hex.EncodeToString(e.sum.Sum(nil))}
	e.line(&end)
	return e.err
}

func keyRecordOf(k *store.Key) *keyRecord {
	tags := make([]tagRecord, len(k.Tags))
	for i, t := range k.Tags {
		tags[i] = tagRecord{Key: t.Key, Value: t.Value}
	}
	return &keyRecord{keyRecordV1: keyRecordV1{Kind: kindKey, ID: k.ID, Account: k.Account, Region: k.Region, Description: k.Description,
		KeySpec: k.KeySpec, KeyUsage: k.KeyUsage, Origin: k.Origin, KeyManager: k.KeyManager, State: k.State,
		Created: stampOf(k.Created), DeletionDate: stampOf(k.DeletionDate), PendingWindowDays: k.PendingWindowDays,
		Policy: k.Policy, Tags: tags, CurrentMaterial: k.CurrentMaterial, RotationEnabled: k.RotationEnabled,
		RotationPeriodDays: k.RotationPeriodDays, NextRotation: stampOf(k.NextRotation), OnDemandRotations: k.OnDemandRotations,
		MaterialValidTo: stampOf(k.MaterialValidTo), ExpirationModel: k.ExpirationModel, CustomKeyStoreID: k.CustomKeyStoreID,
		Revision: k.Revision}, MultiRegionKeyID: k.MultiRegionKeyID, PrimaryRegion: k.PrimaryRegion}
}

// keyOf is the store's key of a key record.
func keyOf(r *keyRecord) *store.Key {
	k := &store.Key{ID: r.ID, Account: r.Account, Region: r.Region, Description: r.Description, KeySpec: r.KeySpec,
		KeyUsage: r.KeyUsage, Origin: r.Origin, KeyManager: r.KeyManager, State: r.State, Created: r.Created.time(),
		DeletionDate: r.DeletionDate.time(), PendingWindowDays: r.PendingWindowDays, Policy: r.Policy,
		CurrentMaterial: r.CurrentMaterial, RotationEnabled: r.RotationEnabled, RotationPeriodDays: r.RotationPeriodDays,
		NextRotation: r.NextRotation.time(), OnDemandRotations: r.OnDemandRotations, MaterialValidTo: r.MaterialValidTo.time(),
		ExpirationModel: r.ExpirationModel, CustomKeyStoreID: r.CustomKeyStoreID, Revision: r.Revision,
		MultiRegionKeyID: r.MultiRegionKeyID, PrimaryRegion: r.PrimaryRegion}
	for _, t := range r.Tags {
		k.Tags = append(k.Tags, store.Tag{Key: t.Key, Value: t.Value})
	}
	return k
}

// encoder writes lines and hashes them; the first error sticks.
type encoder struct {
	w   io.Writer
	sum hash.Hash
	n   int
	err error
}

// line writes v (a pointer to a record) as one canonical line. It checks that the line decodes
// back to v, which fails only for a string JSON cannot carry (invalid
// UTF-8, which encoding/json replaces).
func (e *encoder) line(v any) {
	if e.err != nil {
		return
	}
	e.n++
	b, err := marshalLine(v)
	if err != nil {
		e.err = fmt.Errorf("encode snapshot line %d: %w", e.n, err)
		return
	}
	back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	if err := decodeStrict(b, back); err != nil {
		e.err = fmt.Errorf("encode snapshot line %d: %w", e.n, err)
		return
	}
	if !reflect.DeepEqual(back, v) {
		e.err = fmt.Errorf("encode snapshot line %d: a string in the record is not valid UTF-8, which the snapshot cannot carry unchanged", e.n)
		return
	}
	e.sum.Write(b)
	if _, err := e.w.Write(b); err != nil {
		e.err = fmt.Errorf("write snapshot: %w", err)
	}
}

// marshalLine returns the canonical line of v, with its "\n".
func marshalLine(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeStrict decodes one line into v, refusing unknown members.
func decodeStrict(line []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// Decode reads a snapshot written by Encode. It reads r to its end and
// refuses, with an error wrapping ErrFormat and naming the line, anything
// but a whole snapshot in its canonical form: a missing or unknown header
// or version, an unknown kind or member, records out of order, a missing
// end record (a truncated snapshot), counts or a SHA-256 that do not
// match (an altered one), or anything after the end record.
func Decode(r io.Reader) (*Snapshot, error) {
	d := &decoder{r: bufio.NewReader(r), sum: sha256.New()}
	s, err := d.decode()
	if err != nil {
		if d.n == 0 {
			return nil, fmt.Errorf("%w: %w", ErrFormat, err)
		}
		return nil, fmt.Errorf("%w: line %d: %w", ErrFormat, d.n, err)
	}
	return s, nil
}

type decoder struct {
	r       *bufio.Reader
	sum     hash.Hash
	n       int // lines read
	version int // the header's
}

// next returns the next line with its "\n", or io.EOF at the end of the
// input; a last line without "\n" is io.ErrUnexpectedEOF.
func (d *decoder) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			d.n++
			return nil, fmt.Errorf("longer than %d bytes", maxLine)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			d.n++
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			d.n++
			return nil, fmt.Errorf("%w: the snapshot is truncated (its last line has no newline)", io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}

// canonical decodes line into v strictly and checks that v re-encodes to
// line.
func canonical(line []byte, v any) error {
	if err := decodeStrict(line, v); err != nil {
		return err
	}
	again, err := marshalLine(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, line) {
		return errors.New("the record is not in its canonical form (members in the documented order, no spaces, UTC times, strings escaped as the format says)")
	}
	return nil
}

func (d *decoder) decode() (*Snapshot, error) {
	line, err := d.next()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty input")
	}
	if err != nil {
		return nil, err
	}
	// The format and version first, leniently, to say what the input is
	// before finding fault with its details.
	var probe struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if json.Unmarshal(line, &probe) != nil || probe.Format != Format {
		return nil, fmt.Errorf("the first line is not a %s header", Format)
	}
	var s *Snapshot
	switch probe.Version {
	case Version:
		var h header
		if err := canonical(line, &h); err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		s = &Snapshot{Created: h.Created.time(), KeyUsageSince: h.KeyUsageSince.time()}
	case VersionOne:
		var h headerV1
		if err := canonical(line, &h); err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
		s = &Snapshot{Created: h.Created.time()}
	default:
		return nil, fmt.Errorf("snapshot format version %d: this kmsd reads versions %d and %d only", probe.Version, VersionOne, Version)
	}
	d.version = probe.Version
	d.sum.Write(line)

	// phase is the kind of the last record: records come in the order
	// of the kinds, and a key's own records after it.
	phase := 0
	order := map[string]int{kindSetting: 1, kindCustomKeyStore: 2, kindAccessKey: 3, kindKey: 4,
		kindMaterial: 5, kindImportParams: 6, kindGrant: 7, kindAlias: 8, kindKeyUsage: 9}
	if d.version == VersionOne {
		delete(order, kindKeyUsage) // version 1 has none
	}
	var key *Key
	for {
		line, err := d.next()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the snapshot ends without its end record: it is truncated")
		}
		if err != nil {
			return nil, err
		}
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(line, &kind); err != nil {
			return nil, fmt.Errorf("not a JSON object with a kind: %w", err)
		}
		if kind.Kind == kindEnd {
			return s, d.end(line, s)
		}
		rank, ok := order[kind.Kind]
		if !ok {
			return nil, fmt.Errorf("unknown kind %q", kind.Kind)
		}
		// A key starts its own group; the others may repeat but not go
		// back.
		if rank < phase && !(rank == order[kindKey] && phase > rank) {
			return nil, fmt.Errorf("a %s record after a %s record: out of order", kind.Kind, kindOf(order, phase))
		}
		if rank > order[kindKey] && key == nil {
			return nil, fmt.Errorf("a %s record before any key record", kind.Kind)
		}
		phase = rank
		if err := d.record(line, kind.Kind, s, &key); err != nil {
			return nil, fmt.Errorf("%s record: %w", kind.Kind, err)
		}
		d.sum.Write(line)
	}
}

func kindOf(order map[string]int, rank int) string {
	for k, r := range order {
		if r == rank {
			return k
		}
	}
	return "?"
}

// record decodes one record line of kind into s; key is the key whose
// records follow.
func (d *decoder) record(line []byte, kind string, s *Snapshot, key **Key) error {
	switch kind {
	case kindSetting:
		var r settingRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		s.Settings = append(s.Settings, &store.Setting{Name: r.Name, Value: r.Value, Revision: r.Revision, Updated: r.Updated.time()})
	case kindCustomKeyStore:
		var r customKeyStoreRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		s.CustomKeyStores = append(s.CustomKeyStores, &store.CustomKeyStore{ID: r.ID, Account: r.Account, Region: r.Region,
			Name: r.Name, Type: r.Type, ClusterID: r.ClusterID, TrustAnchor: r.TrustAnchor, WrappedPassword: r.WrappedPassword,
			Created: r.Created.time(), ConnectionState: r.ConnectionState, ConnectionErrorCode: r.ConnectionErrorCode, Revision: r.Revision})
	case kindAccessKey:
		var r accessKeyRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		s.AccessKeys = append(s.AccessKeys, &store.AccessKey{ID: r.ID, Account: r.Account, PrincipalARN: r.PrincipalARN,
			WrappedSecret: r.WrappedSecret, Created: r.Created.time()})
	case kindKey:
		var r keyRecord
		if d.version == VersionOne {
			if err := canonical(line, &r.keyRecordV1); err != nil {
				return err
			}
		} else if err := canonical(line, &r); err != nil {
			return err
		}
		*key = &Key{Key: keyOf(&r)}
		s.Keys = append(s.Keys, *key)
	case kindMaterial:
		var r materialRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		(*key).Materials = append((*key).Materials, &store.Material{KeyID: r.KeyID, ID: r.ID, Wrapped: r.Wrapped,
			Created: r.Created.time(), RotationType: r.RotationType})
	case kindImportParams:
		var r importParamsRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		(*key).ImportParams = append((*key).ImportParams, &store.ImportParams{KeyID: r.KeyID, ID: r.ID,
			WrappedPrivateKey: r.WrappedPrivateKey, WrappingAlgorithm: r.WrappingAlgorithm, WrappingKeySpec: r.WrappingKeySpec,
			Created: r.Created.time(), ValidTo: r.ValidTo.time()})
	case kindGrant:
		var r grantRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		(*key).Grants = append((*key).Grants, &store.Grant{ID: r.ID, KeyID: r.KeyID, Name: r.Name,
			GranteePrincipal: r.GranteePrincipal, RetiringPrincipal: r.RetiringPrincipal, IssuingAccount: r.IssuingAccount,
			Operations: r.Operations, EncryptionContextEquals: r.EncryptionContextEquals,
			EncryptionContextSubset: r.EncryptionContextSubset, TokenHash: r.TokenHash, Created: r.Created.time()})
	case kindAlias:
		var r aliasRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		(*key).Aliases = append((*key).Aliases, &store.Alias{Account: r.Account, Region: r.Region, Name: r.Name,
			KeyID: r.KeyID, Created: r.Created.time(), Updated: r.Updated.time(), Revision: r.Revision})
	case kindKeyUsage:
		var r keyUsageRecord
		if err := canonical(line, &r); err != nil {
			return err
		}
		if (*key).Usage != nil {
			return fmt.Errorf("a second use of key %q", (*key).Key.ID)
		}
		(*key).Usage = &store.KeyUse{KeyID: r.KeyID, Operation: r.Operation, Time: r.Time.time(), RequestID: r.RequestID, EventID: r.EventID}
	}
	// Each record is checked where it joins the snapshot, so that the
	// error names its line.
	return s.checkLast(kind)
}

// end checks the end record against what was read, and that nothing
// follows it.
func (d *decoder) end(line []byte, s *Snapshot) error {
	var r endRecord
	if d.version == VersionOne {
		var r1 endRecordV1
		if err := canonical(line, &r1); err != nil {
			return fmt.Errorf("end record: %w", err)
		}
		r = endRecord{Kind: r1.Kind, Counts: r1.Counts.counts(), SHA256: r1.SHA256}
	} else if err := canonical(line, &r); err != nil {
		return fmt.Errorf("end record: %w", err)
	}
	if got := s.Counts(); got != r.Counts {
		return fmt.Errorf("end record: the snapshot holds %+v, the end record counts %+v", got, r.Counts)
	}
	if sum := hex.EncodeToString(d.sum.Sum(nil)); sum != r.SHA256 {
		return fmt.Errorf("end record: the SHA-256 of the snapshot is %s, the end record says %s: the snapshot was altered or damaged", sum, r.SHA256)
	}
	if _, err := d.next(); !errors.Is(err, io.EOF) {
		return errors.New("data after the end record")
	}
	return nil
}
