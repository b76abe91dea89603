package kms

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// RecipientInfo is a Nitro enclave attestation; kmsd has no enclaves to
// attest and refuses it.
type RecipientInfo struct {
	AttestationDocument    []byte
	KeyEncryptionAlgorithm string
}

var errRecipient = awserr.New(awserr.UnsupportedOperation, "Recipient (Nitro enclave attestation) is not supported by kmsd.")

var errDryRun = awserr.New(awserr.DryRunOperation, "The request would have succeeded, but the DryRun option is set.")

var errInvalidCiphertext = awserr.New(awserr.InvalidCiphertext, "The ciphertext is invalid, was not made by this KMS, or was made under a different encryption context.")

// usableForEncryption checks that k can encrypt or decrypt with alg ("" means
// the default, SYMMETRIC_DEFAULT) in its current state. RSA encryption keys
// support only the RSAES_OAEP algorithms, so with them alg is required.
func usableForEncryption(k *store.Key, alg string) error {
	if k.KeyUsage != UsageEncryptDecrypt {
		return awserr.Newf(awserr.InvalidKeyUsage, "%s key usage is %s which is not valid for this operation.", arnOf(k), k.KeyUsage)
	}
	algs := algorithmsOf(k.KeySpec, k.KeyUsage).Encryption
	if !slices.Contains(algs, algOrDefault(alg)) {
		return awserr.Newf(awserr.InvalidKeyUsage, "The encryption algorithm %s is not valid for %s, which supports %s.", algOrDefault(alg), arnOf(k), strings.Join(algs, ", "))
	}
	return checkUsable(k)
}

// algOrDefault returns alg, or SYMMETRIC_DEFAULT when it is empty.
func algOrDefault(alg string) string {
	if alg == "" {
		return AlgSymmetricDefault
	}
	return alg
}

// checkContext rejects an encryption context that the blob format cannot
// bind (each key and value is length-prefixed with 16 bits).
func checkContext(field string, ec map[string]string) error {
	if len(ec) > 0xffff {
		return awserr.Newf(awserr.Validation, "%s has too many pairs.", field)
	}
	for k, v := range ec {
		if len(k) > 0xffff || len(v) > 0xffff {
			return awserr.Newf(awserr.Validation, "%s has a key or value longer than 65535 bytes.", field)
		}
	}
	return nil
}

// seal encrypts plaintext under the current material of k.
func (s *Service) seal(ctx context.Context, k *store.Key, plaintext []byte, ec map[string]string) ([]byte, error) {
	if k.CustomKeyStoreID != "" {
		return s.sealHSM(ctx, k, plaintext, ec)
	}
	m, err := s.material(ctx, k, k.CurrentMaterial)
	if errors.Is(err, errNoMaterial) {
		return nil, internal("seal", errors.New("current key material missing for "+k.ID))
	}
	if err != nil {
		return nil, err
	}
	defer m.release()
	blob, err := keys.Seal(s.rand, m.key, keys.Header{KeyID: keyIDOf(k), MaterialID: k.CurrentMaterial}, plaintext, ec)
	if err != nil {
		return nil, internal("seal", err)
	}
	return blob, nil
}

// parseBlob reads the header of a symmetric ciphertext blob of either
// format: version 1 (software keys) or version 2, sealed inside the HSM of
// a custom key store, which also returns its parts.
func parseBlob(blob []byte) (h keys.Header, hb keys.HSMBlob, isHSM bool, err error) {
	if len(blob) > 0 && blob[0] == keys.FormatHSM {
		hb, err = keys.ParseHSMBlob(blob)
		return hb.Header, hb, true, err
	}
	h, err = keys.ParseHeader(blob)
	return h, hb, false, err
}

