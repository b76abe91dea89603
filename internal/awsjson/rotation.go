package awsjson

import "github.com/kmsd/kmsd/internal/kms"

// Key rotation: model constraints and response shapes.

var includeKeyMaterials = []string{"ALL_KEY_MATERIAL", "ROTATIONS_ONLY"}

// validateKeyIDOnly checks a request whose only member is KeyId (these
// requests have no GrantTokens member).
func validateKeyIDOnly(v *validator, in *kms.KeyIdInput) {
	v.keyID("keyId", in.KeyId)
}

func validateEnableKeyRotation(v *validator, in *kms.EnableKeyRotationInput) {
	v.keyID("keyId", in.KeyId)
	v.intRange("rotationPeriodInDays", in.RotationPeriodInDays, kms.MinRotationPeriodDays, kms.MaxRotationPeriodDays)
}

func validateListKeyRotations(v *validator, in *kms.ListKeyRotationsInput) {
	v.keyID("keyId", in.KeyId)
	v.enum("includeKeyMaterial", in.IncludeKeyMaterial, includeKeyMaterials)
	v.list(in.Limit, in.Marker)
}

type getKeyRotationStatusResponse struct {
	KeyId                     string
	KeyRotationEnabled        bool
	RotationPeriodInDays      int    `json:",omitempty"`
	NextRotationDate          *epoch `json:",omitempty"`
	OnDemandRotationStartDate *epoch `json:",omitempty"`
}

func wireGetKeyRotationStatus(o *kms.GetKeyRotationStatusOutput) any {
	return getKeyRotationStatusResponse{o.KeyId, o.KeyRotationEnabled, o.RotationPeriodInDays,
		epochPtr(o.NextRotationDate), epochPtr(o.OnDemandRotationStartDate)}
}

type rotationsListEntry struct {
	KeyId            string
	KeyMaterialId    string
	RotationDate     *epoch `json:",omitempty"`
	RotationType     string `json:",omitempty"`
	KeyMaterialState string
	ImportState      string `json:",omitempty"`
	ExpirationModel  string `json:",omitempty"`
	ValidTo          *epoch `json:",omitempty"`
}

type listKeyRotationsResponse struct {
	Rotations  []rotationsListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func wireListKeyRotations(o *kms.ListKeyRotationsOutput) any {
	r := listKeyRotationsResponse{Rotations: make([]rotationsListEntry, 0, len(o.Rotations)), NextMarker: o.NextMarker, Truncated: o.Truncated}
	for _, e := range o.Rotations {
		r.Rotations = append(r.Rotations, rotationsListEntry{e.KeyId, e.KeyMaterialId, epochPtr(e.RotationDate), e.RotationType, e.KeyMaterialState,
			e.ImportState, e.ExpirationModel, epochPtr(e.ValidTo)})
	}
	return r
}
