package kms

// Multi-Region keys: a primary key and its replicas, one in each of their
// Regions, sharing a key id ("mrk-…"), a key spec, usage and origin, their
// key material and the primary's rotation; each with its own key policy,
// tags, aliases, grants, description and state.
//
// Each related key is a record of its own (scope.go: "<key id>/<Region>"),
// so everything that lives in one Region — resolution, aliases, grants,
// authorization, caching, the audit record — works for it unchanged. What
// they share is kept in step by transactions that span them:
//
//   - Key material: each related key holds its own copy of every material,
//     wrapped by the keystore under its own key ARN, Region included
//     (materialAAD). The binding of wrapped material to one key ARN stays
//     what it is for every key; no wrapped blob is valid for two records,
//     and rewrapping (root rotation) needs nothing new. ReplicateKey copies
//     every material of the primary into the new replica (unwrapped and
//     wrapped again under the replica's ARN) in the transaction that creates
//     it; a rotation adds the new material to every related key in one
//     transaction. The material ids are the same in every Region, so a blob
//     (which names the shared key id and its material id) opens in any of
//     them.
//   - Rotation settings live on the primary only (the reaper rotates
//     primaries; replicas report the primary's status); UpdatePrimaryRegion
//     moves them.
//   - The primary's Region (store.Key.PrimaryRegion) is in every related
//     key and changes in all of them at once.
//
// Every transaction that changes the set of related keys or their material
// writes the primary first (ReplicateKey, the deletion of a replica, a
// rotation): its row lock orders them, and its Revision tells a reader that
// the set may have changed (ScheduleKeyDeletion of a primary).
//
// Replicas live in this deployment's Regions only: a kmsd cannot replicate
// a key into another kmsd deployment (or into AWS).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// Multi-Region key types, and the state of a primary key waiting for its
// replicas to be deleted before its own waiting period begins.
const (
	MultiRegionPrimary          = "PRIMARY"
	MultiRegionReplica          = "REPLICA"
	StatePendingReplicaDeletion = "PendingReplicaDeletion"
)

// isMultiRegion reports whether k is a key of a multi-Region key.
func isMultiRegion(k *store.Key) bool { return k.MultiRegionKeyID != "" }

// isReplica reports whether k is a replica key of a multi-Region key.
func isReplica(k *store.Key) bool { return isMultiRegion(k) && k.Region != k.PrimaryRegion }

// multiRegionKeyType is PRIMARY or REPLICA for a key of a multi-Region
// key, "" otherwise.
func multiRegionKeyType(k *store.Key) string {
	switch {
	case !isMultiRegion(k):
		return ""
	case isReplica(k):
		return MultiRegionReplica
	}
	return MultiRegionPrimary
}

// newMultiRegionKeyID returns a fresh multi-Region key id: "mrk-" and 32
// random lowercase hex digits.
func newMultiRegionKeyID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", err
	}
	return "mrk-" + hex.EncodeToString(b[:]), nil
}

// served reports whether region is one of the deployment's Regions.
func (s *Service) served(region string) bool {
	return len(s.regions) == 0 || slices.Contains(s.regions, region)
}

// checkServed refuses a Region a request names (field) that this
// deployment does not serve.
func (s *Service) checkServed(field, region string) error {
	if s.served(region) {
		return nil
	}
	return awserr.Newf(awserr.UnsupportedOperation, "%s %s is not served: this kmsd serves %s. Replicas live in this deployment's Regions only.",
		field, region, strings.Join(s.regions, ", "))
}

// primaryID returns the record of the primary key of k's multi-Region key.
func primaryID(k *store.Key) string { return recordID(k.PrimaryRegion, k.MultiRegionKeyID) }

// MultiRegionKey is one key of a multi-Region key in MultiRegionConfiguration.
type MultiRegionKey struct {
	Arn    string
	Region string
}