// open decrypts a blob made by seal. It returns the key that made it and the
// plaintext. keyID, when not empty, must name that same key.
func (s *Service) open(ctx context.Context, c Caller, blob []byte, ec map[string]string, keyID, alg string, dryRun bool) (*store.Key, string, []byte, error) {
	// An asymmetric ciphertext names no key: the request must (asymmetric.go).
	if keyID != "" {
		if k, err := s.resolve(ctx, c, keyID, anyKeyForm); err == nil && k.KeySpec != SpecSymmetricDefault {
			return s.openAsymmetric(ctx, k, blob, ec, alg, dryRun)
		}
	}
	h, hb, isHSM, err := parseBlob(blob)
	if err != nil {
		return nil, "", nil, errInvalidCiphertext
	}
	var k *store.Key
	if keyID != "" {
		k, err = s.resolve(ctx, c, keyID, anyKeyForm)
		if err != nil {
			return nil, "", nil, err
		}
		// Any related key of a multi-Region key opens the blobs of the
		// others: they share their key id and material.
		if keyIDOf(k) != h.KeyID {
			return nil, "", nil, awserr.New(awserr.IncorrectKey, "The key ID in the request does not identify a CMK that can perform this operation.")
		}
	} else {
		k, err = s.blobKey(ctx, c, h.KeyID)
		if err != nil {
			return nil, "", nil, err
		}
	}
	if err := usableForEncryption(k, alg); err != nil {
		return nil, "", nil, err
	}
	if err := checkContext("encryptionContext", ec); err != nil {
		return nil, "", nil, err
	}
	var pt []byte
	if isHSM || k.CustomKeyStoreID != "" {
		pt, err = s.openHSM(ctx, k, hb, ec)
	} else {
		pt, err = s.openSoftware(ctx, k, h.MaterialID, blob, ec)
	}
	if err != nil {
		return nil, "", nil, err
	}
	if dryRun {
		clear(pt)
		return nil, "", nil, errDryRun
	}
	return k, h.MaterialID, pt, nil
}

// openSoftware decrypts a version 1 blob with the material it names.
func (s *Service) openSoftware(ctx context.Context, k *store.Key, materialID string, blob []byte, ec map[string]string) ([]byte, error) {
	m, err := s.material(ctx, k, materialID)
	if errors.Is(err, errNoMaterial) {
		return nil, errInvalidCiphertext
	}
	if err != nil {
		return nil, err
	}
	defer m.release()
	pt, err := keys.Open(m.key, blob, ec)
	if err != nil {
		return nil, errInvalidCiphertext
	}
	return pt, nil
}

// EncryptInput is the Encrypt request.
type EncryptInput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	EncryptionAlgorithm string
	DryRun              bool
}

// EncryptOutput is the Encrypt response.
type EncryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string // key ARN
	EncryptionAlgorithm string
}

