package awsjson

import "github.com/kmsd/kmsd/internal/kms"

// Response shapes that differ from the kms output structs: timestamps are
// epoch seconds, and optional members are omitted when absent (the Go SDK
// reads a present empty string as a value).

type keyMetadata struct {
	AWSAccountId                string
	KeyId                       string
	Arn                         string
	CreationDate                epoch
	Enabled                     bool
	Description                 string
	KeyUsage                    string
	KeyState                    string
	Origin                      string
	KeyManager                  string
	CustomerMasterKeySpec       string `json:",omitempty"`
	KeySpec                     string
	EncryptionAlgorithms        []string `json:",omitempty"`
	SigningAlgorithms           []string `json:",omitempty"`
	MacAlgorithms               []string `json:",omitempty"`
	KeyAgreementAlgorithms      []string `json:",omitempty"`
	EncapsulationAlgorithms     []string `json:",omitempty"`
	MultiRegion                 bool
	MultiRegionConfiguration    *kms.MultiRegionConfiguration `json:",omitempty"`
	DeletionDate                *epoch                        `json:",omitempty"`
	PendingDeletionWindowInDays int                           `json:",omitempty"`
	CurrentKeyMaterialId        string                        `json:",omitempty"`
	ExpirationModel             string                        `json:",omitempty"`
	ValidTo                     *epoch                        `json:",omitempty"`
	CustomKeyStoreId            string                        `json:",omitempty"`
	CloudHsmClusterId           string                        `json:",omitempty"`
}

func wireMetadata(m *kms.KeyMetadata) *keyMetadata {
	return &keyMetadata{
		AWSAccountId:                m.AWSAccountId,
		KeyId:                       m.KeyId,
		Arn:                         m.Arn,
		CreationDate:                epoch(m.CreationDate),
		Enabled:                     m.Enabled,
		Description:                 m.Description,
		KeyUsage:                    m.KeyUsage,
		KeyState:                    m.KeyState,
		Origin:                      m.Origin,
		KeyManager:                  m.KeyManager,
		CustomerMasterKeySpec:       m.CustomerMasterKeySpec,
		KeySpec:                     m.KeySpec,
		EncryptionAlgorithms:        m.EncryptionAlgorithms,
		SigningAlgorithms:           m.SigningAlgorithms,
		MacAlgorithms:               m.MacAlgorithms,
		KeyAgreementAlgorithms:      m.KeyAgreementAlgorithms,
		EncapsulationAlgorithms:     m.EncapsulationAlgorithms,
		MultiRegion:                 m.MultiRegion,
		MultiRegionConfiguration:    m.MultiRegionConfiguration,
		DeletionDate:                epochPtr(m.DeletionDate),
		PendingDeletionWindowInDays: m.PendingDeletionWindowInDays,
		CurrentKeyMaterialId:        m.CurrentKeyMaterialId,
		ExpirationModel:             m.ExpirationModel,
		ValidTo:                     epochPtr(m.ValidTo),
		CustomKeyStoreId:            m.CustomKeyStoreId,
		CloudHsmClusterId:           m.CloudHsmClusterId,
	}
}

type keyMetadataResponse struct {
	KeyMetadata *keyMetadata
}

func wireCreateKey(o *kms.CreateKeyOutput) any {
	return keyMetadataResponse{wireMetadata(o.KeyMetadata)}
}

func wireDescribeKey(o *kms.DescribeKeyOutput) any {
	return keyMetadataResponse{wireMetadata(o.KeyMetadata)}
}

