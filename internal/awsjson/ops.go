package awsjson

import (
	"fmt"

	"github.com/kmsd/kmsd/internal/kms"
)

// The model constraints of each request (the AWS KMS Smithy model). Rules
// that depend on state or on several members are the kms package's.

func validateCreateKey(v *validator, in *kms.CreateKeyInput) {
	if in.Policy != nil {
		v.length("policy", *in.Policy, 1, 131072)
		v.pattern("policy", *in.Policy, policyRE)
	}
	v.length("description", in.Description, 0, 8192)
	v.enum("keyUsage", in.KeyUsage, keyUsages)
	v.enum("customerMasterKeySpec", in.CustomerMasterKeySpec, customerMasterKeySpecs)
	v.enum("keySpec", in.KeySpec, keySpecs)
	v.enum("origin", in.Origin, origins)
	v.optLength("customKeyStoreId", in.CustomKeyStoreId, 1, 64)
	v.optLength("xksKeyId", in.XksKeyId, 1, 128)
	v.pattern("xksKeyId", in.XksKeyId, xksKeyIDRE)
	v.tags(in.Tags)
}

func validateKeyIDInput(v *validator, in *kms.KeyIdInput) {
	v.keyID("keyId", in.KeyId)
	v.grantTokens(in.GrantTokens)
}

func validateListKeys(v *validator, in *kms.ListInput) {
	v.list(in.Limit, in.Marker)
}

func validateUpdateKeyDescription(v *validator, in *kms.UpdateKeyDescriptionInput) {
	v.keyID("keyId", in.KeyId)
	if in.Description == nil {
		v.required("description", "")
	} else {
		v.length("description", *in.Description, 0, 8192)
	}
}

func validateScheduleKeyDeletion(v *validator, in *kms.ScheduleKeyDeletionInput) {
	v.keyID("keyId", in.KeyId)
	v.intRange("pendingWindowInDays", in.PendingWindowInDays, 1, 365)
}

func validateEncrypt(v *validator, in *kms.EncryptInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("plaintext", in.Plaintext, true, 1, 4096)
	v.grantTokens(in.GrantTokens)
	v.enum("encryptionAlgorithm", in.EncryptionAlgorithm, encryptionAlgorithms)
}

func validateDecrypt(v *validator, in *kms.DecryptInput) {
	v.blob("ciphertextBlob", in.CiphertextBlob, false, 1, 6144)
	v.optLength("keyId", in.KeyId, 1, 2048)
	v.grantTokens(in.GrantTokens)
	v.enum("encryptionAlgorithm", in.EncryptionAlgorithm, encryptionAlgorithms)
	v.recipient(in.Recipient)
	v.dryRunModifiers(in.DryRunModifiers)
}

func validateReEncrypt(v *validator, in *kms.ReEncryptInput) {
	v.blob("ciphertextBlob", in.CiphertextBlob, false, 1, 6144)
	v.optLength("sourceKeyId", in.SourceKeyId, 1, 2048)
	v.keyID("destinationKeyId", in.DestinationKeyId)
	v.enum("sourceEncryptionAlgorithm", in.SourceEncryptionAlgorithm, encryptionAlgorithms)
	v.enum("destinationEncryptionAlgorithm", in.DestinationEncryptionAlgorithm, encryptionAlgorithms)
	v.grantTokens(in.GrantTokens)
	v.dryRunModifiers(in.DryRunModifiers)
}

func validateGenerateDataKey(v *validator, in *kms.GenerateDataKeyInput) {
	v.keyID("keyId", in.KeyId)
	v.intRange("numberOfBytes", in.NumberOfBytes, 1, 1024)
	v.enum("keySpec", in.KeySpec, dataKeySpecs)
	v.grantTokens(in.GrantTokens)
	v.recipient(in.Recipient)
}

func validateGenerateRandom(v *validator, in *kms.GenerateRandomInput) {
	v.intRange("numberOfBytes", in.NumberOfBytes, 1, 1024)
	v.optLength("customKeyStoreId", in.CustomKeyStoreId, 1, 64)
	v.recipient(in.Recipient)
}

func validateAliasName(v *validator, name string) {
	if v.required("aliasName", name) {
		v.length("aliasName", name, 1, 256)
		v.pattern("aliasName", name, aliasNameRE)
	}
}

func validateAlias(v *validator, in *kms.AliasInput) {
	validateAliasName(v, in.AliasName)
	v.keyID("targetKeyId", in.TargetKeyId)
}

func validateDeleteAlias(v *validator, in *kms.DeleteAliasInput) {
	validateAliasName(v, in.AliasName)
}

func validateListAliases(v *validator, in *kms.ListAliasesInput) {
	v.optLength("keyId", in.KeyId, 1, 2048)
	v.list(in.Limit, in.Marker)
}