// Encrypt encrypts up to 4096 bytes under a symmetric key.
func (s *Service) Encrypt(ctx context.Context, c Caller, in *EncryptInput) (*EncryptOutput, error) {
	k, err := s.resolve(ctx, c, in.KeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if err := usableForEncryption(k, in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkContext("encryptionContext", in.EncryptionContext); err != nil {
		return nil, err
	}
	if err := checkAsymmetricEncryption(k, in.EncryptionAlgorithm, len(in.Plaintext), in.EncryptionContext); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	blob, err := s.encryptWith(ctx, k, in.EncryptionAlgorithm, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	s.noteUse(ctx, k, useEncrypt)
	return &EncryptOutput{CiphertextBlob: blob, KeyId: arnOf(k), EncryptionAlgorithm: algOrDefault(in.EncryptionAlgorithm)}, nil
}

// DecryptInput is the Decrypt request.
type DecryptInput struct {
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	KeyId               string
	EncryptionAlgorithm string
	Recipient           *RecipientInfo
	DryRun              bool
	DryRunModifiers     []string
}

// DecryptOutput is the Decrypt response. The caller owns Plaintext and
// should clear it once written out.
type DecryptOutput struct {
	KeyId               string // key ARN
	Plaintext           []byte
	EncryptionAlgorithm string
	KeyMaterialId       string
}

// Decrypt decrypts a ciphertext blob made by Encrypt, ReEncrypt or
// GenerateDataKey*. KeyId is optional; when given it must name the key that
// made the blob.
func (s *Service) Decrypt(ctx context.Context, c Caller, in *DecryptInput) (*DecryptOutput, error) {
	if in.Recipient != nil {
		return nil, errRecipient
	}
	// A dry run with IGNORE_CIPHERTEXT checks the key and authorization
	// only, whatever CiphertextBlob holds (AWS's meaning).
	if in.CiphertextBlob == nil || ignoresCiphertext(in.DryRun, in.DryRunModifiers) {
		return s.dryRunIgnoringCiphertext(ctx, c, in.KeyId, in.EncryptionAlgorithm, in.DryRun, in.DryRunModifiers)
	}
	k, mid, pt, err := s.open(ctx, c, in.CiphertextBlob, in.EncryptionContext, in.KeyId, in.EncryptionAlgorithm, in.DryRun)
	if err != nil {
		return nil, err
	}
	s.noteUse(ctx, k, useDecrypt)
	return &DecryptOutput{KeyId: arnOf(k), Plaintext: pt, EncryptionAlgorithm: algOrDefault(in.EncryptionAlgorithm), KeyMaterialId: mid}, nil
}

// ignoresCiphertext reports whether a Decrypt or ReEncrypt is a dry run
// with the IGNORE_CIPHERTEXT modifier, which checks the key the request
// names (KeyId, SourceKeyId: required then) and its authorization, not the
// ciphertext, which it may omit. The modifier means nothing without DryRun.
func ignoresCiphertext(dryRun bool, mods []string) bool {
	return dryRun && slices.Contains(mods, "IGNORE_CIPHERTEXT")
}

// dryRunIgnoringCiphertext answers a request without a ciphertext, or a dry
// run that ignores it: only a dry run with the IGNORE_CIPHERTEXT modifier and
// a KeyId may omit it.
func (s *Service) dryRunIgnoringCiphertext(ctx context.Context, c Caller, keyID, alg string, dryRun bool, mods []string) (*DecryptOutput, error) {
	if !ignoresCiphertext(dryRun, mods) {
		return nil, awserr.Invalid(awserr.Violation{Field: "ciphertextBlob", Null: true, Constraint: "Member must not be null"})
	}
	if keyID == "" {
		return nil, awserr.New(awserr.Validation, "KeyId is required when CiphertextBlob is omitted with the IGNORE_CIPHERTEXT dry-run modifier.")
	}
	k, err := s.resolve(ctx, c, keyID, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if err := usableForEncryption(k, alg); err != nil {
		return nil, err
	}
	return nil, errDryRun
}

// ReEncryptInput is the ReEncrypt request.
type ReEncryptInput struct {
	CiphertextBlob                 []byte
	SourceEncryptionContext        map[string]string
	SourceKeyId                    string
	DestinationKeyId               string
	DestinationEncryptionContext   map[string]string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
	GrantTokens                    []string
	DryRun                         bool
	DryRunModifiers                []string
}

// ReEncryptOutput is the ReEncrypt response.
type ReEncryptOutput struct {
	CiphertextBlob                 []byte
	SourceKeyId                    string // key ARN
	KeyId                          string // destination key ARN
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
	SourceKeyMaterialId            string
	DestinationKeyMaterialId       string
}

// ReEncrypt decrypts a blob and encrypts its plaintext under another key (or
// the current material of the same key) without exposing it.
func (s *Service) ReEncrypt(ctx context.Context, c Caller, in *ReEncryptInput) (*ReEncryptOutput, error) {
	dst, err := s.resolve(ctx, c, in.DestinationKeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if err := usableForEncryption(dst, in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkContext("destinationEncryptionContext", in.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	if err := checkAsymmetricEncryption(dst, in.DestinationEncryptionAlgorithm, 0, in.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	if in.CiphertextBlob == nil || ignoresCiphertext(in.DryRun, in.DryRunModifiers) {
		_, err := s.dryRunIgnoringCiphertext(ctx, c, in.SourceKeyId, in.SourceEncryptionAlgorithm, in.DryRun, in.DryRunModifiers)
		return nil, err
	}
	// A dry run opens the ciphertext too (dryRun false here): the size of
	// its plaintext decides whether an RSA destination takes it, and a dry
	// run must fail as the real call would.
	src, srcMID, pt, err := s.open(ctx, c, in.CiphertextBlob, in.SourceEncryptionContext, in.SourceKeyId, in.SourceEncryptionAlgorithm, false)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	// The plaintext size is known only now; an RSA destination may refuse it.
	if err := checkAsymmetricEncryption(dst, in.DestinationEncryptionAlgorithm, len(pt), nil); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	blob, err := s.encryptWith(ctx, dst, in.DestinationEncryptionAlgorithm, pt, in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	s.noteUse(ctx, src, useReEncrypt)
	s.noteUse(ctx, dst, useReEncrypt)
	return &ReEncryptOutput{
		CiphertextBlob:                 blob,
		SourceKeyId:                    arnOf(src),
		KeyId:                          arnOf(dst),
		SourceEncryptionAlgorithm:      algOrDefault(in.SourceEncryptionAlgorithm),
		DestinationEncryptionAlgorithm: algOrDefault(in.DestinationEncryptionAlgorithm),
		SourceKeyMaterialId:            srcMID,
		DestinationKeyMaterialId:       dst.CurrentMaterial,
	}, nil
}

// GenerateDataKeyInput is the GenerateDataKey and
// GenerateDataKeyWithoutPlaintext request.
type GenerateDataKeyInput struct {
	KeyId             string
	EncryptionContext map[string]string
	NumberOfBytes     *int32
	KeySpec           string
	GrantTokens       []string
	Recipient         *RecipientInfo
	DryRun            bool
}

// GenerateDataKeyOutput is the GenerateDataKey response; Plaintext is nil
// for GenerateDataKeyWithoutPlaintext.
type GenerateDataKeyOutput struct {
	CiphertextBlob []byte
	Plaintext      []byte
	KeyId          string // key ARN
	KeyMaterialId  string
}

// GenerateDataKey returns a fresh data key in plaintext and encrypted under
// a symmetric key.
func (s *Service) GenerateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, in, true)
}

// GenerateDataKeyWithoutPlaintext is GenerateDataKey without the plaintext
// copy.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, in, false)
}

func (s *Service) generateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput, withPlaintext bool) (*GenerateDataKeyOutput, error) {
	if in.Recipient != nil {
		return nil, errRecipient
	}
	var n int
	switch {
	case (in.NumberOfBytes == nil) == (in.KeySpec == ""):
		return nil, awserr.New(awserr.Validation, "Please specify either number of bytes or key spec.")
	case in.KeySpec == "AES_256":
		n = 32
	case in.KeySpec == "AES_128":
		n = 16
	case in.KeySpec != "":
		return nil, awserr.Invalid(awserr.Violation{Field: "keySpec", Value: in.KeySpec, Constraint: "Member must satisfy enum value set: [AES_256, AES_128]"})
	default:
		n = int(*in.NumberOfBytes)
		if n < 1 || n > 1024 {
			return nil, awserr.Invalid(rangeViolation("numberOfBytes", n, 1, 1024))
		}
	}
	k, err := s.resolve(ctx, c, in.KeyId, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if err := usableForEncryption(k, ""); err != nil {
		return nil, err
	}
	if err := checkContext("encryptionContext", in.EncryptionContext); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	dk := make([]byte, n)
	if _, err := io.ReadFull(s.rand, dk); err != nil {
		return nil, internal("generate data key", err)
	}
	blob, err := s.seal(ctx, k, dk, in.EncryptionContext)
	if err != nil {
		clear(dk)
		return nil, err
	}
	out := &GenerateDataKeyOutput{CiphertextBlob: blob, KeyId: arnOf(k), KeyMaterialId: k.CurrentMaterial}
	if withPlaintext {
		out.Plaintext = dk
		s.noteUse(ctx, k, useGenerateDataKey)
	} else {
		clear(dk)
		s.noteUse(ctx, k, useGenerateDataKeyWithoutPlaintext)
	}
	return out, nil
}

// GenerateRandomInput is the GenerateRandom request.
type GenerateRandomInput struct {
	NumberOfBytes    *int32
	CustomKeyStoreId string
	Recipient        *RecipientInfo
}

// GenerateRandomOutput is the GenerateRandom response.
type GenerateRandomOutput struct {
	Plaintext []byte
}

// GenerateRandom returns 1 to 1024 random bytes.
func (s *Service) GenerateRandom(ctx context.Context, c Caller, in *GenerateRandomInput) (*GenerateRandomOutput, error) {
	if in.Recipient != nil {
		return nil, errRecipient
	}
	if in.NumberOfBytes == nil {
		return nil, awserr.Invalid(awserr.Violation{Field: "numberOfBytes", Null: true, Constraint: "Member must not be null"})
	}
	n := int(*in.NumberOfBytes)
	if n < 1 || n > 1024 {
		return nil, awserr.Invalid(rangeViolation("numberOfBytes", n, 1, 1024))
	}
	if in.CustomKeyStoreId != "" {
		b, err := s.randomFromCKS(ctx, c, in.CustomKeyStoreId, n)
		if err != nil {
			return nil, err
		}
		return &GenerateRandomOutput{Plaintext: b}, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return nil, internal("generate random", err)
	}
	return &GenerateRandomOutput{Plaintext: b}, nil
}
