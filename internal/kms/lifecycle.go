package kms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// KeyMetadata describes a key as DescribeKey reports it.
type KeyMetadata struct {
	AWSAccountId             string
	KeyId                    string // bare key id
	Arn                      string
	CreationDate             time.Time
	Enabled                  bool
	Description              string
	KeyUsage                 string
	KeyState                 string
	Origin                   string
	KeyManager               string
	CustomerMasterKeySpec    string
	KeySpec                  string
	EncryptionAlgorithms     []string
	SigningAlgorithms        []string
	MacAlgorithms            []string
	KeyAgreementAlgorithms   []string
	EncapsulationAlgorithms  []string
	MultiRegion              bool
	MultiRegionConfiguration *MultiRegionConfiguration // multi-Region keys only
	DeletionDate             time.Time                 // zero unless pending deletion
	// PendingDeletionWindowInDays is zero unless pending deletion (or, for a
	// primary waiting for its replicas, PendingReplicaDeletion).
	PendingDeletionWindowInDays int
	CurrentKeyMaterialId        string
	ExpirationModel             string    // imported material only
	ValidTo                     time.Time // zero unless imported material expires
	CustomKeyStoreId            string    // keys of custom key stores only
	CloudHsmClusterId           string    // keys of custom key stores only
}

// Tag is a key tag.
type Tag struct {
	TagKey   string
	TagValue string
}

func metadataOf(k *store.Key) *KeyMetadata {
	md := &KeyMetadata{
		AWSAccountId:          k.Account,
		KeyId:                 keyIDOf(k),
		Arn:                   arnOf(k),
		CreationDate:          k.Created,
		Enabled:               k.State == StateEnabled,
		Description:           k.Description,
		KeyUsage:              k.KeyUsage,
		KeyState:              k.State,
		Origin:                k.Origin,
		KeyManager:            k.KeyManager,
		CustomerMasterKeySpec: cmkSpec(k.KeySpec),
		KeySpec:               k.KeySpec,
		CurrentKeyMaterialId:  k.CurrentMaterial,
		MultiRegion:           isMultiRegion(k),
	}
	algs := algorithmsOf(k.KeySpec, k.KeyUsage)
	md.EncryptionAlgorithms = algs.Encryption
	md.SigningAlgorithms = algs.Signing
	md.MacAlgorithms = algs.Mac
	md.KeyAgreementAlgorithms = algs.KeyAgreement
	md.EncapsulationAlgorithms = algs.Encapsulation
	if k.Origin == OriginExternal && k.State != StatePendingImport {
		md.ExpirationModel = k.ExpirationModel
		md.ValidTo = k.MaterialValidTo
	}
	switch k.State {
	case StatePendingDeletion:
		md.DeletionDate = k.DeletionDate
		md.PendingDeletionWindowInDays = k.PendingWindowDays
	case StatePendingReplicaDeletion:
		// The deletion date is known once the last replica is deleted.
		md.PendingDeletionWindowInDays = k.PendingWindowDays
	}
	return md
}

// Key specs, usages and algorithms this service implements.
const (
	SpecSymmetricDefault = "SYMMETRIC_DEFAULT"
	UsageEncryptDecrypt  = "ENCRYPT_DECRYPT"
	AlgSymmetricDefault  = "SYMMETRIC_DEFAULT"
	OriginAWSKMS         = "AWS_KMS"
)

// MaxPolicyBytes is AWS's key policy size quota.
const MaxPolicyBytes = 32768

// MaxTagsPerKey is AWS's tag quota per key.
const MaxTagsPerKey = 50

