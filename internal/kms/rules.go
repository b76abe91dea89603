package kms

// The authorization rule of every operation: which key(s) a request acts
// on, found the way the operation finds them, and the condition keys the
// request contributes. The engine that evaluates them is in authz.go.

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/store"
)

// Rule is how requests of one operation, whose input is In, are
// authorized. Each operation has one, declared below (AuthorizeEncrypt,
// …); they are built by custom, identityOnly and onKey.
type Rule[In any] struct {
	op      string // the operation, e.g. "Encrypt"
	action  string // kms:OPERATION
	grantOp string // the grant operation that can allow it; "" when none
	check   func(a *authzCall, in *In) error
}

// Operation returns the name of the operation r authorizes.
func (r *Rule[In]) Operation() string { return r.op }

// custom makes the rule of operation op from a function of its input.
func custom[In any](op string, f func(a *authzCall, in *In) error) *Rule[In] {
	r := &Rule[In]{op: op, action: "kms:" + op, check: f}
	if slices.Contains(GrantOperations, op) {
		r.grantOp = op
	}
	return r
}

// identityOnly makes the rule of an operation that is not tied to a key
// (ListKeys, GenerateRandom, …): identity policies alone decide, with
// resource "*".
func identityOnly[In any](op string) *Rule[In] {
	return custom(op, func(a *authzCall, _ *In) error { return a.checkIdentity(a.action, "*", nil) })
}

// onKey makes the rule of an operation on one key, named in the request as
// describe reads it: the key is resolved as the operation resolves it
// (forms accepted), then authorized.
func onKey[In any](op string, form resolveForm, cross bool, describe func(in *In, r *keyRequest)) *Rule[In] {
	return custom(op, func(a *authzCall, in *In) error {
		r := &keyRequest{form: form, cross: cross}
		describe(in, r)
		k, err := a.resolve(r.keyID, r.form)
		if err != nil {
			return err
		}
		if r.usageDays {
			days, err := a.s.trailingDaysWithoutUse(a.ctx, k)
			if err != nil {
				return err
			}
			r.set("kms:trailingdayswithoutkeyusage", strconv.FormatInt(days, 10))
		}
		return a.checkKey(a.action, a.grantOp, k, r)
	})
}

// keyIDOnly describes a request that names only its key.
func keyIDOnly(in *KeyIdInput, r *keyRequest) { r.keyID, r.tokens = in.KeyId, in.GrantTokens }

