package kms

// The key spec table of AWS KMS: which key usages each key spec allows and
// which algorithms a key of each (spec, usage) pair supports. CreateKey,
// DescribeKey, GetPublicKey and every cryptographic operation read it.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/store"
)

// Key usages.
const (
	UsageSignVerify        = "SIGN_VERIFY"
	UsageGenerateVerifyMac = "GENERATE_VERIFY_MAC"
	UsageKeyAgreement      = "KEY_AGREEMENT"
	UsageEncapsulate       = "ENCAPSULATE_DECAPSULATE"
)

// specUsages lists the usages AWS allows for each key spec it offers, the
// first being the one CreateKey picks when KeyUsage is absent, if any (AWS
// defaults KeyUsage to ENCRYPT_DECRYPT, so keys that cannot encrypt need it
// given explicitly).
var specUsages = map[string][]string{
	keys.SpecSymmetric: {UsageEncryptDecrypt},
	keys.SpecRSA2048:   {UsageEncryptDecrypt, UsageSignVerify},
	keys.SpecRSA3072:   {UsageEncryptDecrypt, UsageSignVerify},
	keys.SpecRSA4096:   {UsageEncryptDecrypt, UsageSignVerify},
	keys.SpecP256:      {UsageSignVerify, UsageKeyAgreement},
	keys.SpecP384:      {UsageSignVerify, UsageKeyAgreement},
	keys.SpecP521:      {UsageSignVerify, UsageKeyAgreement},
	keys.SpecSecp256k1: {UsageSignVerify},
	keys.SpecEd25519:   {UsageSignVerify},
	keys.SpecMLDSA44:   {UsageSignVerify},
	keys.SpecMLDSA65:   {UsageSignVerify},
	keys.SpecMLDSA87:   {UsageSignVerify},
	keys.SpecMLKEM512:  {UsageEncapsulate},
	keys.SpecMLKEM768:  {UsageEncapsulate},
	keys.SpecMLKEM1024: {UsageEncapsulate},
	keys.SpecHMAC224:   {UsageGenerateVerifyMac},
	keys.SpecHMAC256:   {UsageGenerateVerifyMac},
	keys.SpecHMAC384:   {UsageGenerateVerifyMac},
	keys.SpecHMAC512:   {UsageGenerateVerifyMac},
}

// customerMasterKeySpecs is the deprecated CustomerMasterKeySpec enum:
// KeyMetadata carries that member only for these specs.
var customerMasterKeySpecs = []string{
	keys.SpecRSA2048, keys.SpecRSA3072, keys.SpecRSA4096, keys.SpecP256, keys.SpecP384, keys.SpecP521,
	keys.SpecSecp256k1, keys.SpecSymmetric, keys.SpecHMAC224, keys.SpecHMAC256, keys.SpecHMAC384,
	keys.SpecHMAC512, keys.SpecSM2,
}

// errSM2 declines SM2 keys. SM2 (with SM3 and SM4) exists in AWS KMS only in
// the China Regions; kmsd implements none of the ShangMi algorithms.
func errSM2(what string) error {
	return awserr.Newf(awserr.UnsupportedOperation,
		"%s SM2 is not supported: SM2 keys exist only in the AWS China Regions, and kmsd does not implement the ShangMi (SM2/SM3/SM4) algorithms.", what)
}

// checkSpecUsage returns the usage a new key of spec gets (usage, or the
// default when usage is empty), or the error AWS sends.
func checkSpecUsage(spec, usage string) (string, error) {
	if spec == keys.SpecSM2 {
		return "", errSM2("KeySpec")
	}
	usages, ok := specUsages[spec]
	if !ok {
		return "", awserr.Newf(awserr.UnsupportedOperation, "KeySpec %s is not supported by kmsd.", spec)
	}
	if usage == "" {
		usage = UsageEncryptDecrypt
	}
	if !slices.Contains(usages, usage) {
		return "", awserr.Newf(awserr.Validation, "KeyUsage %s is not compatible with KeySpec %s, which supports %s.",
			usage, spec, strings.Join(usages, ", "))
	}
	return usage, nil
}

// algorithms lists the algorithms of a key by kind.
type algorithms struct {
	Encryption, Signing, Mac, KeyAgreement, Encapsulation []string
}

// algorithmsOf returns the algorithms AWS reports (and allows) for k.
func algorithmsOf(spec, usage string) algorithms {
	var a algorithms
	switch usage {
	case UsageEncryptDecrypt:
		if spec == keys.SpecSymmetric {
			a.Encryption = []string{AlgSymmetricDefault}
		} else {
			a.Encryption = keys.EncryptionAlgorithms(spec)
		}
	case UsageSignVerify:
		a.Signing = keys.SigningAlgorithms(spec)
	case UsageGenerateVerifyMac:
		a.Mac = keys.MacAlgorithms(spec)
	case UsageKeyAgreement:
		a.KeyAgreement = keys.KeyAgreementAlgorithms(spec)
	case UsageEncapsulate:
		a.Encapsulation = keys.EncapsulationAlgorithms(spec)
	}
	return a
}

// cmkSpec returns spec when the deprecated CustomerMasterKeySpec enum has
// it, else "".
func cmkSpec(spec string) string {
	if slices.Contains(customerMasterKeySpecs, spec) {
		return spec
	}
	return ""
}

