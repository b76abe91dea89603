// Package store is kmsd's durable state: keys, their wrapped key material,
// aliases, grants, custom key stores, access keys and shared settings,
// behind one interface (Store, whose contracts its comment states) with two
// backends: embedded SQLite (package store/sqlite) and PostgreSQL, shared
// by any number of nodes (package store/postgres). Package store/backend
// opens the backend a configuration names; package store/storetest checks
// every backend against the contracts.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every backend. Callers test them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrInUse is returned by DeleteCustomKeyStore while keys still belong
	// to the store.
	ErrInUse = errors.New("store: in use")
	// ErrConflict is returned by a compare-and-set write whose record
	// changed since the caller read it.
	ErrConflict = errors.New("store: conflict: the record changed since it was read")
	// ErrDamaged is wrapped by Ping's error once the store met damage in
	// its stored data (SQLite: "database disk image is malformed"): a
	// fault no retry mends, reported until the store is restored.
	ErrDamaged = errors.New("store: the stored data is damaged")
	// ErrChangesPruned is returned by ChangeFeed.Changes when the changes
	// the caller asks for were pruned.
	ErrChangesPruned = errors.New("store: changes pruned")
)

// Key is the durable record of one KMS key. Account and Region scope it; ID
// is globally unique: a UUID, or for each key of a multi-Region key a name
// its service derives from the key id the related keys share and the Region
// (the store gives it no meaning).
type Key struct {
	ID          string
	Account     string
	Region      string
	Description string
	KeySpec     string // e.g. SYMMETRIC_DEFAULT
	KeyUsage    string // e.g. ENCRYPT_DECRYPT
	Origin      string // AWS_KMS, EXTERNAL, ...
	KeyManager  string // CUSTOMER or AWS
	State       string // Enabled, Disabled, PendingDeletion, PendingImport
	Created     time.Time
	// DeletionDate and PendingWindowDays are set while State is
	// PendingDeletion and zero otherwise.
	DeletionDate      time.Time
	PendingWindowDays int
	Policy            string
	Tags              []Tag
	// CurrentMaterial is the ID of the material new encryptions use.
	CurrentMaterial string
	// Automatic rotation (symmetric keys): whether it is enabled, its
	// period, and when the next automatic rotation is due (zero when
	// rotation is disabled). OnDemandRotations counts RotateKeyOnDemand
	// calls, which AWS limits per key.
	RotationEnabled    bool
	RotationPeriodDays int
	NextRotation       time.Time
	OnDemandRotations  int
	// Imported key material (Origin EXTERNAL): when the current material
	// expires (zero: never) and the ExpirationModel of its import.
	MaterialValidTo time.Time
	ExpirationModel string
	// Revision is set by the store: 1 on insert, one more on every write.
	Revision int64
	// CustomKeyStoreID is the ID of the custom key store that holds the
	// key's material (Origin AWS_CLOUDHSM), empty for keys not in a custom
	// key store. The store does not check that it names an existing custom
	// key store; DeleteCustomKeyStore refuses to remove one a key names.
	CustomKeyStoreID string
	// MultiRegionKeyID is, for each of the related keys of a multi-Region
	// key (its primary and its replicas, one per Region), the key id they
	// share ("mrk-…"); empty for a single-Region key. It never changes.
	MultiRegionKeyID string
	// PrimaryRegion is, for a key of a multi-Region key, the Region of its
	// primary key: the same in every related key (the one in that Region is
	// the primary, the others its replicas). Empty for a single-Region key.
	PrimaryRegion string
}

// CustomKeyStore is a custom key store: a PKCS#11 token that stands in for
// an AWS CloudHSM cluster and holds the key material of its keys.
type CustomKeyStore struct {
	ID          string // "cks-" + 17 lowercase hex characters, globally unique
	Account     string
	Region      string
	Name        string // unique within (Account, Region)
	Type        string // "AWS_CLOUDHSM"
	ClusterID   string // unique across all custom key stores
	TrustAnchor string // PEM certificate given at creation
	// WrappedPassword is the KeyStorePassword (the token's user PIN) wrapped by the keystore.
	WrappedPassword []byte
	Created         time.Time
	// ConnectionState is CONNECTED, CONNECTING, DISCONNECTED, DISCONNECTING or FAILED;
	// ConnectionErrorCode is set when it is FAILED.
	ConnectionState     string
	ConnectionErrorCode string
	// Revision is set by the store: 1 on insert, one more on every write.
	Revision int64
}