// The authorization rule of every operation, one each: the wire layer
// declares each operation with its rule (package awsjson's operation
// table), so an operation cannot be served without one.
var (
	// Keys.
	AuthorizeCreateKey            = custom("CreateKey", authorizeCreateKey)
	AuthorizeDescribeKey          = onKey("DescribeKey", anyKeyForm, crossAccount, keyIDOnly)
	AuthorizeListKeys             = identityOnly[ListInput]("ListKeys")
	AuthorizeUpdateKeyDescription = onKey("UpdateKeyDescription", idOrARN, sameAccount, func(in *UpdateKeyDescriptionInput, r *keyRequest) {
		r.keyID = in.KeyId
	})
	AuthorizeEnableKey  = onKey("EnableKey", idOrARN, sameAccount, keyIDOnly)
	AuthorizeDisableKey = onKey("DisableKey", idOrARN, sameAccount, func(in *KeyIdInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.usageDays = true
	})
	AuthorizeScheduleKeyDeletion = onKey("ScheduleKeyDeletion", idOrARN, sameAccount, func(in *ScheduleKeyDeletionInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.usageDays = true
		days := int32(30)
		if in.PendingWindowInDays != nil {
			days = *in.PendingWindowInDays
		}
		r.set("kms:schedulekeydeletionpendingwindowindays", strconv.Itoa(int(days)))
	})
	AuthorizeCancelKeyDeletion = onKey("CancelKeyDeletion", idOrARN, sameAccount, keyIDOnly)
	AuthorizeGetKeyLastUsage   = onKey("GetKeyLastUsage", idOrARN, sameAccount, func(in *GetKeyLastUsageInput, r *keyRequest) { r.keyID = in.KeyId })

	// Rotation (rotation.go).
	AuthorizeEnableKeyRotation = onKey("EnableKeyRotation", idOrARN, sameAccount, func(in *EnableKeyRotationInput, r *keyRequest) {
		r.keyID = in.KeyId
		days := int32(DefaultRotationPeriodDays)
		if in.RotationPeriodInDays != nil {
			days = *in.RotationPeriodInDays
		}
		r.set("kms:rotationperiodindays", strconv.Itoa(int(days)))
	})
	AuthorizeDisableKeyRotation   = onKey("DisableKeyRotation", idOrARN, sameAccount, keyIDOnly)
	AuthorizeGetKeyRotationStatus = onKey("GetKeyRotationStatus", idOrARN, crossAccount, keyIDOnly)
	AuthorizeRotateKeyOnDemand    = onKey("RotateKeyOnDemand", idOrARN, sameAccount, keyIDOnly)
	AuthorizeListKeyRotations     = onKey("ListKeyRotations", idOrARN, sameAccount, func(in *ListKeyRotationsInput, r *keyRequest) { r.keyID = in.KeyId })

	// Imported key material (import.go).
	AuthorizeGetParametersForImport = onKey("GetParametersForImport", idOrARN, sameAccount, func(in *GetParametersForImportInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.set("kms:wrappingalgorithm", in.WrappingAlgorithm)
		r.set("kms:wrappingkeyspec", in.WrappingKeySpec)
	})
	AuthorizeImportKeyMaterial = onKey("ImportKeyMaterial", idOrARN, sameAccount, func(in *ImportKeyMaterialInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.set("kms:expirationmodel", orDefault(in.ExpirationModel, ExpirationExpires))
		if in.ValidTo != nil {
			r.set("kms:validto", strconv.FormatInt(int64(*in.ValidTo), 10))
		}
	})
	AuthorizeDeleteImportedKeyMaterial = onKey("DeleteImportedKeyMaterial", idOrARN, sameAccount, func(in *DeleteImportedKeyMaterialInput, r *keyRequest) { r.keyID = in.KeyId })

	// Symmetric cryptography.
	AuthorizeEncrypt = onKey("Encrypt", anyKeyForm, crossAccount, func(in *EncryptInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.encryptionContext(in.EncryptionContext)
		r.set("kms:encryptionalgorithm", algOrDefault(in.EncryptionAlgorithm))
	})
	AuthorizeDecrypt                         = custom("Decrypt", authorizeDecrypt)
	AuthorizeReEncrypt                       = custom("ReEncrypt", authorizeReEncrypt)
	AuthorizeGenerateDataKey                 = onKey("GenerateDataKey", anyKeyForm, crossAccount, describeDataKey)
	AuthorizeGenerateDataKeyWithoutPlaintext = onKey("GenerateDataKeyWithoutPlaintext", anyKeyForm, crossAccount, describeDataKey)
	AuthorizeGenerateRandom                  = identityOnly[GenerateRandomInput]("GenerateRandom")
	// Custom key stores: IAM policies alone, like AWS (no key involved).
	AuthorizeCreateCustomKeyStore     = identityOnly[CreateCustomKeyStoreInput]("CreateCustomKeyStore")
	AuthorizeDescribeCustomKeyStores  = identityOnly[DescribeCustomKeyStoresInput]("DescribeCustomKeyStores")
	AuthorizeUpdateCustomKeyStore     = identityOnly[UpdateCustomKeyStoreInput]("UpdateCustomKeyStore")
	AuthorizeConnectCustomKeyStore    = identityOnly[CustomKeyStoreIdInput]("ConnectCustomKeyStore")
	AuthorizeDisconnectCustomKeyStore = identityOnly[CustomKeyStoreIdInput]("DisconnectCustomKeyStore")
	AuthorizeDeleteCustomKeyStore     = identityOnly[CustomKeyStoreIdInput]("DeleteCustomKeyStore")

	// Asymmetric cryptography, HMAC, key agreement and encapsulation.
	AuthorizeSign = onKey("Sign", anyKeyForm, crossAccount, func(in *SignInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.set("kms:signingalgorithm", in.SigningAlgorithm)
		r.set("kms:messagetype", orDefault(in.MessageType, "RAW"))
	})
	AuthorizeVerify = onKey("Verify", anyKeyForm, crossAccount, func(in *VerifyInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.set("kms:signingalgorithm", in.SigningAlgorithm)
		r.set("kms:messagetype", orDefault(in.MessageType, "RAW"))
	})
	AuthorizeGetPublicKey                        = onKey("GetPublicKey", anyKeyForm, crossAccount, keyIDOnly)
	AuthorizeGenerateDataKeyPair                 = onKey("GenerateDataKeyPair", anyKeyForm, crossAccount, describeDataKeyPair)
	AuthorizeGenerateDataKeyPairWithoutPlaintext = onKey("GenerateDataKeyPairWithoutPlaintext", anyKeyForm, crossAccount, describeDataKeyPair)
	AuthorizeGenerateMac                         = onKey("GenerateMac", anyKeyForm, crossAccount, func(in *GenerateMacInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.set("kms:macalgorithm", in.MacAlgorithm)
	})
	AuthorizeVerifyMac = onKey("VerifyMac", anyKeyForm, crossAccount, func(in *VerifyMacInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.set("kms:macalgorithm", in.MacAlgorithm)
	})
	AuthorizeDeriveSharedSecret = onKey("DeriveSharedSecret", anyKeyForm, crossAccount, func(in *DeriveSharedSecretInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
		r.set("kms:keyagreementalgorithm", in.KeyAgreementAlgorithm)
	})
	AuthorizeEncapsulate = onKey("Encapsulate", anyKeyForm, crossAccount, func(in *EncapsulateInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
	})
	AuthorizeDecapsulate = onKey("Decapsulate", anyKeyForm, crossAccount, func(in *DecapsulateInput, r *keyRequest) {
		r.keyID, r.tokens = in.KeyId, in.GrantTokens
	})

	// Aliases: the alias half is for identity policies, the key half for
	// the key policy.
	AuthorizeCreateAlias = custom("CreateAlias", authorizeCreateAlias)
	AuthorizeUpdateAlias = custom("UpdateAlias", authorizeUpdateAlias)
	AuthorizeDeleteAlias = custom("DeleteAlias", authorizeDeleteAlias)
	AuthorizeListAliases = identityOnly[ListAliasesInput]("ListAliases")

	// Tags.
	AuthorizeTagResource = onKey("TagResource", idOrARN, sameAccount, func(in *TagResourceInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.requestTags(in.Tags)
	})
	AuthorizeUntagResource = onKey("UntagResource", idOrARN, sameAccount, func(in *UntagResourceInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.setAll("aws:tagkeys", in.TagKeys)
	})
	AuthorizeListResourceTags = onKey("ListResourceTags", idOrARN, sameAccount, func(in *ListResourceTagsInput, r *keyRequest) { r.keyID = in.KeyId })

	// Key policies.
	AuthorizeGetKeyPolicy    = onKey("GetKeyPolicy", idOrARN, sameAccount, func(in *GetKeyPolicyInput, r *keyRequest) { r.keyID = in.KeyId })
	AuthorizePutKeyPolicy    = custom("PutKeyPolicy", authorizePutKeyPolicy)
	AuthorizeListKeyPolicies = onKey("ListKeyPolicies", idOrARN, sameAccount, func(in *ListKeyPoliciesInput, r *keyRequest) { r.keyID = in.KeyId })

	// Grants.
	AuthorizeCreateGrant = custom("CreateGrant", authorizeCreateGrant)
	AuthorizeListGrants  = onKey("ListGrants", idOrARN, crossAccount, func(in *ListGrantsInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.set("kms:grantisforawsresource", "false")
	})
	AuthorizeRevokeGrant = onKey("RevokeGrant", idOrARN, crossAccount, func(in *RevokeGrantInput, r *keyRequest) {
		r.keyID = in.KeyId
		r.set("kms:grantisforawsresource", "false")
	})
	AuthorizeRetireGrant         = custom("RetireGrant", authorizeRetireGrant)
	AuthorizeListRetirableGrants = custom("ListRetirableGrants", authorizeListRetirableGrants)

	// Multi-Region keys (multiregion.go).
	AuthorizeReplicateKey        = custom("ReplicateKey", authorizeReplicateKey)
	AuthorizeUpdatePrimaryRegion = custom("UpdatePrimaryRegion", authorizeUpdatePrimaryRegion)
)

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func describeDataKey(in *GenerateDataKeyInput, r *keyRequest) {
	r.keyID, r.tokens = in.KeyId, in.GrantTokens
	r.encryptionContext(in.EncryptionContext)
	r.set("kms:encryptionalgorithm", AlgSymmetricDefault)
}

