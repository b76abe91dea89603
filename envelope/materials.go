package envelope

import (
	"context"
	"crypto/ecdsa"
	"maps"
	"slices"
)

// EncryptedDataKey is one encrypted copy of a message's data key, as stored
// in the message header.
type EncryptedDataKey struct {
	// ProviderID names the kind of keyring that wrote it: "aws-kms" for KMS.
	ProviderID string
	// ProviderInfo identifies the wrapping key: the KMS key ARN for KMS.
	ProviderInfo []byte
	// Ciphertext is the encrypted data key: a KMS ciphertext blob for KMS.
	Ciphertext []byte
}

// EncryptionMaterials is what a message is encrypted with.
type EncryptionMaterials struct {
	Suite Suite
	// EncryptionContext is the full context the message is bound to,
	// including the reserved pairs the CMM added.
	EncryptionContext map[string]string
	// RequiredContextKeys are keys of EncryptionContext that are
	// authenticated but not stored in the message; decrypt must supply them.
	RequiredContextKeys []string
	// DataKey is the plaintext data key (32 bytes). Whoever receives the
	// materials owns this slice and clears it when done.
	DataKey           []byte
	EncryptedDataKeys []EncryptedDataKey
	// SigningKey is set exactly when the suite is signed.
	SigningKey *ecdsa.PrivateKey
}

// DecryptionMaterials is what a message is decrypted with.
type DecryptionMaterials struct {
	Suite               Suite
	EncryptionContext   map[string]string
	RequiredContextKeys []string
	// DataKey is the plaintext data key; nil until a keyring sets it.
	DataKey []byte
	// VerificationKey is set exactly when the suite is signed.
	VerificationKey *ecdsa.PublicKey
}

// A Keyring generates, encrypts and decrypts data keys. Implementations must
// leave the materials unchanged when they return an error.
type Keyring interface {
	// OnEncrypt generates a data key if m has none, and adds one or more
	// encrypted copies of it to m.EncryptedDataKeys.
	OnEncrypt(ctx context.Context, m *EncryptionMaterials) error
	// OnDecrypt sets m.DataKey from one of edks, or fails. It fails if
	// m.DataKey is already set.
	OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error
}

// EncryptionMaterialsRequest asks a CMM for encryption materials.
type EncryptionMaterialsRequest struct {
	EncryptionContext map[string]string
	// Suite is the requested suite; 0 means the default.
	Suite Suite
	// RequiredContextKeys must end up in the materials' RequiredContextKeys.
	RequiredContextKeys []string
	// MaxPlaintextLength bounds the plaintext these materials will encrypt;
	// -1 means unknown.
	MaxPlaintextLength int64
}

// DecryptMaterialsRequest asks a CMM for decryption materials.
type DecryptMaterialsRequest struct {
	Suite             Suite
	EncryptedDataKeys []EncryptedDataKey
	// EncryptionContext is the context stored in the message header.
	EncryptionContext map[string]string
	// ReproducedContext is the context the caller of Decrypt supplied.
	ReproducedContext map[string]string
}

// A CMM (cryptographic materials manager) assembles the materials for
// encrypting and decrypting messages, usually with a Keyring. The caller
// owns the returned materials (and clears their data key when done).
type CMM interface {
	GetEncryptionMaterials(ctx context.Context, req *EncryptionMaterialsRequest) (*EncryptionMaterials, error)
	DecryptMaterials(ctx context.Context, req *DecryptMaterialsRequest) (*DecryptionMaterials, error)
}

func (m *EncryptionMaterials) clone() *EncryptionMaterials {
	c := *m
	c.EncryptionContext = maps.Clone(m.EncryptionContext)
	c.RequiredContextKeys = slices.Clone(m.RequiredContextKeys)
	c.DataKey = slices.Clone(m.DataKey)
	c.EncryptedDataKeys = slices.Clone(m.EncryptedDataKeys)
	return &c
}

func (m *DecryptionMaterials) clone() *DecryptionMaterials {
	c := *m
	c.EncryptionContext = maps.Clone(m.EncryptionContext)
	c.RequiredContextKeys = slices.Clone(m.RequiredContextKeys)
	c.DataKey = slices.Clone(m.DataKey)
	return &c
}
