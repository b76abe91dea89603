package kms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// Key rotation of symmetric encryption keys. A rotation adds a generation
// of key material and points the key's CurrentMaterial at it, in one store
// transaction (store.RotateKey); earlier generations stay, so every
// ciphertext ever made still decrypts (its blob names its material).
//
// Automatic rotation is driven by RotateDueKeys, which RunReaper calls.
// Several kmsd nodes may share one store: each scheduled rotation is a
// compare-and-set on the key's CurrentMaterial and NextRotation as the node
// read them, so when two nodes rotate the same due key only the first
// writes; the second finds the key changed and does nothing.
//
// Symmetric keys with imported material (Origin EXTERNAL) rotate only on
// demand, to the material imported with ImportType NEW_KEY_MATERIAL and
// waiting in PENDING_ROTATION (rotateImported); never automatically.
//
// On-demand rotation completes inside the request, so no rotation is ever
// left in progress: OnDemandRotationStartDate is never reported and
// ConflictException never arises.

// Rotation limits (AWS's).
const (
	DefaultRotationPeriodDays = 365
	MinRotationPeriodDays     = 90
	MaxRotationPeriodDays     = 2560
	MaxOnDemandRotations      = 10
)

const day = 24 * time.Hour

// checkRotatable refuses rotation on keys AWS does not rotate.
func checkRotatable(k *store.Key) error {
	if k.KeySpec != SpecSymmetricDefault {
		return awserr.Newf(awserr.UnsupportedOperation, "%s key spec %s does not support key rotation. Only symmetric encryption keys can be rotated.", arnOf(k), k.KeySpec)
	}
	if k.Origin != OriginAWSKMS {
		return awserr.Newf(awserr.UnsupportedOperation, "%s origin is %s which is not valid for this operation.", arnOf(k), k.Origin)
	}
	return nil
}

// EnableKeyRotationInput is the EnableKeyRotation request.
type EnableKeyRotationInput struct {
	KeyId                string
	RotationPeriodInDays *int32
}

// EnableKeyRotation turns on automatic rotation every RotationPeriodInDays
// (365 by default). The next rotation is one period from now; enabling an
// enabled key with the same period changes nothing.
func (s *Service) EnableKeyRotation(ctx context.Context, c Caller, in *EnableKeyRotationInput) error {
	days := DefaultRotationPeriodDays
	if in.RotationPeriodInDays != nil {
		days = int(*in.RotationPeriodInDays)
		if days < MinRotationPeriodDays || days > MaxRotationPeriodDays {
			return awserr.Invalid(rangeViolation("rotationPeriodInDays", days, MinRotationPeriodDays, MaxRotationPeriodDays))
		}
	}
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	if isReplica(k) {
		return errReplicaRotation(k)
	}
	changed := false
	k, err = s.updateKey(ctx, k.ID, func(k *store.Key) error {
		if err := checkRotatable(k); err != nil {
			return err
		}
		if err := checkUsable(k); err != nil {
			return err
		}
		if isReplica(k) {
			return errReplicaRotation(k)
		}
		if k.RotationEnabled && k.RotationPeriodDays == days {
			return nil
		}
		changed = true
		k.RotationEnabled = true
		k.RotationPeriodDays = days
		k.NextRotation = s.now().UTC().Add(time.Duration(days) * day)
		return nil
	})
	if err == nil && changed {
		s.log.InfoContext(ctx, "key rotation enabled", "key", arnOf(k), "period_days", days, "next_rotation", k.NextRotation)
	}
	return err
}

// DisableKeyRotation turns off automatic rotation. The period is kept, as
// AWS keeps it, and reported by GetKeyRotationStatus.
func (s *Service) DisableKeyRotation(ctx context.Context, c Caller, in *KeyIdInput) error {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	if isReplica(k) {
		return errReplicaRotation(k)
	}
	changed := false
	k, err = s.updateKey(ctx, k.ID, func(k *store.Key) error {
		if err := checkRotatable(k); err != nil {
			return err
		}
		if err := checkUsable(k); err != nil {
			return err
		}
		if isReplica(k) {
			return errReplicaRotation(k)
		}
		changed = k.RotationEnabled
		k.RotationEnabled = false
		k.NextRotation = time.Time{}
		return nil
	})
	if err == nil && changed {
		s.log.InfoContext(ctx, "key rotation disabled", "key", arnOf(k))
	}
	return err
}