func describeDataKeyPair(in *GenerateDataKeyPairInput, r *keyRequest) {
	r.keyID, r.tokens = in.KeyId, in.GrantTokens
	r.encryptionContext(in.EncryptionContext)
	r.set("kms:encryptionalgorithm", AlgSymmetricDefault)
	r.set("kms:datakeypairspec", in.KeyPairSpec)
}

// blobKey returns the key a symmetric ciphertext names (by key id, in any
// account of the caller's Region): Decrypt and ReEncrypt without a KeyId.
func (s *Service) blobKey(ctx context.Context, c Caller, id string) (*store.Key, error) {
	if k := c.authorized.find(byBlob, 0, id); k != nil {
		noteKey(ctx, k)
		return k, nil
	}
	// The blob names a key id; the key of that id in the caller's Region
	// decrypts it (for a multi-Region key, the related key there).
	k, err := s.key(ctx, recordID(c.Region, id))
	if err == nil && k.Region == c.Region {
		return k, nil
	}
	if err == nil || isNotFound(err) {
		// AWS's answer (AccessDeniedException, not NotFoundException),
		// which does not tell whether the key exists in another Region,
		// was deleted or never existed.
		return nil, errBlobKeyUnknown
	}
	return nil, internal("get key", err)
}

// errBlobKeyUnknown is the error of a Decrypt or ReEncrypt without KeyId
// whose ciphertext names a key that is not in the request's Region.
var errBlobKeyUnknown = awserr.New(awserr.AccessDenied,
	"The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.")