// MultiRegionConfiguration is DescribeKey's view of a multi-Region key: the
// type of the key described, its primary and every replica (a replica's
// view includes itself).
type MultiRegionConfiguration struct {
	MultiRegionKeyType string
	PrimaryKey         *MultiRegionKey
	ReplicaKeys        []MultiRegionKey
}

// multiRegionConfiguration reads the related keys of k from the store.
func (s *Service) multiRegionConfiguration(ctx context.Context, k *store.Key) (*MultiRegionConfiguration, error) {
	related, err := s.store.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
	if err != nil {
		return nil, internal("list the keys of a multi-Region key", err)
	}
	mrc := &MultiRegionConfiguration{MultiRegionKeyType: multiRegionKeyType(k), ReplicaKeys: []MultiRegionKey{}}
	for _, r := range related {
		e := MultiRegionKey{Arn: arnOf(r), Region: r.Region}
		if r.Region == k.PrimaryRegion {
			mrc.PrimaryKey = &e
		} else {
			mrc.ReplicaKeys = append(mrc.ReplicaKeys, e)
		}
	}
	return mrc, nil
}

// ReplicateKeyInput is the ReplicateKey request.
type ReplicateKeyInput struct {
	KeyId                          string
	ReplicaRegion                  string
	Policy                         *string
	BypassPolicyLockoutSafetyCheck bool
	Description                    string
	Tags                           []Tag
}

// ReplicateKeyOutput is the ReplicateKey response.
type ReplicateKeyOutput struct {
	ReplicaKeyMetadata *KeyMetadata
	ReplicaPolicy      string
	ReplicaTags        []Tag
}

// checkReplicable refuses to replicate a key that is not a multi-Region
// primary key in a state that allows it.
func checkReplicable(k *store.Key) error {
	switch {
	case !isMultiRegion(k):
		return awserr.Newf(awserr.UnsupportedOperation, "%s is not a multi-Region key: only multi-Region primary keys can be replicated (CreateKey with MultiRegion true).", arnOf(k))
	case isReplica(k):
		return awserr.Newf(awserr.UnsupportedOperation, "%s is a multi-Region replica key: replicate its primary key, in %s.", arnOf(k), k.PrimaryRegion)
	}
	return checkMultiRegionState(k)
}

// checkMultiRegionState is the key state ReplicateKey and
// UpdatePrimaryRegion need of the keys they touch: not pending deletion,
// not disabled.
func checkMultiRegionState(k *store.Key) error {
	switch k.State {
	case StateEnabled, StatePendingImport:
		return nil
	case StateDisabled:
		return awserr.Newf(awserr.Disabled, "%s is disabled.", arnOf(k))
	}
	return checkUsable(k)
}

// checkReplicaRegion refuses a ReplicaRegion where primary k cannot have a
// replica.
func (s *Service) checkReplicaRegion(k *store.Key, region string) error {
	if region == k.Region {
		return awserr.Newf(awserr.Validation, "ReplicaRegion %s is the Region of the primary key %s: a replica key must be in another Region.", region, arnOf(k))
	}
	return s.checkServed("ReplicaRegion", region)
}