// keyUse is what a cryptographic operation needs of its key: a usage, and
// an algorithm among those the key's spec supports for that usage.
type keyUse struct {
	usage string
	kind  string // the operation's kind, for messages: "signing", "MAC", …
	algs  func(algorithms) []string
}

var (
	useSigning       = keyUse{UsageSignVerify, "signing", func(a algorithms) []string { return a.Signing }}
	useMAC           = keyUse{UsageGenerateVerifyMac, "MAC", func(a algorithms) []string { return a.Mac }}
	useKeyAgreement  = keyUse{UsageKeyAgreement, "key agreement", func(a algorithms) []string { return a.KeyAgreement }}
	useEncapsulation = keyUse{UsageEncapsulate, "encapsulation", func(a algorithms) []string { return a.Encapsulation }}
)

// keyFor resolves the key a cryptographic operation names (in any
// identifier form) and checks that it may serve use with algorithm alg in
// its current state: the opening every such operation shares.
func (s *Service) keyFor(ctx context.Context, c Caller, keyID string, use keyUse, alg string) (*store.Key, error) {
	k, err := s.resolve(ctx, c, keyID, anyKeyForm)
	if err != nil {
		return nil, err
	}
	if err := usableFor(k, use.usage, use.kind, alg, use.algs(algorithmsOf(k.KeySpec, k.KeyUsage))); err != nil {
		return nil, err
	}
	return k, nil
}

// operationKey returns the parsed private key an operation runs with, or
// errDryRun for a dry run: every check has passed by then, and a dry run
// must not touch key material.
func (s *Service) operationKey(ctx context.Context, k *store.Key, dryRun bool) (*keys.PrivateKey, func(), error) {
	if dryRun {
		return nil, nil, errDryRun
	}
	return s.privateKey(ctx, k)
}

// usableFor checks that k has usage, supports alg among algs (kind names
// the algorithm kind in the message), and is in a state that allows
// cryptography, in that order, with AWS's exceptions.
func usableFor(k *store.Key, usage, kind, alg string, algs []string) error {
	if k.KeyUsage != usage {
		return awserr.Newf(awserr.InvalidKeyUsage, "%s key usage is %s which is not valid for this operation, which needs %s.", arnOf(k), k.KeyUsage, usage)
	}
	if !slices.Contains(algs, alg) {
		return awserr.Newf(awserr.InvalidKeyUsage, "The %s algorithm %s is not valid for %s, which supports %s.",
			kind, alg, arnOf(k), strings.Join(algs, ", "))
	}
	return checkUsable(k)
}

// newMaterialFor creates and wraps a fresh material (a key's first, or a
// rotation's) of a key of any spec: 32 random bytes for SYMMETRIC_DEFAULT,
// a key as long as the hash for HMAC, and a DER PKCS #8 private key for
// asymmetric specs. The wrapping (materialAAD, the keystore) is the same
// for all of them.
func (s *Service) newMaterialFor(ctx context.Context, k *store.Key) (*store.Material, error) {
	plain, id, err := s.newMaterialPlain(k)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	wrapped, err := s.keystore.Wrap(ctx, plain, materialAAD(arnOf(k), id))
	if err != nil {
		return nil, internal("wrap key material", err)
	}
	return &store.Material{KeyID: k.ID, ID: id, Wrapped: wrapped, Created: s.now().UTC()}, nil
}

// newMaterialPlain generates fresh material for a key of k's spec and its
// material id. The caller clears the material once wrapped.
func (s *Service) newMaterialPlain(k *store.Key) (plain []byte, id string, err error) {
	switch {
	case k.KeySpec == keys.SpecSymmetric:
		plain, err = keys.NewMaterial(s.rand)
	case keys.IsHMAC(k.KeySpec):
		plain, err = keys.GenerateHMACKey(k.KeySpec, s.rand)
	default:
		plain, err = keys.GenerateKey(k.KeySpec, s.rand)
	}
	if err != nil {
		return nil, "", internal("generate key material", err)
	}
	id, err = keys.NewMaterialID(s.rand)
	if err != nil {
		clear(plain)
		return nil, "", internal("generate key material id", err)
	}
	return plain, id, nil
}

// privateKey returns the parsed private key of the current material of an
// asymmetric key, from the material cache. The caller must call release
// when done with it.
func (s *Service) privateKey(ctx context.Context, k *store.Key) (*keys.PrivateKey, func(), error) {
	m, err := s.material(ctx, k, k.CurrentMaterial)
	if err != nil {
		if errors.Is(err, errNoMaterial) {
			err = internal("private key", errNoMaterial)
		}
		return nil, nil, err
	}
	m.parseOnce.Do(func() { m.parsed, m.parseErr = keys.ParsePrivateKey(k.KeySpec, m.key) })
	if m.parseErr != nil {
		m.release()
		return nil, nil, internal("parse private key of "+k.ID, m.parseErr)
	}
	return m.parsed, m.release, nil
}

// secretMaterial returns the raw material of an HMAC key; release as above.
func (s *Service) secretMaterial(ctx context.Context, k *store.Key) (*cachedMaterial, error) {
	m, err := s.material(ctx, k, k.CurrentMaterial)
	if errors.Is(err, errNoMaterial) {
		return nil, internal("key material", errNoMaterial)
	}
	return m, err
}