// decryptKey finds the key a Decrypt (or the source of a ReEncrypt) uses:
// the one KeyId names, else the one the ciphertext names. Its errors are
// those of the operation.
func (a *authzCall) decryptKey(keyID string, blob []byte, dryRun bool, mods []string) (*store.Key, error) {
	if keyID != "" {
		return a.resolve(keyID, anyKeyForm)
	}
	if blob == nil || ignoresCiphertext(dryRun, mods) {
		// Neither a key nor a ciphertext (or one a dry run ignores): the
		// operation's own error.
		_, err := a.s.dryRunIgnoringCiphertext(a.ctx, *a.c, "", "", dryRun, mods)
		if err == nil {
			err = internal("authorize", errors.New("no key to authorize"))
		}
		return nil, err
	}
	h, _, _, err := parseBlob(blob)
	if err != nil {
		return nil, errInvalidCiphertext
	}
	return a.blobKey(h.KeyID)
}

func authorizeDecrypt(a *authzCall, in *DecryptInput) error {
	k, err := a.decryptKey(in.KeyId, in.CiphertextBlob, in.DryRun, in.DryRunModifiers)
	if err != nil {
		return err
	}
	r := &keyRequest{keyID: in.KeyId, cross: crossAccount, tokens: in.GrantTokens}
	r.encryptionContext(in.EncryptionContext)
	r.set("kms:encryptionalgorithm", algOrDefault(in.EncryptionAlgorithm))
	return a.checkKey("kms:Decrypt", "Decrypt", k, r)
}

// authorizeReEncrypt checks kms:ReEncryptFrom on the source key and
// kms:ReEncryptTo on the destination key.
func authorizeReEncrypt(a *authzCall, in *ReEncryptInput) error {
	dst, err := a.resolve(in.DestinationKeyId, anyKeyForm)
	if err != nil {
		return err
	}
	src, err := a.decryptKey(in.SourceKeyId, in.CiphertextBlob, in.DryRun, in.DryRunModifiers)
	if err != nil {
		return err
	}
	same := strconv.FormatBool(src.ID == dst.ID)
	from := &keyRequest{keyID: in.SourceKeyId, cross: crossAccount, tokens: in.GrantTokens}
	from.encryptionContext(in.SourceEncryptionContext)
	from.set("kms:encryptionalgorithm", algOrDefault(in.SourceEncryptionAlgorithm))
	from.set("kms:reencryptonsamekey", same)
	if err := a.checkKey("kms:ReEncryptFrom", "ReEncryptFrom", src, from); err != nil {
		return err
	}
	to := &keyRequest{keyID: in.DestinationKeyId, cross: crossAccount, tokens: in.GrantTokens}
	to.encryptionContext(in.DestinationEncryptionContext)
	to.set("kms:encryptionalgorithm", algOrDefault(in.DestinationEncryptionAlgorithm))
	to.set("kms:reencryptonsamekey", same)
	return a.checkKey("kms:ReEncryptTo", "ReEncryptTo", dst, to)
}