// ReplicateKey creates a replica of a multi-Region primary key in another
// Region this kmsd serves: the same key id, spec, usage, origin and key
// material, its own policy (the default key policy unless Policy is
// given), description and tags. A replica of a key with imported material
// is created PendingImport: the same material must be imported into it.
func (s *Service) ReplicateKey(ctx context.Context, c Caller, in *ReplicateKeyInput) (*ReplicateKeyOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkReplicable(k); err != nil {
		return nil, err
	}
	if err := s.checkReplicaRegion(k, in.ReplicaRegion); err != nil {
		return nil, err
	}
	policy := DefaultKeyPolicy(awsarn.PartitionOf(k.Region), k.Account)
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
	replica := &store.Key{
		ID:               recordID(in.ReplicaRegion, k.MultiRegionKeyID),
		Account:          k.Account,
		Region:           in.ReplicaRegion,
		Description:      in.Description,
		KeySpec:          k.KeySpec,
		KeyUsage:         k.KeyUsage,
		Origin:           k.Origin,
		KeyManager:       k.KeyManager,
		State:            StateEnabled,
		Policy:           policy,
		Tags:             tags,
		MultiRegionKeyID: k.MultiRegionKeyID,
		PrimaryRegion:    k.Region,
	}
	if _, err := s.store.GetKey(ctx, replica.ID); err == nil {
		return nil, errReplicaExists(k, in.ReplicaRegion)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, internal("get key", err)
	}
	// A rotation of the primary between reading its materials and writing
	// the replica is seen in the transaction (its CurrentMaterial moved):
	// the copy is made again.
	for attempt := 1; ; attempt++ {
		replica.Created = s.now().UTC()
		err = s.replicate(ctx, k, replica)
		if !errors.Is(err, errRotationRaced) {
			break
		}
		if attempt == 3 {
			return nil, awserr.Newf(awserr.Conflict, "%s changed while it was being replicated. Try again.", arnOf(k))
		}
		fresh, err := s.store.GetKey(ctx, k.ID)
		if err != nil {
			return nil, s.materialWriteError(k, err)
		}
		k = fresh
	}
	if err != nil {
		return nil, err
	}
	noteKey(ctx, replica)
	s.log.InfoContext(ctx, "key replicated", "key", arnOf(k), "replica", arnOf(replica))
	md, err := s.describe(ctx, replica)
	if err != nil {
		return nil, err
	}
	out := &ReplicateKeyOutput{ReplicaKeyMetadata: md, ReplicaPolicy: replica.Policy, ReplicaTags: []Tag{}}
	for _, t := range replica.Tags {
		out.ReplicaTags = append(out.ReplicaTags, Tag{TagKey: t.Key, TagValue: t.Value})
	}
	return out, nil
}

func errReplicaExists(k *store.Key, region string) error {
	return awserr.Newf(awserr.AlreadyExists, "%s already has a replica key in %s: %s.", arnOf(k), region,
		regionARN(region, k.Account, "key/"+k.MultiRegionKeyID))
}