// DefaultKeyPolicy is the policy CreateKey attaches when none is given, in
// the exact pretty-printed form GetKeyPolicy returns on AWS.
func DefaultKeyPolicy(partition, account string) string {
	return `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "` + awsarn.Root(partition, account) + `"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
}

// CreateKeyInput is the CreateKey request.
type CreateKeyInput struct {
	Policy                         *string
	Description                    string
	KeyUsage                       string
	CustomerMasterKeySpec          string
	KeySpec                        string
	Origin                         string
	CustomKeyStoreId               string
	BypassPolicyLockoutSafetyCheck bool
	Tags                           []Tag
	MultiRegion                    bool
	XksKeyId                       string
}

// CreateKeyOutput is the CreateKey response.
type CreateKeyOutput struct {
	KeyMetadata *KeyMetadata
}

// fixedKeyIDKey is the context key of the key id CreateKey must give its
// key (WithFixedKeyID).
type fixedKeyIDKey struct{}

// WithFixedKeyID returns a context in which CreateKey gives the key it
// creates the id keyID (a lowercase UUID) rather than a random one, or
// fails with AlreadyExistsException when a key has that id. kmsd's seed
// (fixed key ids) uses it; no client request can: the wire has no such
// member, and the server makes every request's context itself.
func WithFixedKeyID(ctx context.Context, keyID string) context.Context {
	return context.WithValue(ctx, fixedKeyIDKey{}, keyID)
}

// CreateKey creates a customer managed key of any spec kmsd implements
// (see specs.go), with fresh material.
func (s *Service) CreateKey(ctx context.Context, c Caller, in *CreateKeyInput) (*CreateKeyOutput, error) {
	if err := c.Scope.check(); err != nil {
		return nil, internal("create key", err)
	}
	spec := in.KeySpec
	if spec != "" && in.CustomerMasterKeySpec != "" {
		return nil, awserr.New(awserr.Validation, "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
	}
	if spec == "" {
		spec = in.CustomerMasterKeySpec
	}
	if spec == "" {
		spec = SpecSymmetricDefault
	}
	usage, err := checkSpecUsage(spec, in.KeyUsage)
	if err != nil {
		return nil, err
	}
	origin := in.Origin
	if origin == "" {
		origin = OriginAWSKMS
	}
	switch {
	case origin == OriginCloudHSM && in.CustomKeyStoreId == "":
		return nil, awserr.New(awserr.Validation, "Origin AWS_CLOUDHSM requires a CustomKeyStoreId.")
	case in.CustomKeyStoreId != "" && origin != OriginCloudHSM:
		if _, err := s.customKeyStore(ctx, c, in.CustomKeyStoreId); err != nil {
			return nil, err
		}
		return nil, awserr.Newf(awserr.UnsupportedOperation, "A key in a custom key store must have Origin AWS_CLOUDHSM, not %s.", origin)
	case origin == OriginCloudHSM:
	case origin != OriginAWSKMS && (origin != OriginExternal || !importableSpec(spec)):
		return nil, awserr.Newf(awserr.UnsupportedOperation, "Origin %s is not supported for %s keys by this kmsd version.", origin, spec)
	}
	if in.XksKeyId != "" {
		return nil, awserr.New(awserr.UnsupportedOperation, "XksKeyId requires an external key store, which this kmsd does not offer.")
	}
	if in.MultiRegion && (in.CustomKeyStoreId != "" || origin == OriginCloudHSM) {
		return nil, awserr.New(awserr.UnsupportedOperation, "A multi-Region key cannot be created in a custom key store.")
	}
	policy := DefaultKeyPolicy(c.Partition, c.Account)
	if in.Policy != nil {
		if err := checkPolicy(*in.Policy); err != nil {
			return nil, err
		}
		policy = *in.Policy
	}
	tags, err := mergeTags(nil, in.Tags)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewRandomFromReader(s.rand)
	if err != nil {
		return nil, internal("generate key id", err)
	}
	keyID := id.String()
	if fixed, ok := ctx.Value(fixedKeyIDKey{}).(string); ok {
		if in.MultiRegion || !isUUID(fixed) {
			return nil, awserr.Newf(awserr.Validation, "A fixed key id must be a UUID in lowercase, for a single-Region key: %q is not one.", fixed)
		}
		keyID = fixed
	}
	var mrk string
	if in.MultiRegion {
		// A multi-Region primary key: its id is the one its replicas
		// will share (multiregion.go).
		if mrk, err = newMultiRegionKeyID(s.rand); err != nil {
			return nil, internal("generate key id", err)
		}
		keyID = recordID(c.Region, mrk)
	}
	k := &store.Key{
		ID:          keyID,
		Account:     c.Account,
		Region:      c.Region,
		Description: in.Description,
		KeySpec:     spec,
		KeyUsage:    usage,
		Origin:      origin,
		KeyManager:  "CUSTOMER",
		State:       StateEnabled,
		Created:     s.now().UTC(),
		Policy:      policy,
		Tags:        tags,
	}
	if mrk != "" {
		k.MultiRegionKeyID, k.PrimaryRegion = mrk, c.Region
	}
	var m *store.Material
	if in.CustomKeyStoreId != "" {
		// The material is generated inside the custom key store's HSM.
		if err := s.createHSMKey(ctx, c, k, in.CustomKeyStoreId); err != nil {
			return nil, err
		}
	} else if origin == OriginExternal {
		// Imported material comes later (import.go).
		k.State = StatePendingImport
	} else {
		m, err = s.newMaterialFor(ctx, k)
		if err != nil {
			return nil, err
		}
		k.CurrentMaterial = m.ID
	}
	if err := s.store.CreateKey(ctx, k, m); err != nil {
		if k.CustomKeyStoreID != "" {
			s.destroyHSMKey(ctx, k) // no orphan in the HSM
		}
		if errors.Is(err, store.ErrExists) && keyID != id.String() {
			return nil, awserr.Newf(awserr.AlreadyExists, "A key with id %s already exists.", keyID)
		}
		return nil, internal("create key", err)
	}
	s.view.dropKey(k.ID)
	s.log.InfoContext(ctx, "key created", "key", arnOf(k))
	md, err := s.describe(ctx, k)
	if err != nil {
		return nil, err
	}
	return &CreateKeyOutput{KeyMetadata: md}, nil
}

// KeyIdInput is the request of the operations that take only a KeyId.
type KeyIdInput struct {
	KeyId       string
	GrantTokens []string
}

// DescribeKeyOutput is the DescribeKey response.
type DescribeKeyOutput struct {
	KeyMetadata *KeyMetadata
}

// DescribeKey returns the metadata of a key in any state.
func (s *Service) DescribeKey(ctx context.Context, c Caller, in *KeyIdInput) (*DescribeKeyOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	md, err := s.describe(ctx, k)
	if err != nil {
		return nil, err
	}
	return &DescribeKeyOutput{KeyMetadata: md}, nil
}

// ListInput is the paging part of every List request.
type ListInput struct {
	Limit  *int32
	Marker string
}

// KeyListEntry is one key in ListKeys.
type KeyListEntry struct {
	KeyId  string
	KeyArn string
}

// ListKeysOutput is the ListKeys response.
type ListKeysOutput struct {
	Keys       []KeyListEntry
	NextMarker string
	Truncated  bool
}

// limitOf returns the page size of a list request.
func limitOf(l *int32, def, max int) int {
	if l == nil {
		return def
	}
	n := int(*l)
	if n > max {
		return max
	}
	return n
}

var errBadMarker = awserr.New(awserr.InvalidMarker, "The marker is invalid. Use the NextMarker from a previous response.")

// ListKeys lists the keys of the caller's account in this region, ordered
// by key id. The marker is the id of the last key returned.
func (s *Service) ListKeys(ctx context.Context, c Caller, in *ListInput) (*ListKeysOutput, error) {
	if in.Marker != "" && !isKeyID(in.Marker) {
		return nil, errBadMarker
	}
	limit := limitOf(in.Limit, 100, 1000)
	// Records sort as their key ids do (a Region's records of
	// multi-Region keys are "<key id>/<Region>"), so the marker, a key id,
	// names the record to list after.
	after := ""
	if in.Marker != "" {
		after = recordID(c.Region, in.Marker)
	}
	ks, err := s.store.ListKeys(ctx, c.Account, c.Region, after, limit+1)
	if err != nil {
		return nil, internal("list keys", err)
	}
	out := &ListKeysOutput{Keys: []KeyListEntry{}}
	if len(ks) > limit {
		ks = ks[:limit]
		out.Truncated = true
		out.NextMarker = keyIDOf(ks[len(ks)-1])
	}
	for _, k := range ks {
		out.Keys = append(out.Keys, KeyListEntry{KeyId: keyIDOf(k), KeyArn: arnOf(k)})
	}
	return out, nil
}

// UpdateKeyDescriptionInput is the UpdateKeyDescription request.
type UpdateKeyDescriptionInput struct {
	KeyId       string
	Description *string // required; a pointer tells absent from empty
}

// UpdateKeyDescription replaces a key's description.
func (s *Service) UpdateKeyDescription(ctx context.Context, c Caller, in *UpdateKeyDescriptionInput) error {
	_, err := s.manageKey(ctx, c, in.KeyId, func(k *store.Key) error {
		if in.Description != nil {
			k.Description = *in.Description
		}
		return nil
	})
	return err
}

// EnableKey sets a key's state to Enabled.
func (s *Service) EnableKey(ctx context.Context, c Caller, in *KeyIdInput) error {
	return s.setEnabled(ctx, c, in.KeyId, StateEnabled)
}

// DisableKey sets a key's state to Disabled.
func (s *Service) DisableKey(ctx context.Context, c Caller, in *KeyIdInput) error {
	return s.setEnabled(ctx, c, in.KeyId, StateDisabled)
}

func (s *Service) setEnabled(ctx context.Context, c Caller, keyID, state string) error {
	k, err := s.resolve(ctx, c, keyID, idOrARN)
	if err != nil {
		return err
	}
	before := ""
	_, err = s.updateKey(ctx, k.ID, func(k *store.Key) error {
		before = k.State
		switch k.State {
		case StateEnabled, StateDisabled:
			k.State = state
			return nil
		default:
			return checkUsable(k)
		}
	})
	if err == nil && before != state {
		s.log.InfoContext(ctx, "key state changed", "key", arnOf(k), "state", state)
	}
	return err
}

// ScheduleKeyDeletionInput is the ScheduleKeyDeletion request.
type ScheduleKeyDeletionInput struct {
	KeyId               string
	PendingWindowInDays *int32
}

// ScheduleKeyDeletionOutput is the ScheduleKeyDeletion response.
type ScheduleKeyDeletionOutput struct {
	KeyId               string // key ARN
	DeletionDate        time.Time
	KeyState            string
	PendingWindowInDays int
}

// ScheduleKeyDeletion puts a key in PendingDeletion for 7 to 30 days (30 by
// default), after which the reaper deletes it and destroys its material.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, c Caller, in *ScheduleKeyDeletionInput) (*ScheduleKeyDeletionOutput, error) {
	days := 30
	if in.PendingWindowInDays != nil {
		days = int(*in.PendingWindowInDays)
		if days < 7 || days > 30 {
			return nil, awserr.Invalid(rangeViolation("pendingWindowInDays", days, 7, 30))
		}
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if isMultiRegion(k) && !isReplica(k) {
		k, err = s.schedulePrimaryDeletion(ctx, k, days)
	} else {
		k, err = s.updateKey(ctx, k.ID, func(k *store.Key) error {
			if err := checkManageable(k); err != nil {
				return err
			}
			k.State = StatePendingDeletion
			k.DeletionDate = s.now().UTC().Add(time.Duration(days) * day)
			k.PendingWindowDays = days
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "key deletion scheduled", "key", arnOf(k), "state", k.State, "deletion_date", k.DeletionDate)
	return &ScheduleKeyDeletionOutput{KeyId: arnOf(k), DeletionDate: k.DeletionDate, KeyState: k.State, PendingWindowInDays: days}, nil
}

// schedulePrimaryDeletion schedules the deletion of multi-Region primary
// key k: PendingDeletion when it has no replicas, else
// PendingReplicaDeletion, where it waits (in no Region usable) until the
// last replica is deleted (deleteReplica) before its own waiting period
// of days begins.
//
// The replicas are listed outside the key's write; a replica made or
// deleted meanwhile wrote the primary too (multiregion.go), so the write
// is a compare and set on the revision read before the list.
func (s *Service) schedulePrimaryDeletion(ctx context.Context, k *store.Key, days int) (*store.Key, error) {
	for range 3 {
		fresh, err := s.store.GetKey(ctx, k.ID)
		if err != nil {
			return nil, s.materialWriteError(k, err)
		}
		related, err := s.store.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
		if err != nil {
			return nil, internal("list the keys of a multi-Region key", err)
		}
		replicas := slices.ContainsFunc(related, isReplica)
		k, err = s.updateKey(ctx, k.ID, func(cur *store.Key) error {
			if err := checkManageable(cur); err != nil {
				return err
			}
			if cur.Revision != fresh.Revision {
				return errRotationRaced
			}
			cur.PendingWindowDays = days
			if replicas {
				cur.State, cur.DeletionDate = StatePendingReplicaDeletion, time.Time{}
			} else {
				cur.State, cur.DeletionDate = StatePendingDeletion, s.now().UTC().Add(time.Duration(days)*day)
			}
			return nil
		})
		if !errors.Is(err, errRotationRaced) {
			return k, err
		}
		k = fresh
	}
	return nil, awserr.Newf(awserr.Conflict, "%s changed while its deletion was being scheduled. Try again.", arnOf(k))
}

// CancelKeyDeletionOutput is the CancelKeyDeletion response.
type CancelKeyDeletionOutput struct {
	KeyId string // key ARN
}

// CancelKeyDeletion takes a key out of PendingDeletion; like AWS it leaves
// the key Disabled, or PendingImport when it has no imported material.
func (s *Service) CancelKeyDeletion(ctx context.Context, c Caller, in *KeyIdInput) (*CancelKeyDeletionOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	k, err = s.updateKey(ctx, k.ID, func(k *store.Key) error {
		if k.State != StatePendingDeletion && k.State != StatePendingReplicaDeletion {
			return awserr.Newf(awserr.KMSInvalidState, "%s is not pending deletion.", arnOf(k))
		}
		k.State = StateDisabled
		if lacksImportedMaterial(k) {
			k.State = StatePendingImport
		}
		k.DeletionDate = time.Time{}
		k.PendingWindowDays = 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "key deletion cancelled", "key", arnOf(k))
	return &CancelKeyDeletionOutput{KeyId: arnOf(k)}, nil
}

// rangeViolation reports an integer outside [min, max].
func rangeViolation(field string, v, min, max int) awserr.Violation {
	c := fmt.Sprintf("Member must have value greater than or equal to %d", min)
	if v > max {
		c = fmt.Sprintf("Member must have value less than or equal to %d", max)
	}
	return awserr.Violation{Field: field, Value: fmt.Sprint(v), Constraint: c}
}

// ReapDeletedKeys deletes every key whose deletion date has passed, with its
// material and aliases, and returns how many it deleted.
//
// The list of due keys is read outside any transaction, so a key may have
// left PendingDeletion since (CancelKeyDeletion, on this node or another):
// each delete is a compare and set on the revision listed, and a key that
// changed meanwhile is left alone. If it is still due, the next pass finds
// it again.
func (s *Service) ReapDeletedKeys(ctx context.Context) (int, error) {
	now := s.now().UTC()
	due, err := s.store.KeysPendingDeletion(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("reap: list keys pending deletion: %w", err)
	}
	return s.forEachDue(ctx, "reap: delete key", due, func(k *store.Key) error {
		del := func() error { return s.store.DeleteKey(ctx, k.ID, k.Revision) }
		if isReplica(k) {
			del = func() error { return s.deleteReplica(ctx, k) }
		}
		if err := del(); err != nil {
			return err
		}
		if k.CustomKeyStoreID != "" {
			s.destroyHSMKey(ctx, k)
		}
		s.forget(k.ID)
		s.log.InfoContext(ctx, "key deleted", "key", arnOf(k))
		return nil
	})
}

// forEachDue runs step on each key a background task listed as due and
// returns how many it changed. The list was read outside any transaction,
// so each step is a compare and set on the key as listed: a key that
// changed since (errRotationRaced, store.ErrConflict) or vanished
// (store.ErrNotFound, or the NotFoundException of an operation's helper)
// is left alone, and the next pass sees it as it is then. Any other error
// stops the pass.
func (s *Service) forEachDue(ctx context.Context, what string, due []*store.Key, step func(*store.Key) error) (int, error) {
	n := 0
	for _, k := range due {
		err := step(k)
		var ae *awserr.Error
		switch {
		case err == nil:
			n++
		case errors.Is(err, errRotationRaced), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// Lost a race with another writer: the next pass sees the
			// key as it is now.
			s.view.dropKey(k.ID)
		case errors.As(err, &ae):
			// The key refuses the step (its state, its custom key
			// store, …): it stays due and is retried every pass, so
			// say so, once per key and step per stepLogInterval.
			s.view.dropKey(k.ID)
			if s.refusedSteps.due(what+" "+k.ID, s.now()) {
				s.log.WarnContext(ctx, "background step refused; retried at every pass until it succeeds", "step", what,
					"key", arnOf(k), "code", ae.Code, "reason", ae.Message)
			}
		default:
			return n, fmt.Errorf("%s %s: %w", what, k.ID, err)
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
	return n, nil
}

// stepLogInterval is how often a background step that keeps being refused
// for one key is logged again.
const stepLogInterval = time.Hour

// stepLogMax bounds the steps stepLog remembers.
const stepLogMax = 10000

// stepLog remembers when each refused step was last logged.
type stepLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether step should be logged at now, and notes that it is.
func (l *stepLog) due(step string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[step]; ok && now.Sub(t) < stepLogInterval {
		return false
	}
	if l.last == nil || len(l.last) >= stepLogMax {
		// Bounded: forgetting only means logging a step again early.
		l.last = map[string]time.Time{}
	}
	l.last[step] = now
	return true
}

// ChangeRetention is how long the store keeps its change feed.
const ChangeRetention = time.Hour

// RunReaper calls ReapDeletedKeys, RotateDueKeys (rotation.go) and
// ExpireImportedMaterial (import.go), and prunes the change feed, every
// interval until ctx ends. Each of its writes is a compare and set on the
// state it read, so several nodes may run it on one store: each change is
// made once.
func (s *Service) RunReaper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.ReapDeletedKeys(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "key deletion reaper failed", "err", err)
		}
		if _, err := s.RotateDueKeys(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "key rotation scheduler failed", "err", err)
		}
		if _, err := s.ExpireImportedMaterial(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "imported key material expiry failed", "err", err)
		}
		// Changes are kept long enough for any node that follows the
		// feed; one that fell further behind drops its whole cache.
		if _, err := s.store.PruneChanges(ctx, time.Now().Add(-ChangeRetention)); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "pruning the change feed failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