// ImportParams are the parameters of one GetParametersForImport call: the
// RSA wrapping key pair, its private half wrapped by the keystore, valid
// until ValidTo. ID is the SHA-256 (hex) of the import token, which is
// itself never stored.
type ImportParams struct {
	KeyID             string
	ID                string
	WrappedPrivateKey []byte
	WrappingAlgorithm string
	WrappingKeySpec   string
	Created           time.Time
	ValidTo           time.Time
}

// Tag is a key tag.
type Tag struct {
	Key   string
	Value string
}

// Material is one generation of a key's backing key material. Wrapped is the
// keystore's output; the plaintext never reaches the store.
type Material struct {
	KeyID   string
	ID      string // KeyMaterialId: 64 lowercase hex characters
	Wrapped []byte
	// Created is when the material was made: for a rotated material the
	// rotation date.
	Created time.Time
	// RotationType is how the material came to be: "" for a key's first
	// material, else RotationAutomatic or RotationOnDemand.
	RotationType string
}

// Rotation types of store.Material.
const (
	RotationAutomatic = "AUTOMATIC"
	RotationOnDemand  = "ON_DEMAND"
	// RotationPending marks imported material (ImportKeyMaterial with
	// ImportType NEW_KEY_MATERIAL) that is not yet current: an on-demand
	// rotation replaces it by the same material with RotationOnDemand.
	RotationPending = "PENDING_ROTATION"
)

// Alias names a key. Name includes the "alias/" prefix.
type Alias struct {
	Account string
	Region  string
	Name    string
	KeyID   string
	Created time.Time
	Updated time.Time
	// Revision is set by the store: 1 on insert, one more on every write.
	Revision int64
}

// AccessKey is an access key pair of a principal. WrappedSecret is the secret
// access key wrapped by the keystore.
type AccessKey struct {
	ID            string // AKIA...
	Account       string
	PrincipalARN  string // arn:aws:iam::111122223333:user/admin
	WrappedSecret []byte
	Created       time.Time
}

// Grant is a grant on a key. The grant token is not stored; TokenHash is
// its SHA-256, which the service compares to authenticate a token.
type Grant struct {
	ID                      string // 64 lowercase hex characters
	KeyID                   string
	Name                    string
	GranteePrincipal        string
	RetiringPrincipal       string
	IssuingAccount          string // arn:aws:iam::ACCOUNT:root
	Operations              []string
	EncryptionContextEquals map[string]string
	EncryptionContextSubset map[string]string
	TokenHash               []byte
	Created                 time.Time
}