func validateTagResource(v *validator, in *kms.TagResourceInput) {
	v.keyID("keyId", in.KeyId)
	if in.Tags == nil {
		v.required("tags", "")
	}
	v.tags(in.Tags)
}

func validateUntagResource(v *validator, in *kms.UntagResourceInput) {
	v.keyID("keyId", in.KeyId)
	if in.TagKeys == nil {
		v.required("tagKeys", "")
	}
	for i, k := range in.TagKeys {
		v.length(fmt.Sprintf("tagKeys.%d.member", i+1), k, 1, 128)
	}
}

func validateListResourceTags(v *validator, in *kms.ListResourceTagsInput) {
	v.keyID("keyId", in.KeyId)
	v.list(in.Limit, in.Marker)
}

func validateSign(v *validator, in *kms.SignInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("message", in.Message, true, 1, 4096)
	v.requiredEnum("signingAlgorithm", in.SigningAlgorithm, signingAlgorithms)
	v.enum("messageType", in.MessageType, messageTypes)
	v.grantTokens(in.GrantTokens)
}

func validateVerify(v *validator, in *kms.VerifyInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("message", in.Message, true, 1, 4096)
	v.blob("signature", in.Signature, true, 1, 6144)
	v.requiredEnum("signingAlgorithm", in.SigningAlgorithm, signingAlgorithms)
	v.enum("messageType", in.MessageType, messageTypes)
	v.grantTokens(in.GrantTokens)
}

func validateGenerateDataKeyPair(v *validator, in *kms.GenerateDataKeyPairInput) {
	v.keyID("keyId", in.KeyId)
	v.requiredEnum("keyPairSpec", in.KeyPairSpec, dataKeyPairSpecs)
	v.grantTokens(in.GrantTokens)
	v.recipient(in.Recipient)
}

func validateGenerateMac(v *validator, in *kms.GenerateMacInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("message", in.Message, true, 1, 4096)
	v.requiredEnum("macAlgorithm", in.MacAlgorithm, macAlgorithms)
	v.grantTokens(in.GrantTokens)
}

func validateVerifyMac(v *validator, in *kms.VerifyMacInput) {
	v.keyID("keyId", in.KeyId)
	v.blob("message", in.Message, true, 1, 4096)
	v.blob("mac", in.Mac, true, 1, 6144)
	v.requiredEnum("macAlgorithm", in.MacAlgorithm, macAlgorithms)
	v.grantTokens(in.GrantTokens)
}

func validateDeriveSharedSecret(v *validator, in *kms.DeriveSharedSecretInput) {
	v.keyID("keyId", in.KeyId)
	v.requiredEnum("keyAgreementAlgorithm", in.KeyAgreementAlgorithm, keyAgreementAlgorithms)
	v.blob("publicKey", in.PublicKey, true, 1, 8192)
	v.grantTokens(in.GrantTokens)
	v.recipient(in.Recipient)
}

func validateEncapsulate(v *validator, in *kms.EncapsulateInput) {
	v.keyID("keyId", in.KeyId)
	v.requiredEnum("encapsulationAlgorithm", in.EncapsulationAlgorithm, encapsulationAlgorithms)
	v.grantTokens(in.GrantTokens)
}

func validateDecapsulate(v *validator, in *kms.DecapsulateInput) {
	v.keyID("keyId", in.KeyId)
	v.requiredEnum("encapsulationAlgorithm", in.EncapsulationAlgorithm, encapsulationAlgorithms)
	v.blob("sharedSecretCiphertextBlob", in.SharedSecretCiphertextBlob, true, 1, 6144)
	v.grantTokens(in.GrantTokens)
}

func validateGetKeyLastUsage(v *validator, in *kms.GetKeyLastUsageInput) {
	v.keyID("keyId", in.KeyId)
}

// region checks a required RegionType member.
func (v *validator) region(field, s string) {
	if v.required(field, s) {
		v.length(field, s, 1, 32)
		v.pattern(field, s, regionRE)
	}
}

func validateReplicateKey(v *validator, in *kms.ReplicateKeyInput) {
	v.keyID("keyId", in.KeyId)
	v.region("replicaRegion", in.ReplicaRegion)
	if in.Policy != nil {
		v.length("policy", *in.Policy, 1, 131072)
		v.pattern("policy", *in.Policy, policyRE)
	}
	v.length("description", in.Description, 0, 8192)
	v.tags(in.Tags)
}

func validateUpdatePrimaryRegion(v *validator, in *kms.UpdatePrimaryRegionInput) {
	v.keyID("keyId", in.KeyId)
	v.region("primaryRegion", in.PrimaryRegion)
}