// authorizeCreateKey checks kms:CreateKey (and kms:TagResource when the
// request tags the key) against identity policies, with the request's key
// properties as condition keys, and runs the lockout safety check on a
// given policy.
func authorizeCreateKey(a *authzCall, in *CreateKeyInput) error {
	spec := orDefault(orDefault(in.KeySpec, in.CustomerMasterKeySpec), SpecSymmetricDefault)
	r := &keyRequest{}
	r.set("kms:keyspec", spec)
	r.set("kms:customermasterkeyspec", spec)
	if usage, err := checkSpecUsage(spec, in.KeyUsage); err == nil {
		r.set("kms:keyusage", usage)
		r.set("kms:customermasterkeyusage", usage)
	}
	r.set("kms:keyorigin", orDefault(in.Origin, OriginAWSKMS))
	r.setAll("kms:multiregion", boolVals(in.MultiRegion))
	r.setAll("kms:bypasspolicylockoutsafetycheck", boolVals(in.BypassPolicyLockoutSafetyCheck))
	if in.MultiRegion {
		r.set("kms:multiregionkeytype", "PRIMARY")
	}
	r.requestTags(in.Tags)
	if err := a.checkIdentity("kms:CreateKey", "*", r); err != nil {
		return err
	}
	if len(in.Tags) > 0 {
		if err := a.checkIdentity("kms:TagResource", "*", r); err != nil {
			return err
		}
	}
	if in.Policy == nil || in.BypassPolicyLockoutSafetyCheck {
		return nil
	}
	pol, err := compileKeyPolicy(*in.Policy)
	if err != nil {
		return err
	}
	pc, err := a.context(nil, r, needAll)
	if err != nil {
		return err
	}
	// The key does not exist yet: its ARN has every key id.
	return checkLockout(pol, a.id, a.c.keyARN("*"), pc)
}

// authorizePutKeyPolicy checks kms:PutKeyPolicy under the current policy,
// then the lockout safety check under the new one.
func authorizePutKeyPolicy(a *authzCall, in *PutKeyPolicyInput) error {
	k, err := a.resolve(in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	r := &keyRequest{keyID: in.KeyId}
	r.setAll("kms:bypasspolicylockoutsafetycheck", boolVals(in.BypassPolicyLockoutSafetyCheck))
	if err := a.checkKey("kms:PutKeyPolicy", "", k, r); err != nil {
		return err
	}
	if in.BypassPolicyLockoutSafetyCheck {
		return nil
	}
	if err := checkPolicyName(in.PolicyName); err != nil {
		return err
	}
	pol, err := compileKeyPolicy(in.Policy)
	if err != nil {
		return err
	}
	ka := a.s.keyAuthz(k)
	pc, err := a.context(ka, r, needAll)
	if err != nil {
		return err
	}
	return checkLockout(pol, a.id, ka.arn, pc)
}

// aliasKey authorizes action on the key an alias operation touches, which
// must be in the caller's account.
func (a *authzCall) aliasKey(action string, k *store.Key) error {
	return a.checkKey(action, "", k, &keyRequest{cross: sameAccount})
}

// currentAliasKey returns the key an existing alias of the caller's account
// points at.
func (a *authzCall) currentAliasKey(name string) (*store.Key, error) {
	id, err := a.s.aliasTarget(a.ctx, a.c.Scope, name)
	if err != nil {
		return nil, err
	}
	k, err := a.s.key(a.ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, awserr.Newf(awserr.NotFound, "Alias %s is not found.", a.c.aliasARN(name))
		}
		return nil, internal("get key", err)
	}
	a.resolved.add(byAlias, 0, name, k)
	return k, nil
}

func authorizeCreateAlias(a *authzCall, in *AliasInput) error {
	// A name no one may use is refused before authorization, as AWS
	// validates a request before authorizing it.
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	if err := a.checkIdentity("kms:CreateAlias", a.c.aliasARN(in.AliasName), nil); err != nil {
		return err
	}
	k, err := a.resolve(in.TargetKeyId, idOrARN)
	if err != nil {
		return err
	}
	return a.aliasKey("kms:CreateAlias", k)
}

func authorizeUpdateAlias(a *authzCall, in *AliasInput) error {
	// A name no one may use is refused before authorization, as AWS
	// validates a request before authorizing it.
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	if err := a.checkIdentity("kms:UpdateAlias", a.c.aliasARN(in.AliasName), nil); err != nil {
		return err
	}
	old, err := a.currentAliasKey(in.AliasName)
	if err != nil {
		return err
	}
	if err := a.aliasKey("kms:UpdateAlias", old); err != nil {
		return err
	}
	k, err := a.resolve(in.TargetKeyId, idOrARN)
	if err != nil {
		return err
	}
	return a.aliasKey("kms:UpdateAlias", k)
}