// Store is the durable state of kmsd, shared by every kmsd node that uses
// it. It is split by concern; Update is the one entry point for a
// transaction that spans several calls.
//
// # Contracts every backend keeps (storetest checks them)
//
//   - Durability: a method that returns nil has committed, durably: the
//     write survives kill -9 of this process and is visible to every other
//     node that shares the store.
//   - Atomicity: every method is one transaction; a method that returns an
//     error has written nothing.
//   - Revisions: every mutable record (Key, Alias, CustomKeyStore, Setting)
//     carries a Revision the store sets: 1 when it is inserted, one more on
//     every write. A caller never sets it; a value it passes in is ignored
//     except where a method says it is compared. The rows that hold only a
//     wrapped blob besides fixed facts (Material, AccessKey, ImportParams)
//     have no Revision: their one mutable field is the blob, and
//     UpdateWrapped compares the blob itself (a rewrap always makes a new
//     blob, so an equal blob is an unchanged row).
//   - Compare and set: a write that depends on what the caller read earlier
//     (outside the transaction) names what it read, and the store refuses it
//     with ErrConflict when the record changed meanwhile (DeleteKey,
//     UpdateAlias, DeleteAlias, PutSetting, UpdateWrapped). Read-modify-write
//     methods that take a fn (UpdateKey, RotateKey, ReplaceMaterial,
//     UpdateCustomKeyStore) run fn on the record as stored, inside the
//     transaction, which excludes concurrent writes of that record: fn is the
//     place for checks, and must not call the Store itself.
//   - Change feed: every committed write appends, in the same transaction,
//     one Change per record it inserts, updates or deletes (see ChangeFeed),
//     so that every node can drop what it cached of that record.
//   - Paging: list methods return up to limit records (limit <= 0: no limit)
//     whose sort key is greater than after ("" starts at the beginning):
//     keys, access keys and custom key stores by ID, aliases by Name,
//     grants by ID. Identifiers and names sort in byte order.
//   - Enumeration: every record can be reached whatever its account or
//     region (ListAllKeys, ListAllAccessKeys, ListCustomKeyStores with
//     account "", ListSettings, and per key ListMaterials, ListImportParams,
//     ListGrants, ListAliasesOfKey), so that one Update can read the whole
//     store at one point in time (package store/snapshot).
//   - Times come back in UTC, exact to the nanosecond, between the years 1678
//     and 2262.
//   - Secrets: the store never sees key material or a secret in plaintext;
//     callers wrap them with the keystore first.
type Store interface {
	Tx
	ChangeFeed

	// Update runs fn in one transaction: every call fn makes on tx sees
	// the transaction's earlier writes, and all of them are committed
	// together when fn returns nil, or none when it returns an error
	// (returned unchanged). fn must use only tx, never the Store.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Ping checks that the store answers, cheaply (it backs every
	// readiness probe). A backend that can meet damage in its stored
	// data remembers the damage any call met and reports it from then
	// on, wrapping ErrDamaged.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Tx is what a transaction can do: every concern of the store. Each method
// called on the Store itself is a transaction of its own.
type Tx interface {
	Keys
	Materials
	Aliases
	Grants
	AccessKeys
	CustomKeyStores
	WrappedSecrets
	Settings
	KeyUsage
}

// Keys are the KMS keys' records.
type Keys interface {
	// CreateKey inserts a key and its first material (if m is non-nil) in
	// one transaction. ErrExists if the ID is taken.
	CreateKey(ctx context.Context, k *Key, m *Material) error
	// GetKey returns the key with the given ID, or ErrNotFound.
	GetKey(ctx context.Context, id string) (*Key, error)
	// UpdateKey reads the key, calls fn on a copy and writes fn's changes
	// (with the next Revision), in one transaction that excludes
	// concurrent updates of that key. When fn returns an error nothing is
	// written and UpdateKey returns that error unchanged. fn must not
	// change ID, Account, Region or MultiRegionKeyID (an error is returned
	// and nothing is written). It returns the key as written. ErrNotFound
	// for a missing key.
	UpdateKey(ctx context.Context, id string, fn func(*Key) error) (*Key, error)
	// DeleteKey removes a key with all its materials, aliases, grants and
	// import parameters, if and only if its Revision is still revision
	// (compare and set): ErrNotFound when it is gone, ErrConflict when it
	// changed since the caller read it.
	DeleteKey(ctx context.Context, id string, revision int64) error
	// ListKeys lists the keys of one account and region, ordered by ID.
	ListKeys(ctx context.Context, account, region, after string, limit int) ([]*Key, error)
	// ListAllKeys lists the keys of every account and region, in every
	// state, ordered by ID: what spans the whole store (a backup) pages
	// through it.
	ListAllKeys(ctx context.Context, after string, limit int) ([]*Key, error)
	// ListMultiRegionKeys returns the related keys of a multi-Region key:
	// every key whose MultiRegionKeyID is multiRegionKeyID (not empty),
	// ordered by Region; none when there is no such key.
	ListMultiRegionKeys(ctx context.Context, multiRegionKeyID string) ([]*Key, error)
	// KeysPendingDeletion returns the keys (of every account) in state
	// PendingDeletion whose DeletionDate is at or before t.
	KeysPendingDeletion(ctx context.Context, t time.Time) ([]*Key, error)
	// KeysDueForRotation returns the keys (of every account, in any
	// state) with rotation enabled whose NextRotation is at or before t.
	KeysDueForRotation(ctx context.Context, t time.Time) ([]*Key, error)
	// KeysWithExpiredMaterial returns the keys (of every account) in a
	// state other than PendingImport whose MaterialValidTo is set and at or
	// before t.
	KeysWithExpiredMaterial(ctx context.Context, t time.Time) ([]*Key, error)
	// CountKeysByState returns how many keys (of every account) are in each
	// state; states without keys are absent.
	CountKeysByState(ctx context.Context) (map[string]int, error)
	// CountKeysOutsideRegions returns how many keys (of every account, in
	// every state) each Region that is not one of regions holds; Regions
	// are compared byte for byte, Regions without keys are absent, and an
	// empty result means that every key is in one of regions. kmsd serve
	// calls it at every start, so its work must not grow with the keys in
	// regions: only with the distinct (account, Region) pairs of the store
	// (a few index searches each) and the keys it counts.
	CountKeysOutsideRegions(ctx context.Context, regions []string) (map[string]int, error)
}

// Materials are the generations of key material of each key, and the
// parameters of key material imports.
type Materials interface {
	// AddMaterial stores another generation of a key's material.
	// ErrNotFound if the key does not exist, ErrExists if the ID is taken.
	AddMaterial(ctx context.Context, m *Material) error
	// GetMaterial returns one material of a key, or ErrNotFound.
	GetMaterial(ctx context.Context, keyID, materialID string) (*Material, error)
	// ListMaterials returns every material of a key in the order they were
	// added (the key's first material first); none for a missing key.
	ListMaterials(ctx context.Context, keyID string) ([]*Material, error)
	// RotateKey is UpdateKey that also adds material m to the key in the
	// same transaction: when fn returns an error neither is written, and
	// fn's error is returned unchanged. fn typically checks that the key
	// is still as the caller last saw it (compare and set) and points
	// CurrentMaterial at m.
	RotateKey(ctx context.Context, id string, m *Material, fn func(*Key) error) (*Key, error)
	// ReplaceMaterial is UpdateKey that, in the same transaction, also
	// removes the material removeID of the key (when not empty; a missing
	// one is no error) and then adds material add (when not nil), which
	// ListMaterials then lists last, even when it replaces removeID.
	ReplaceMaterial(ctx context.Context, id string, add *Material, removeID string, fn func(*Key) error) (*Key, error)
	// PutImportParams stores import parameters; ErrNotFound if the key does
	// not exist, ErrExists if the key has parameters with that ID.
	PutImportParams(ctx context.Context, p *ImportParams) error
	// GetImportParams returns import parameters of a key, or ErrNotFound.
	GetImportParams(ctx context.Context, keyID, id string) (*ImportParams, error)
	// ListImportParams returns every import parameters of a key ordered by
	// ID, expired ones included until DeleteExpiredImportParams removes
	// them; none for a missing key.
	ListImportParams(ctx context.Context, keyID string) ([]*ImportParams, error)
	// DeleteExpiredImportParams removes the import parameters (of every
	// key) whose ValidTo is at or before t and returns how many.
	DeleteExpiredImportParams(ctx context.Context, t time.Time) (int, error)
}

// Aliases are the names of keys, unique within an account and region.
type Aliases interface {
	// CreateAlias inserts an alias; ErrExists if its name is taken in its
	// account and region; ErrNotFound if its key does not exist.
	CreateAlias(ctx context.Context, a *Alias) error
	// GetAlias returns an alias by name, or ErrNotFound.
	GetAlias(ctx context.Context, account, region, name string) (*Alias, error)
	// UpdateAlias points an existing alias at toKeyID and sets Updated, if
	// and only if it still points at fromKeyID (compare and set):
	// ErrNotFound if the alias or toKeyID is missing, ErrConflict if the
	// alias points at another key than fromKeyID.
	UpdateAlias(ctx context.Context, account, region, name, fromKeyID, toKeyID string, updated time.Time) error
	// DeleteAlias removes an alias if and only if it still points at keyID:
	// ErrNotFound if it is missing, ErrConflict if it points elsewhere.
	DeleteAlias(ctx context.Context, account, region, name, keyID string) error
	// ListAliases lists aliases ordered by name; when keyID is not empty only
	// the aliases of that key.
	ListAliases(ctx context.Context, account, region, keyID, after string, limit int) ([]*Alias, error)
	// CountAliases returns how many aliases point at keyID.
	CountAliases(ctx context.Context, keyID string) (int, error)
	// ListAliasesOfKey returns every alias that points at keyID, whatever
	// its account and region (the store does not check that they are the
	// key's), ordered by (Account, Region, Name); none for a missing key.
	ListAliasesOfKey(ctx context.Context, keyID string) ([]*Alias, error)
}

// Grants are the grants on keys. A grant never changes: it is created and
// deleted.
type Grants interface {
	// CreateGrant inserts a grant; ErrExists if its ID is taken,
	// ErrNotFound if its key does not exist.
	CreateGrant(ctx context.Context, g *Grant) error
	// GetGrant returns a grant by ID, or ErrNotFound.
	GetGrant(ctx context.Context, id string) (*Grant, error)
	// ListGrants lists the grants of a key ordered by ID; when name is not
	// empty only the grants of that name.
	ListGrants(ctx context.Context, keyID, name, after string, limit int) ([]*Grant, error)
	// ListRetirableGrants lists the grants (of every key) whose retiring
	// principal is principal, ordered by ID.
	ListRetirableGrants(ctx context.Context, principal, after string, limit int) ([]*Grant, error)
	// DeleteGrant removes a grant, or returns ErrNotFound.
	DeleteGrant(ctx context.Context, id string) error
}

// AccessKeys are the principals' access keys.
type AccessKeys interface {
	// PutAccessKey inserts an access key; ErrExists if the ID is taken.
	PutAccessKey(ctx context.Context, a *AccessKey) error
	// GetAccessKey returns an access key by ID, or ErrNotFound.
	GetAccessKey(ctx context.Context, id string) (*AccessKey, error)
	// ListAccessKeys returns every access key of an account, ordered by ID.
	ListAccessKeys(ctx context.Context, account string) ([]*AccessKey, error)
	// ListAllAccessKeys lists the access keys of every account, ordered by
	// ID.
	ListAllAccessKeys(ctx context.Context, after string, limit int) ([]*AccessKey, error)
}

// CustomKeyStores are the custom key stores, with the connection state
// every node follows.
type CustomKeyStores interface {
	// CreateCustomKeyStore inserts a custom key store; ErrExists if its ID, its
	// name in its account and region, or its ClusterID is taken.
	CreateCustomKeyStore(ctx context.Context, cks *CustomKeyStore) error
	// GetCustomKeyStore returns a custom key store by ID, or ErrNotFound.
	GetCustomKeyStore(ctx context.Context, id string) (*CustomKeyStore, error)
	// ListCustomKeyStores lists custom key stores ordered by ID; account ""
	// lists those of every account and region (region is then ignored).
	ListCustomKeyStores(ctx context.Context, account, region, after string, limit int) ([]*CustomKeyStore, error)
	// UpdateCustomKeyStore reads the store record, calls fn on a copy and
	// writes fn's changes in one transaction (like UpdateKey): ErrNotFound,
	// fn's error unchanged, or ErrExists when the new name or cluster is taken.
	// The ID, Account, Region, Type and Created cannot change (changes to
	// them are dropped).
	UpdateCustomKeyStore(ctx context.Context, id string, fn func(*CustomKeyStore) error) (*CustomKeyStore, error)
	// DeleteCustomKeyStore removes a custom key store: ErrNotFound if absent,
	// ErrInUse if any key (in any state) has its ID as CustomKeyStoreID,
	// checked in the same transaction.
	DeleteCustomKeyStore(ctx context.Context, id string) error
	// CountKeysInCustomKeyStore returns how many keys belong to a custom key store.
	CountKeysInCustomKeyStore(ctx context.Context, id string) (int, error)
}

// WrappedSecrets reach every blob the keystore wrapped, whatever record
// holds it, for root of trust rotation.
type WrappedSecrets interface {
	// ListWrapped lists the stored blobs wrapped by the keystore of one
	// kind (one of WrappedKinds), ordered by (KeyID, ID), up to limit records after the given position
	// (the zero WrappedRef starts at the beginning). Root rotation uses it
	// to rewrap every secret.
	ListWrapped(ctx context.Context, kind string, after WrappedRef, limit int) ([]*Wrapped, error)
	// UpdateWrapped replaces the blob of ref with new, if and only if it
	// still is old (compare and set on the blob, see Revisions above):
	// ErrNotFound when the record is gone, ErrConflict (and not
	// ErrNotFound) when its blob changed meanwhile.
	UpdateWrapped(ctx context.Context, ref WrappedRef, old, new []byte) error
}

// Settings are named documents every node shares (the root of trust
// manifest, for one): small, versioned, written by compare and set.
type Settings interface {
	// GetSetting returns a setting, or ErrNotFound.
	GetSetting(ctx context.Context, name string) (*Setting, error)
	// PutSetting writes a setting if and only if its stored Revision is
	// revision (0: it must not exist yet), and returns the new revision:
	// ErrConflict otherwise.
	PutSetting(ctx context.Context, name string, value []byte, revision int64) (int64, error)
	// ListSettings returns every setting, ordered by name.
	ListSettings(ctx context.Context) ([]*Setting, error)
}

// KeyUsage is when each key was last used for cryptography, for
// GetKeyLastUsage. A node records uses in batches, off the request path;
// records of key usage are cached nowhere, so RecordKeyUsage appends
// nothing to the change feed, and it changes no key's Revision.
type KeyUsage interface {
	// RecordKeyUsage stores each use as its key's last use, unless the one
	// stored is as late or later (so that batches from several nodes may
	// arrive in any order); a use of a key that does not exist (any more) is
	// skipped. The use of a key goes with the key (DeleteKey).
	RecordKeyUsage(ctx context.Context, uses []*KeyUse) error
	// GetKeyUsage returns the last recorded use of a key, or ErrNotFound.
	GetKeyUsage(ctx context.Context, keyID string) (*KeyUse, error)
	// KeyUsageSince returns when the store began recording key usage (when
	// its schema gained it, to the second, or what SetKeyUsageSince set).
	KeyUsageSince(ctx context.Context) (time.Time, error)
	// SetKeyUsageSince sets when the store began recording key usage. It is
	// for kmsd restore only, which carries the start of tracking of the
	// store a snapshot was taken of into an empty store, before any kmsd
	// serves it: a serving kmsd reads KeyUsageSince once and keeps it.
	SetKeyUsageSince(ctx context.Context, since time.Time) error
}

// KeyUse is one successful cryptographic use of a key.
type KeyUse struct {
	KeyID     string
	Operation string // Encrypt, Decrypt, … (KeyLastUsageTrackingOperation)
	Time      time.Time
	RequestID string // the request's x-amzn-RequestId
	EventID   string // its audit record's eventID
}

// Setting is one shared document.
type Setting struct {
	Name     string
	Value    []byte
	Revision int64
	Updated  time.Time
}

// Setting names.
const (
	// SettingRootManifest is the root of trust manifest: which roots exist
	// and which one wraps (JSON, written by kmsd root).
	SettingRootManifest = "root-manifest"
	// SettingInstallation records the first start of kmsd on this store:
	// its default Region then and when (JSON, written once by kmsd serve). A
	// store that has it has been in use.
	SettingInstallation = "installation"
	// SettingAuditAnchorPrefix starts the name of the anchor of each
	// audit log kept with this store: "audit-anchor/" + the log's id (its
	// signing key id). The anchor is how far the log had durably come
	// (JSON, moved on by kmsd serve after each digest), so that a log cut
	// back or replaced by an older copy is refused.
	SettingAuditAnchorPrefix = "audit-anchor/"
	// SettingRestored marks a store that kmsd restore filled from a
	// snapshot and that no audit log has started on yet: the one data
	// folder whose store is in use and that may start a new audit log
	// (and signing key) without being a node of a shared store. The first
	// log started on it sets its value to "consumed by log KEYID".
	SettingRestored = "restored"
	// SettingAuditNodePrefix starts the name of the record of each node
	// of a shared store: "audit-node/" + the node id, naming the audit
	// log the node keeps (JSON, written by kmsd serve), so that a node
	// whose data folder lost its log is recognised.
	SettingAuditNodePrefix = "audit-node/"
	// SettingAuditLostPrefix starts the name of the record of an audit
	// log declared lost (kmsd serve --accept-lost-log): "audit-lost/" +
	// the log's id (JSON), so that kmsd audit verify no longer asks for
	// it.
	SettingAuditLostPrefix = "audit-lost/"
	// SettingAuditKeptPrefix starts the name of the records kept for an
	// audit log: "audit-kept/" + the log's id (JSON, package audit's
	// KeptRecord list). A change committed while its log could not write
	// its record (or made by a kmsd command while kmsd serve held the
	// log) has its record kept here, signed by the log's key, until the
	// log appends it.
	SettingAuditKeptPrefix = "audit-kept/"
	// SettingSTSSessionKey is the key that seals the session tokens of
	// STS temporary credentials (package iam), wrapped by the keystore:
	// every node of a store opens the tokens any node issued.
	SettingSTSSessionKey = "sts-session-key"
)

// Checker is implemented by a backend that can check the integrity of
// its stored data (SQLite's quick_check and integrity_check), so that
// kmsd refuses to start on a damaged store rather than fail every request.
type Checker interface {
	// Check returns nil when the store is intact, or an error naming
	// what is damaged. Without full it is a quick check, fit for every
	// start; with full it checks everything (indexes included) and may
	// take as long as reading the whole store.
	Check(ctx context.Context, full bool) error
}

// ChangeFeed tells what changed since a point, so that every node sharing
// the store can drop what it cached of a changed record.
//
// Every committed write appends, in its own transaction, one Change per
// record it inserted, updated or deleted, with a Seq greater than every
// earlier one. A change becomes visible only with its transaction, and in
// Seq order: once a reader has seen Seq n, no change with a Seq below n
// appears later (a backend whose sequence may commit out of order must
// serialize the appends). Deleting a key also records the deletion of its
// aliases and grants.
type ChangeFeed interface {
	// Changes returns up to limit changes with a Seq greater than after,
	// in Seq order. ErrChangesPruned when changes after after were
	// already pruned: the caller must then drop everything it cached.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// LastChange returns the highest Seq (0 when there is none): a node
	// that loads state reads it first, then follows Changes from it.
	LastChange(ctx context.Context) (int64, error)
	// PruneChanges deletes the changes made before t, keeping at least the
	// last one.
	PruneChanges(ctx context.Context, t time.Time) (int, error)
}

// Notifier is implemented by a backend that can announce changes as they
// commit (PostgreSQL's LISTEN/NOTIFY), so that a node reads the feed at
// once instead of at its next poll. Polling stays the fallback: a lost
// notification only delays a change to the next poll.
type Notifier interface {
	// Notify calls wake after each commit that appended changes (several
	// commits may share one call), until ctx ends or the connection it
	// listens on fails; it returns that error (nil when ctx ended).
	Notify(ctx context.Context, wake func()) error
}

// Change is one entry of the change feed.
type Change struct {
	Seq  int64
	Kind string // one of the Change* kinds
	// ID names the record: a key's ID (ChangeKey, ChangeMaterial), a
	// grant's ID, a custom key store's ID, an access key's ID, a setting's
	// name, or an alias's name (ChangeAlias).
	ID string
	// KeyID is the key a material, grant or alias belongs to (for an alias
	// moved to another key: the new key).
	KeyID string
	// Account and Region scope aliases (and are set where known).
	Account, Region string
	Time            time.Time
}

// Kinds of Change.
const (
	ChangeKey            = "key"
	ChangeMaterial       = "material" // a material added or removed; ID is the key's ID
	ChangeAlias          = "alias"
	ChangeGrant          = "grant"
	ChangeAccessKey      = "access-key"
	ChangeCustomKeyStore = "custom-key-store"
	ChangeSetting        = "setting"
)

// Kinds of wrapped blobs (WrappedRef.Kind).
const (
	WrappedMaterial               = "material"                  // Material.Wrapped
	WrappedAccessKey              = "access-key"                // AccessKey.WrappedSecret
	WrappedImportParams           = "import-params"             // ImportParams.WrappedPrivateKey
	WrappedCustomKeyStorePassword = "custom-key-store-password" // CustomKeyStore.WrappedPassword
)

// WrappedKinds lists every kind of wrapped blob the store holds.
var WrappedKinds = []string{WrappedMaterial, WrappedAccessKey, WrappedImportParams, WrappedCustomKeyStorePassword}

// WrappedRef names one wrapped blob: a material (KeyID, ID), an access key
// (ID; KeyID empty), import parameters (KeyID, ID) or the password of a
// custom key store (ID; KeyID empty).
type WrappedRef struct {
	Kind  string
	KeyID string
	ID    string
}

// Wrapped is one wrapped blob with what its wrap's aad is built from: for
// materials and import parameters the account and region of their key
// (which, with KeyID, give the key ARN); for a custom key store's password
// the account and region of that custom key store.
type Wrapped struct {
	WrappedRef
	Account string
	Region  string
	Blob    []byte
}