// GetKeyRotationStatusOutput is the GetKeyRotationStatus response.
type GetKeyRotationStatusOutput struct {
	KeyId                     string // key ARN
	KeyRotationEnabled        bool
	RotationPeriodInDays      int       // zero when never enabled
	NextRotationDate          time.Time // zero when rotation is disabled
	OnDemandRotationStartDate time.Time // zero: no rotation is ever in progress
}

// GetKeyRotationStatus reports the rotation settings of a key.
func (s *Service) GetKeyRotationStatus(ctx context.Context, c Caller, in *KeyIdInput) (*GetKeyRotationStatusOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if err := checkRotatable(k); err != nil {
		return nil, err
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	// The keys of a multi-Region key rotate together, as their primary's
	// settings say.
	p, err := s.primaryFor(ctx, k)
	if err != nil {
		return nil, err
	}
	out := &GetKeyRotationStatusOutput{KeyId: arnOf(k), KeyRotationEnabled: p.RotationEnabled, RotationPeriodInDays: p.RotationPeriodDays}
	if p.RotationEnabled {
		out.NextRotationDate = p.NextRotation
	}
	return out, nil
}

// RotateKeyOnDemandOutput is the RotateKeyOnDemand response.
type RotateKeyOnDemandOutput struct {
	KeyId string // key ARN
}

// RotateKeyOnDemand rotates a key now, at most MaxOnDemandRotations times
// per key. It does not move the automatic rotation schedule.
func (s *Service) RotateKeyOnDemand(ctx context.Context, c Caller, in *KeyIdInput) (*RotateKeyOnDemandOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if isReplica(k) && (checkRotatable(k) == nil || importedSymmetric(k)) {
		return nil, errReplicaRotation(k)
	}
	if importedSymmetric(k) {
		return s.rotateImported(ctx, k)
	}
	if err := checkRotatable(k); err != nil {
		return nil, err
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	if k.OnDemandRotations >= MaxOnDemandRotations {
		return nil, errOnDemandLimit(k)
	}
	k, err = s.rotate(ctx, k, store.RotationOnDemand, func(cur *store.Key) error {
		if err := checkUsable(cur); err != nil {
			return err
		}
		if cur.OnDemandRotations >= MaxOnDemandRotations {
			return errOnDemandLimit(cur)
		}
		cur.OnDemandRotations++
		return nil
	})
	if errors.Is(err, errRotationRaced) {
		// A replica came or went during the rotation of a multi-Region key.
		return nil, awserr.Newf(awserr.Conflict, "%s changed while it was being rotated. Try again.", arnOf(k))
	}
	if err != nil {
		return nil, err
	}
	return &RotateKeyOnDemandOutput{KeyId: arnOf(k)}, nil
}

// importedSymmetric reports whether k is a symmetric encryption key with
// imported material, which rotates only on demand, to material imported
// with ImportType NEW_KEY_MATERIAL.
func importedSymmetric(k *store.Key) bool {
	return k.Origin == OriginExternal && k.KeySpec == SpecSymmetricDefault
}

// rotateImported makes the key's PENDING_ROTATION material current.
func (s *Service) rotateImported(ctx context.Context, k *store.Key) (*RotateKeyOnDemandOutput, error) {
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	if k.OnDemandRotations >= MaxOnDemandRotations {
		return nil, errOnDemandLimit(k)
	}
	ms, err := s.store.ListMaterials(ctx, k.ID)
	if err != nil {
		return nil, internal("list key materials", err)
	}
	var pending *store.Material
	for _, m := range ms {
		if m.RotationType == store.RotationPending {
			pending = m
		}
	}
	if pending == nil {
		return nil, awserr.Newf(awserr.UnsupportedOperation, "%s has no key material in PENDING_ROTATION state. Import new key material with ImportType NEW_KEY_MATERIAL before rotating the key on demand.", arnOf(k))
	}
	if isMultiRegion(k) {
		return s.rotateImportedMultiRegion(ctx, k, pending)
	}
	promoted := *pending
	promoted.RotationType = store.RotationOnDemand
	promoted.Created = s.now().UTC()
	updated, err := s.store.ReplaceMaterial(ctx, k.ID, &promoted, pending.ID, func(cur *store.Key) error {
		if err := checkUsable(cur); err != nil {
			return err
		}
		if cur.CurrentMaterial != k.CurrentMaterial {
			return awserr.Newf(awserr.Conflict, "%s changed while it was being rotated. Try again.", arnOf(cur))
		}
		if cur.OnDemandRotations >= MaxOnDemandRotations {
			return errOnDemandLimit(cur)
		}
		cur.OnDemandRotations++
		cur.CurrentMaterial = pending.ID
		return nil
	})
	if err != nil {
		return nil, s.materialWriteError(k, err)
	}
	s.view.dropKey(updated.ID)
	s.log.InfoContext(ctx, "key rotated", "key", arnOf(updated), "type", store.RotationOnDemand, "key_material_id", pending.ID)
	return &RotateKeyOnDemandOutput{KeyId: arnOf(updated)}, nil
}

func errOnDemandLimit(k *store.Key) error {
	return awserr.Newf(awserr.LimitExceeded, "%s has reached the limit of %d on-demand rotations.", arnOf(k), MaxOnDemandRotations)
}

// rotate makes a new generation of material for k and makes it current, with
// check (which may also change the key) run on the key as stored, inside
// the transaction.
func (s *Service) rotate(ctx context.Context, k *store.Key, rotationType string, check func(*store.Key) error) (*store.Key, error) {
	if isMultiRegion(k) {
		return s.rotateMultiRegion(ctx, k, rotationType, check)
	}
	m, err := s.newMaterialFor(ctx, k)
	if err != nil {
		return nil, err
	}
	m.RotationType = rotationType
	updated, err := s.store.RotateKey(ctx, k.ID, m, func(cur *store.Key) error {
		if err := check(cur); err != nil {
			return err
		}
		cur.CurrentMaterial = m.ID
		return nil
	})
	if err != nil {
		return nil, s.rotateError(k, err)
	}
	s.view.dropKey(updated.ID)
	s.log.InfoContext(ctx, "key rotated", "key", arnOf(updated), "type", rotationType, "key_material_id", m.ID)
	return updated, nil
}

// rotateError maps the error of a rotation of k.
func (s *Service) rotateError(k *store.Key, err error) error {
	var ae *awserr.Error
	if errors.As(err, &ae) || errors.Is(err, errRotationRaced) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		s.forget(k.ID)
		return notFoundKey(arnOf(k))
	}
	return internal("rotate key", err)
}

// errRotationRaced is what a scheduled rotation meets when another node (or
// a concurrent call) changed the key since it was read.
var errRotationRaced = errors.New("kms: the key changed since it was found due for rotation")

// RotateDueKeys rotates every enabled key whose automatic rotation is due
// and returns how many it rotated. Keys that are disabled or pending
// deletion are not rotated (as on AWS); they rotate once enabled again.
func (s *Service) RotateDueKeys(ctx context.Context) (int, error) {
	now := s.now().UTC()
	due, err := s.store.KeysDueForRotation(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("rotate: list keys due for rotation: %w", err)
	}
	due = slices.DeleteFunc(due, func(k *store.Key) bool { return k.State != StateEnabled || checkRotatable(k) != nil })
	return s.forEachDue(ctx, "rotate key", due, func(k *store.Key) error {
		seenMaterial, seenNext := k.CurrentMaterial, k.NextRotation
		_, err := s.rotate(ctx, k, store.RotationAutomatic, func(cur *store.Key) error {
			// Compare and set: only the node that still sees the key as
			// it was found due rotates it.
			if cur.CurrentMaterial != seenMaterial || !cur.NextRotation.Equal(seenNext) ||
				!cur.RotationEnabled || cur.State != StateEnabled {
				return errRotationRaced
			}
			cur.NextRotation = now.Add(time.Duration(cur.RotationPeriodDays) * day)
			return nil
		})
		return err
	})
}

// ListKeyRotationsInput is the ListKeyRotations request.
type ListKeyRotationsInput struct {
	KeyId              string
	IncludeKeyMaterial string // ROTATIONS_ONLY (default) or ALL_KEY_MATERIAL
	Limit              *int32
	Marker             string
}

// RotationsListEntry is one key material of a key in ListKeyRotations.
type RotationsListEntry struct {
	KeyId            string // bare key id
	KeyMaterialId    string
	RotationDate     time.Time // zero for a key's first material
	RotationType     string    // AUTOMATIC, ON_DEMAND; empty for the first material
	KeyMaterialState string    // CURRENT, NON_CURRENT or PENDING_ROTATION
	// Keys with imported material: IMPORTED or PENDING_IMPORT, and the
	// expiration of the current and pending material.
	ImportState     string
	ExpirationModel string
	ValidTo         time.Time
}

// ListKeyRotationsOutput is the ListKeyRotations response.
type ListKeyRotationsOutput struct {
	Rotations  []RotationsListEntry
	NextMarker string
	Truncated  bool
}

// ListKeyRotations lists the rotations of a key, oldest first; with
// IncludeKeyMaterial ALL_KEY_MATERIAL its first material too. The marker is
// the KeyMaterialId of the last entry returned.
func (s *Service) ListKeyRotations(ctx context.Context, c Caller, in *ListKeyRotationsInput) (*ListKeyRotationsOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, idOrARN)
	if err != nil {
		return nil, err
	}
	if !importedSymmetric(k) {
		if err := checkRotatable(k); err != nil {
			return nil, err
		}
	}
	if err := checkManageable(k); err != nil {
		return nil, err
	}
	// Read the key from the store with its materials, so that the CURRENT
	// mark matches the list even if another node rotated it.
	fresh, err := s.store.GetKey(ctx, k.ID)
	if errors.Is(err, store.ErrNotFound) {
		s.forget(k.ID)
		return nil, notFoundKey(arnOf(k))
	}
	if err != nil {
		return nil, internal("get key", err)
	}
	ms, err := s.store.ListMaterials(ctx, k.ID)
	if err != nil {
		return nil, internal("list key materials", err)
	}
	all := in.IncludeKeyMaterial == "ALL_KEY_MATERIAL"
	imported := fresh.Origin == OriginExternal
	var entries []RotationsListEntry
	seenCurrent := false
	for _, m := range ms {
		pending := m.RotationType == store.RotationPending
		if (m.RotationType == "" || pending) && !all {
			continue
		}
		e := RotationsListEntry{KeyId: keyIDOf(k), KeyMaterialId: m.ID, RotationType: m.RotationType, KeyMaterialState: "NON_CURRENT"}
		if m.RotationType != "" && !pending {
			e.RotationDate = m.Created
		}
		if pending {
			e.RotationType = ""
			e.KeyMaterialState = "PENDING_ROTATION"
			if isMultiRegion(fresh) && !isReplica(fresh) {
				// A multi-Region key rotates to material that every
				// related key holds.
				missing, err := s.lackingPending(ctx, fresh, m.ID)
				if err != nil {
					return nil, err
				}
				if len(missing) > 0 {
					e.KeyMaterialState = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
				}
			}
		}
		if m.ID == fresh.CurrentMaterial {
			e.KeyMaterialState = "CURRENT"
			seenCurrent = true
		}
		if imported {
			e.ImportState = "IMPORTED"
			if e.KeyMaterialState != "NON_CURRENT" {
				e.ExpirationModel, e.ValidTo = fresh.ExpirationModel, fresh.MaterialValidTo
			}
		}
		entries = append(entries, e)
	}
	if imported && !seenCurrent && fresh.CurrentMaterial != "" && all {
		// The current material was deleted (or expired): it is listed
		// as pending import.
		entries = append(entries, RotationsListEntry{KeyId: keyIDOf(k), KeyMaterialId: fresh.CurrentMaterial,
			KeyMaterialState: "CURRENT", ImportState: "PENDING_IMPORT"})
	}
	start := 0
	if in.Marker != "" {
		start = -1
		for i, e := range entries {
			if e.KeyMaterialId == in.Marker {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, errBadMarker
		}
	}
	entries = entries[start:]
	limit := limitOf(in.Limit, 100, 1000)
	out := &ListKeyRotationsOutput{Rotations: []RotationsListEntry{}}
	if len(entries) > limit {
		entries = entries[:limit]
		out.Truncated = true
		out.NextMarker = entries[len(entries)-1].KeyMaterialId
	}
	out.Rotations = append(out.Rotations, entries...)
	return out, nil
}