type listKeysResponse struct {
	Keys       []kms.KeyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func wireListKeys(o *kms.ListKeysOutput) any {
	return listKeysResponse{o.Keys, o.NextMarker, o.Truncated}
}

type scheduleKeyDeletionResponse struct {
	KeyId string
	// DeletionDate is absent for a primary key that waits for its
	// replicas (PendingReplicaDeletion): its date is not known yet.
	DeletionDate        *epoch `json:",omitempty"`
	KeyState            string
	PendingWindowInDays int
}

func wireScheduleKeyDeletion(o *kms.ScheduleKeyDeletionOutput) any {
	return scheduleKeyDeletionResponse{o.KeyId, epochPtr(o.DeletionDate), o.KeyState, o.PendingWindowInDays}
}

type replicateKeyResponse struct {
	ReplicaKeyMetadata *keyMetadata
	ReplicaPolicy      string
	ReplicaTags        []kms.Tag
}

func wireReplicateKey(o *kms.ReplicateKeyOutput) any {
	return replicateKeyResponse{wireMetadata(o.ReplicaKeyMetadata), o.ReplicaPolicy, o.ReplicaTags}
}

type withoutPlaintextResponse struct {
	CiphertextBlob []byte
	KeyId          string
	KeyMaterialId  string
}

func wireWithoutPlaintext(o *kms.GenerateDataKeyOutput) any {
	return withoutPlaintextResponse{o.CiphertextBlob, o.KeyId, o.KeyMaterialId}
}

type aliasListEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string `json:",omitempty"`
	CreationDate    *epoch `json:",omitempty"`
	LastUpdatedDate *epoch `json:",omitempty"`
}

type listAliasesResponse struct {
	Aliases    []aliasListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func wireListAliases(o *kms.ListAliasesOutput) any {
	r := listAliasesResponse{Aliases: make([]aliasListEntry, 0, len(o.Aliases)), NextMarker: o.NextMarker, Truncated: o.Truncated}
	for _, a := range o.Aliases {
		r.Aliases = append(r.Aliases, aliasListEntry{a.AliasName, a.AliasArn, a.TargetKeyId, epochPtr(a.CreationDate), epochPtr(a.LastUpdatedDate)})
	}
	return r
}

type listResourceTagsResponse struct {
	Tags       []kms.Tag
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func wireListResourceTags(o *kms.ListResourceTagsOutput) any {
	return listResourceTagsResponse{o.Tags, o.NextMarker, o.Truncated}
}

type getPublicKeyResponse struct {
	KeyId                   string
	PublicKey               []byte
	CustomerMasterKeySpec   string `json:",omitempty"`
	KeySpec                 string
	KeyUsage                string
	EncryptionAlgorithms    []string `json:",omitempty"`
	SigningAlgorithms       []string `json:",omitempty"`
	KeyAgreementAlgorithms  []string `json:",omitempty"`
	EncapsulationAlgorithms []string `json:",omitempty"`
}

func wireGetPublicKey(o *kms.GetPublicKeyOutput) any {
	return getPublicKeyResponse{o.KeyId, o.PublicKey, o.CustomerMasterKeySpec, o.KeySpec, o.KeyUsage,
		o.EncryptionAlgorithms, o.SigningAlgorithms, o.KeyAgreementAlgorithms, o.EncapsulationAlgorithms}
}

type dataKeyPairWithoutPlaintextResponse struct {
	PrivateKeyCiphertextBlob []byte
	PublicKey                []byte
	KeyId                    string
	KeyPairSpec              string
	KeyMaterialId            string
}

func wireDataKeyPairWithoutPlaintext(o *kms.GenerateDataKeyPairOutput) any {
	return dataKeyPairWithoutPlaintextResponse{o.PrivateKeyCiphertextBlob, o.PublicKey, o.KeyId, o.KeyPairSpec, o.KeyMaterialId}
}

type keyLastUsageData struct {
	Operation         string
	Timestamp         epoch
	KmsRequestId      string `json:",omitempty"`
	CloudTrailEventId string `json:",omitempty"`
}

type getKeyLastUsageResponse struct {
	KeyId             string
	KeyCreationDate   epoch
	TrackingStartDate epoch
	KeyLastUsage      *keyLastUsageData `json:",omitempty"`
}

func wireGetKeyLastUsage(o *kms.GetKeyLastUsageOutput) any {
	r := getKeyLastUsageResponse{KeyId: o.KeyId, KeyCreationDate: epoch(o.KeyCreationDate), TrackingStartDate: epoch(o.TrackingStartDate)}
	if u := o.KeyLastUsage; u != nil {
		r.KeyLastUsage = &keyLastUsageData{u.Operation, epoch(u.Timestamp), u.KmsRequestId, u.CloudTrailEventId}
	}
	return r
}