// replicate writes replica, a copy of primary k as read, with copies of its
// materials wrapped under the replica's ARN; errRotationRaced when the
// primary's material changed since k was read.
func (s *Service) replicate(ctx context.Context, k, replica *store.Key) error {
	var copies []*store.Material
	if k.Origin == OriginExternal {
		// No material is copied: the same material must be imported into
		// the replica, which must match the primary's current one.
		replica.State = StatePendingImport
		replica.CurrentMaterial = k.CurrentMaterial
	} else {
		ms, err := s.store.ListMaterials(ctx, k.ID)
		if err != nil {
			return internal("list key materials", err)
		}
		for _, m := range ms {
			c, err := s.rewrapMaterial(ctx, k, replica, m)
			if err != nil {
				return err
			}
			copies = append(copies, c)
		}
		replica.CurrentMaterial = k.CurrentMaterial
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		// Writing the primary first orders this with its rotations and
		// deletion (see the file comment).
		if _, err := tx.UpdateKey(ctx, k.ID, func(cur *store.Key) error {
			if cur.CurrentMaterial != k.CurrentMaterial {
				return errRotationRaced
			}
			return checkReplicable(cur)
		}); err != nil {
			return err
		}
		var first *store.Material
		if len(copies) > 0 {
			first = copies[0]
		}
		if err := tx.CreateKey(ctx, replica, first); err != nil {
			return err
		}
		for _, m := range copies[min(1, len(copies)):] {
			if err := tx.AddMaterial(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	s.view.dropKey(k.ID)
	s.view.dropKey(replica.ID)
	var ae *awserr.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae), errors.Is(err, errRotationRaced):
		return err
	case errors.Is(err, store.ErrExists):
		return errReplicaExists(k, replica.Region)
	case errors.Is(err, store.ErrNotFound):
		s.forget(k.ID)
		return notFoundKey(arnOf(k))
	}
	return internal("replicate key", err)
}

// rewrapMaterial returns material m of key from, wrapped for key to.
func (s *Service) rewrapMaterial(ctx context.Context, from, to *store.Key, m *store.Material) (*store.Material, error) {
	plain, err := s.keystore.Unwrap(ctx, m.Wrapped, materialAAD(arnOf(from), m.ID))
	if err != nil {
		return nil, internal(fmt.Sprintf("unwrap key material of %s", from.ID), err)
	}
	defer clear(plain)
	wrapped, err := s.keystore.Wrap(ctx, plain, materialAAD(arnOf(to), m.ID))
	if err != nil {
		return nil, internal("wrap key material", err)
	}
	return &store.Material{KeyID: to.ID, ID: m.ID, Wrapped: wrapped, Created: m.Created, RotationType: m.RotationType}, nil
}

// UpdatePrimaryRegionInput is the UpdatePrimaryRegion request.
type UpdatePrimaryRegionInput struct {
	KeyId         string
	PrimaryRegion string
}

// checkPrimaryMove refuses an UpdatePrimaryRegion that cannot move the
// primary of k (the current primary) to region.
func (s *Service) checkPrimaryMove(k *store.Key, region string) error {
	switch {
	case !isMultiRegion(k):
		return awserr.Newf(awserr.UnsupportedOperation, "%s is not a multi-Region key.", arnOf(k))
	case isReplica(k):
		return awserr.Newf(awserr.UnsupportedOperation, "%s is a replica key: UpdatePrimaryRegion names the current primary key, in %s.", arnOf(k), k.PrimaryRegion)
	case region == k.Region:
		return awserr.Newf(awserr.Validation, "%s is the primary key already: PrimaryRegion must be the Region of one of its replica keys.", arnOf(k))
	}
	if err := s.checkServed("PrimaryRegion", region); err != nil {
		return err
	}
	return checkMultiRegionState(k)
}

// newPrimary returns the replica of primary k in region, which is to
// become the primary.
func (s *Service) newPrimary(ctx context.Context, k *store.Key, region string) (*store.Key, error) {
	r, err := s.key(ctx, recordID(region, k.MultiRegionKeyID))
	if isNotFound(err) {
		return nil, awserr.Newf(awserr.NotFound, "%s has no replica key in %s.", arnOf(k), region)
	}
	if err != nil {
		return nil, internal("get key", err)
	}
	if err := checkMultiRegionState(r); err != nil {
		return nil, err
	}
	return r, nil
}

// UpdatePrimaryRegion makes the replica in PrimaryRegion the primary key of
// a multi-Region key, and the current primary a replica: in one
// transaction, every related key names the new primary Region, and the
// rotation settings move to the new primary.
func (s *Service) UpdatePrimaryRegion(ctx context.Context, c Caller, in *UpdatePrimaryRegionInput) error {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	if err := s.checkPrimaryMove(k, in.PrimaryRegion); err != nil {
		return err
	}
	np, err := s.newPrimary(ctx, k, in.PrimaryRegion)
	if err != nil {
		return err
	}
	var related []*store.Key
	err = s.store.Update(ctx, func(tx store.Tx) error {
		var moved store.Key // the rotation settings of the old primary
		// The old primary first (it orders this with the transactions
		// that change the related keys), then the others.
		if _, err := tx.UpdateKey(ctx, k.ID, func(cur *store.Key) error {
			if cur.PrimaryRegion != k.Region {
				return errPrimaryMoved(cur)
			}
			if err := checkMultiRegionState(cur); err != nil {
				return err
			}
			moved = *cur
			cur.PrimaryRegion = in.PrimaryRegion
			cur.RotationEnabled, cur.RotationPeriodDays, cur.NextRotation, cur.OnDemandRotations = false, 0, time.Time{}, 0
			return nil
		}); err != nil {
			return err
		}
		var err error
		related, err = tx.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
		if err != nil {
			return err
		}
		for _, r := range related {
			if r.ID == k.ID {
				continue
			}
			if _, err := tx.UpdateKey(ctx, r.ID, func(cur *store.Key) error {
				if cur.PrimaryRegion != k.Region {
					return errPrimaryMoved(cur)
				}
				if cur.ID == np.ID {
					if err := checkMultiRegionState(cur); err != nil {
						return err
					}
					cur.RotationEnabled, cur.RotationPeriodDays = moved.RotationEnabled, moved.RotationPeriodDays
					cur.NextRotation, cur.OnDemandRotations = moved.NextRotation, moved.OnDemandRotations
				}
				cur.PrimaryRegion = in.PrimaryRegion
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range related {
		s.view.dropKey(r.ID)
	}
	s.view.dropKey(k.ID)
	if err != nil {
		return s.materialWriteError(k, err)
	}
	noteKey(ctx, np)
	s.log.InfoContext(ctx, "primary Region updated", "key", arnOf(k), "primary", arnOf(np))
	return nil
}

func errPrimaryMoved(k *store.Key) error {
	return awserr.Newf(awserr.Conflict, "The primary Region of %s changed while the request was being made. Try again.", arnOf(k))
}

// primaryFor returns the primary key of k's multi-Region key (k itself
// when it is the primary), for what replicas share with it: rotation.
func (s *Service) primaryFor(ctx context.Context, k *store.Key) (*store.Key, error) {
	if !isReplica(k) {
		return k, nil
	}
	p, err := s.key(ctx, primaryID(k))
	if err != nil {
		return nil, internal("get the primary key of "+k.ID, err)
	}
	return p, nil
}

// errReplicaRotation refuses a rotation operation that only the primary
// key of a multi-Region key takes.
func errReplicaRotation(k *store.Key) error {
	return awserr.Newf(awserr.UnsupportedOperation, "%s is a multi-Region replica key: its key material rotates with its primary key, in %s; manage rotation there.", arnOf(k), k.PrimaryRegion)
}

// rotateMultiRegion is rotate for a multi-Region primary key k: the new
// material goes to every related key, each copy wrapped under its key's
// ARN, in one transaction.
func (s *Service) rotateMultiRegion(ctx context.Context, k *store.Key, rotationType string, check func(*store.Key) error) (*store.Key, error) {
	related, err := s.store.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
	if err != nil {
		return nil, internal("list the keys of a multi-Region key", err)
	}
	plain, id, err := s.newMaterialPlain(k)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	wrapped := make(map[string]*store.Material, len(related))
	now := s.now().UTC() // one rotation date for every copy
	for _, r := range related {
		w, err := s.keystore.Wrap(ctx, plain, materialAAD(arnOf(r), id))
		if err != nil {
			return nil, internal("wrap key material", err)
		}
		wrapped[r.ID] = &store.Material{KeyID: r.ID, ID: id, Wrapped: w, Created: now, RotationType: rotationType}
	}
	var updated *store.Key
	err = s.store.Update(ctx, func(tx store.Tx) error {
		m := wrapped[k.ID]
		if m == nil {
			return errRotationRaced
		}
		u, err := tx.RotateKey(ctx, k.ID, m, func(cur *store.Key) error {
			if err := check(cur); err != nil {
				return err
			}
			cur.CurrentMaterial = id
			return nil
		})
		if err != nil {
			return err
		}
		// With the primary written, no replica comes or goes until this
		// commits (see the file comment): the ones listed above must be
		// all of them.
		current, err := tx.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
		if err != nil {
			return err
		}
		if len(current) != len(related) {
			return errRotationRaced
		}
		for _, r := range current {
			if r.ID == k.ID {
				continue
			}
			m := wrapped[r.ID]
			if m == nil {
				return errRotationRaced
			}
			if _, err := tx.RotateKey(ctx, r.ID, m, func(cur *store.Key) error {
				cur.CurrentMaterial = id
				return nil
			}); err != nil {
				return err
			}
		}
		updated = u
		return nil
	})
	for _, r := range related {
		s.view.dropKey(r.ID)
	}
	if err != nil {
		return nil, s.rotateError(k, err)
	}
	s.log.InfoContext(ctx, "key rotated", "key", arnOf(updated), "type", rotationType, "key_material_id", id, "related_keys", len(related))
	return updated, nil
}

// deleteReplica deletes replica k (listed as due with its revision) and,
// when it was the last replica of a primary waiting for its replicas
// (PendingReplicaDeletion), starts the primary's own waiting period: in
// one transaction.
func (s *Service) deleteReplica(ctx context.Context, k *store.Key) error {
	var started *store.Key // the primary whose waiting period began
	err := s.store.Update(ctx, func(tx store.Tx) error {
		started = nil
		pid := primaryID(k)
		// Writing the primary first orders the deletions of two replicas
		// by two nodes: the second sees the first gone, and so the last
		// one moves the primary on.
		_, err := tx.UpdateKey(ctx, pid, func(*store.Key) error { return nil })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.DeleteKey(ctx, k.ID, k.Revision); err != nil {
			return err
		}
		rest, err := tx.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(rest, isReplica) {
			return nil
		}
		p, err := tx.UpdateKey(ctx, pid, func(p *store.Key) error {
			if p.State == StatePendingReplicaDeletion {
				p.State = StatePendingDeletion
				p.DeletionDate = s.now().UTC().Add(time.Duration(p.PendingWindowDays) * day)
			}
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil && p.State == StatePendingDeletion {
			started = p
		}
		return err
	})
	s.view.dropKey(primaryID(k))
	if err == nil && started != nil {
		s.log.InfoContext(ctx, "the last replica key is deleted: the primary key's waiting period begins",
			"key", arnOf(started), "deletion_date", started.DeletionDate)
	}
	return err
}

// lackingPending returns the Regions of the replicas of primary k that do
// not hold material id in PENDING_ROTATION, and the replicas that do.
func (s *Service) lackingPending(ctx context.Context, k *store.Key, id string) (missing []string, err error) {
	related, err := s.store.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
	if err != nil {
		return nil, internal("list the keys of a multi-Region key", err)
	}
	for _, r := range related {
		if r.ID == k.ID {
			continue
		}
		m, err := s.store.GetMaterial(ctx, r.ID, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, internal("get key material", err)
		}
		if err != nil || m.RotationType != store.RotationPending {
			missing = append(missing, r.Region)
		}
	}
	return missing, nil
}

// rotateImportedMultiRegion is rotateImported for the primary key k of a
// multi-Region key with imported material: the new material, imported into
// the primary and every replica (ImportType NEW_KEY_MATERIAL), becomes
// current in all of them in one transaction. Until every replica holds it
// the material is PENDING_MULTI_REGION_IMPORT_AND_ROTATION and the rotation
// is refused.
func (s *Service) rotateImportedMultiRegion(ctx context.Context, k *store.Key, pending *store.Material) (*RotateKeyOnDemandOutput, error) {
	missing, err := s.lackingPending(ctx, k, pending.ID)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "The new key material %s of %s is not yet imported into its replica keys in %s (PENDING_MULTI_REGION_IMPORT_AND_ROTATION): import the same material there with ImportType EXISTING_KEY_MATERIAL first.",
			pending.ID, arnOf(k), strings.Join(missing, ", "))
	}
	now := s.now().UTC()
	var related []*store.Key
	var updated *store.Key
	err = s.store.Update(ctx, func(tx store.Tx) error {
		promote := func(keyID string, fn func(*store.Key) error) (*store.Key, error) {
			m, err := tx.GetMaterial(ctx, keyID, pending.ID)
			if err != nil {
				return nil, err
			}
			if m.RotationType != store.RotationPending {
				return nil, errRotationRaced
			}
			m.RotationType, m.Created = store.RotationOnDemand, now
			return tx.ReplaceMaterial(ctx, keyID, m, pending.ID, fn)
		}
		u, err := promote(k.ID, func(cur *store.Key) error {
			if err := checkUsable(cur); err != nil {
				return err
			}
			if cur.CurrentMaterial != k.CurrentMaterial {
				return errRotationRaced
			}
			if cur.OnDemandRotations >= MaxOnDemandRotations {
				return errOnDemandLimit(cur)
			}
			cur.OnDemandRotations++
			cur.CurrentMaterial = pending.ID
			return nil
		})
		if err != nil {
			return err
		}
		if related, err = tx.ListMultiRegionKeys(ctx, k.MultiRegionKeyID); err != nil {
			return err
		}
		for _, r := range related {
			if r.ID == k.ID {
				continue
			}
			if _, err := promote(r.ID, func(cur *store.Key) error { cur.CurrentMaterial = pending.ID; return nil }); err != nil {
				return err
			}
		}
		updated = u
		return nil
	})
	for _, r := range related {
		s.view.dropKey(r.ID)
	}
	s.view.dropKey(k.ID)
	if errors.Is(err, errRotationRaced) || errors.Is(err, store.ErrNotFound) {
		return nil, awserr.Newf(awserr.Conflict, "%s or one of its replica keys changed while it was being rotated. Try again.", arnOf(k))
	}
	if err != nil {
		return nil, s.materialWriteError(k, err)
	}
	s.log.InfoContext(ctx, "key rotated", "key", arnOf(updated), "type", store.RotationOnDemand, "key_material_id", pending.ID, "related_keys", len(related))
	return &RotateKeyOnDemandOutput{KeyId: arnOf(updated)}, nil
}

// materialIDScope is what the KeyMaterialId of material imported into k
// is derived from: k's ARN, or for a multi-Region key its ARN without a
// Region, so that the same material has the same id in every related key
// (and a replica can tell the primary's material from another).
func materialIDScope(k *store.Key) string {
	if isMultiRegion(k) {
		return kmsARN(awsarn.PartitionOf(k.Region), "", k.Account, "key/"+k.MultiRegionKeyID)
	}
	return arnOf(k)
}

// importRelatedMaterial imports into k, a key of a multi-Region key with
// imported material, material id (not k's current) that another related key
// holds: KeyMaterialIds of multi-Region keys are Region-independent
// (materialIDScope), so the id names the same material in every Region.
//
//   - The primary's material in PENDING_ROTATION (ImportType NEW_KEY_MATERIAL
//     there) is imported into a replica, with either ImportType, in
//     PENDING_ROTATION too, so that the primary can rotate to it.
//   - An earlier material (non-current, rotated away from) is imported with
//     ImportType EXISTING_KEY_MATERIAL (or none) as an earlier material of
//     k, so that k opens the ciphertexts made under it. It follows k's
//     expiration: kmsd keeps one per key.
//
// handled is false when no other related key holds id: the caller goes on
// as for any key. k holding id already is success, changing nothing.
func (s *Service) importRelatedMaterial(ctx context.Context, k *store.Key, id string, material []byte, newType bool, now time.Time) (out *ImportKeyMaterialOutput, handled bool, err error) {
	related, err := s.store.ListMultiRegionKeys(ctx, k.MultiRegionKeyID)
	if err != nil {
		return nil, true, internal("list the keys of a multi-Region key", err)
	}
	var held *store.Material
	for _, r := range related {
		if r.ID == k.ID {
			continue
		}
		m, err := s.store.GetMaterial(ctx, r.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, true, internal("get key material", err)
		}
		// Only the primary's pending material is new material of the
		// multi-Region key; a replica's pending copy follows it.
		if m.RotationType == store.RotationPending && isReplica(r) {
			continue
		}
		if m.RotationType == store.RotationPending && !isReplica(k) {
			continue
		}
		held = m
		break
	}
	if held == nil {
		return nil, false, nil
	}
	pending := held.RotationType == store.RotationPending
	if !pending && newType {
		return nil, true, awserr.Newf(awserr.IncorrectKeyMaterial, "The key material is already associated with the multi-Region key %s. Import it with ImportType EXISTING_KEY_MATERIAL.", k.MultiRegionKeyID)
	}
	if pending && lacksImportedMaterial(k) {
		return nil, true, awserr.Newf(awserr.KMSInvalidState, "%s is pending import: import its current key material with ImportType EXISTING_KEY_MATERIAL first.", arnOf(k))
	}
	if own, err := s.store.GetMaterial(ctx, k.ID, id); err == nil && (own.RotationType == store.RotationPending) == pending {
		return &ImportKeyMaterialOutput{KeyId: arnOf(k), KeyMaterialId: id}, true, nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, true, internal("get key material", err)
	}
	wrapped, err := s.keystore.Wrap(ctx, material, materialAAD(arnOf(k), id))
	if err != nil {
		return nil, true, internal("wrap key material", err)
	}
	m := &store.Material{KeyID: k.ID, ID: id, Wrapped: wrapped, Created: held.Created, RotationType: held.RotationType}
	if pending {
		m.Created = now
	}
	updated, err := s.store.ReplaceMaterial(ctx, k.ID, m, "", func(cur *store.Key) error {
		if err := checkImportable(cur); err != nil {
			return err
		}
		if cur.CurrentMaterial != k.CurrentMaterial || (pending && lacksImportedMaterial(cur)) {
			return awserr.Newf(awserr.Conflict, "%s changed while key material was being imported. Try again.", arnOf(cur))
		}
		return nil
	})
	if errors.Is(err, store.ErrExists) {
		// Imported meanwhile by another request.
		return &ImportKeyMaterialOutput{KeyId: arnOf(k), KeyMaterialId: id}, true, nil
	}
	if err != nil {
		return nil, true, s.materialWriteError(k, err)
	}
	s.view.dropKey(updated.ID)
	s.log.InfoContext(ctx, "key material of a related multi-Region key imported", "key", arnOf(updated), "key_material_id", id,
		"rotation_type", m.RotationType)
	return &ImportKeyMaterialOutput{KeyId: arnOf(updated), KeyMaterialId: id}, true, nil
}

// importMultiRegion imports material id into k, a key of a multi-Region
// key, with importInto, in a transaction that also makes id the material
// every related key without one must be given: the first material imported
// into any of them is the material of all (AWS's rule), and different
// material imported into another is IncorrectKeyMaterialException.
func (s *Service) importMultiRegion(ctx context.Context, k *store.Key, id string, importInto func(store.Tx) (*store.Key, error)) (*store.Key, error) {
	var updated *store.Key
	var related []*store.Key
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if updated, err = importInto(tx); err != nil {
			return err
		}
		if related, err = tx.ListMultiRegionKeys(ctx, k.MultiRegionKeyID); err != nil {
			return err
		}
		for _, r := range related {
			if r.ID == k.ID || r.CurrentMaterial == id {
				continue
			}
			if _, err := tx.UpdateKey(ctx, r.ID, func(cur *store.Key) error {
				if cur.CurrentMaterial != "" && cur.CurrentMaterial != id {
					// Another material was imported there first.
					return errIncorrectMaterial(k)
				}
				cur.CurrentMaterial = id
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range related {
		s.view.dropKey(r.ID)
	}
	return updated, err
}