func authorizeDeleteAlias(a *authzCall, in *DeleteAliasInput) error {
	// A name no one may use is refused before authorization, as AWS
	// validates a request before authorizing it.
	if err := checkAliasName(in.AliasName); err != nil {
		return err
	}
	if err := a.checkIdentity("kms:DeleteAlias", a.c.aliasARN(in.AliasName), nil); err != nil {
		return err
	}
	k, err := a.currentAliasKey(in.AliasName)
	if err != nil {
		return err
	}
	return a.aliasKey("kms:DeleteAlias", k)
}

// authorizeReplicateKey checks what AWS checks: kms:ReplicateKey on the
// primary key (its key policy, in its Region), then kms:CreateKey (and
// kms:TagResource when the request tags the replica) in the caller's
// identity policies as a request in the replica's Region, and the lockout
// safety check of the replica's policy.
func authorizeReplicateKey(a *authzCall, in *ReplicateKeyInput) error {
	k, err := a.resolve(in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	r := &keyRequest{keyID: in.KeyId}
	r.set("kms:replicaregion", in.ReplicaRegion)
	if err := a.checkKey("kms:ReplicateKey", "", k, r); err != nil {
		return err
	}
	there := a.inRegion(in.ReplicaRegion)
	cr := &keyRequest{}
	cr.set("kms:keyspec", k.KeySpec)
	cr.set("kms:customermasterkeyspec", k.KeySpec)
	cr.set("kms:keyusage", k.KeyUsage)
	cr.set("kms:customermasterkeyusage", k.KeyUsage)
	cr.set("kms:keyorigin", k.Origin)
	cr.setAll("kms:multiregion", trueVals)
	cr.set("kms:multiregionkeytype", MultiRegionReplica)
	cr.setAll("kms:bypasspolicylockoutsafetycheck", boolVals(in.BypassPolicyLockoutSafetyCheck))
	cr.requestTags(in.Tags)
	if err := there.checkIdentity("kms:CreateKey", "*", cr); err != nil {
		return err
	}
	if len(in.Tags) > 0 {
		if err := there.checkIdentity("kms:TagResource", "*", cr); err != nil {
			return err
		}
	}
	if in.Policy == nil || in.BypassPolicyLockoutSafetyCheck {
		return nil
	}
	pol, err := compileKeyPolicy(*in.Policy)
	if err != nil {
		return err
	}
	pc, err := there.context(nil, cr, needAll)
	if err != nil {
		return err
	}
	return checkLockout(pol, a.id, regionARN(in.ReplicaRegion, k.Account, "key/"+keyIDOf(k)), pc)
}

// authorizeUpdatePrimaryRegion checks kms:UpdatePrimaryRegion on the
// current primary key and on the replica that becomes the primary, each
// under its own key policy (with kms:PrimaryRegion). A request the
// operation refuses anyway (no such replica, not a primary key) is left to
// the operation's error.
func authorizeUpdatePrimaryRegion(a *authzCall, in *UpdatePrimaryRegionInput) error {
	k, err := a.resolve(in.KeyId, idOrARN)
	if err != nil {
		return err
	}
	r := &keyRequest{keyID: in.KeyId}
	r.set("kms:primaryregion", in.PrimaryRegion)
	if err := a.checkKey("kms:UpdatePrimaryRegion", "", k, r); err != nil {
		return err
	}
	if !isMultiRegion(k) || isReplica(k) || in.PrimaryRegion == k.Region || !a.s.served(in.PrimaryRegion) {
		return nil
	}
	np, err := a.s.key(a.ctx, recordID(in.PrimaryRegion, k.MultiRegionKeyID))
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return internal("get key", err)
	}
	return a.checkKey("kms:UpdatePrimaryRegion", "", np, r)
}

// inRegion returns the authorization as if the request were made in
// region (aws:RequestedRegion): ReplicateKey's half in the replica's Region.
func (a *authzCall) inRegion(region string) *authzCall {
	c := *a.c
	c.Region = region
	return &authzCall{s: a.s, ctx: a.ctx, c: &c, id: a.id, action: a.action, grantOp: a.grantOp, observe: a.observe}
}
