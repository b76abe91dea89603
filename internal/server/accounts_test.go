package server_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// accountsIAM declares a second account: partner (its identity policy
// allows kms:* on every resource), outsider (no identity policy) and
// encrypter (its identity policy allows kms:Encrypt on the first
// account's keys only).
const accountsIAM = `
accounts:
  - id: "444455556666"
    users:
      - name: partner
        policies:
          - document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}'
      - name: outsider
      - name: encrypter
        policies:
          - document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "arn:aws:kms:*:111122223333:key/*"}]}'
`

// sharedWithPartner delegates to IAM in the owning account and allows the
// partner account everything, except Decrypt with the context
// {"forbidden": "yes"}.
const sharedWithPartner = `{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "kms:*", "Resource": "*"},
  {"Effect": "Deny", "Principal": {"AWS": "444455556666"}, "Action": "kms:Decrypt", "Resource": "*",
   "Condition": {"StringEquals": {"kms:EncryptionContext:forbidden": "yes"}}}
]}`

// crossAccountKeys are keys of the default account whose policy is
// sharedWithPartner, one per kind of cryptography, and a key with the
// default policy.
type crossAccountKeys struct {
	sym, sign, hmac, agree, kem, private *types.KeyMetadata
	ciphertext, signature, mac, peerDER  []byte
	encapsulated                         []byte
}

func makeCrossAccountKeys(t *testing.T, owner *awskms.Client) *crossAccountKeys {
	t.Helper()
	ctx := context.Background()
	mk := func(spec types.KeySpec, usage types.KeyUsageType, policy *string) *types.KeyMetadata {
		out, err := owner.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: spec, KeyUsage: usage, Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		return out.KeyMetadata
	}
	shared := aws.String(sharedWithPartner)
	k := &crossAccountKeys{
		sym:     mk("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", shared),
		sign:    mk("ECC_NIST_P256", "SIGN_VERIFY", shared),
		hmac:    mk("HMAC_256", "GENERATE_VERIFY_MAC", shared),
		agree:   mk("ECC_NIST_P256", "KEY_AGREEMENT", shared),
		kem:     mk("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", shared),
		private: mk("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", nil),
	}
	if _, err := owner.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/shared"), TargetKeyId: k.sym.KeyId}); err != nil {
		t.Fatal(err)
	}
	enc, err := owner.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.sym.KeyId, Plaintext: []byte("shared secret")})
	if err != nil {
		t.Fatal(err)
	}
	k.ciphertext = enc.CiphertextBlob
	sig, err := owner.Sign(ctx, &awskms.SignInput{KeyId: k.sign.KeyId, Message: []byte("signed"), SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	k.signature = sig.Signature
	mac, err := owner.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: k.hmac.KeyId, Message: []byte("maced"), MacAlgorithm: "HMAC_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	k.mac = mac.Mac
	peer, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k.peerDER, err = x509.MarshalPKIXPublicKey(peer.PublicKey()); err != nil {
		t.Fatal(err)
	}
	encap, err := owner.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: k.kem.KeyId, EncapsulationAlgorithm: "ML_KEM"})
	if err != nil {
		t.Fatal(err)
	}
	k.encapsulated = encap.SharedSecretCiphertextBlob
	return k
}

// keyOp is one operation on a key of another account: call makes the
// request with the key named by name (a key ARN, or another form).
type keyOp struct {
	op   string
	key  func(*crossAccountKeys) *types.KeyMetadata
	call func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error
}

func sym(k *crossAccountKeys) *types.KeyMetadata  { return k.sym }
func sign(k *crossAccountKeys) *types.KeyMetadata { return k.sign }

// crossAccountOps are the operations AWS allows on a key of another
// account (the API reference's "Cross-account use: Yes"), each as a request
// that succeeds when allowed.
var crossAccountOps = []keyOp{
	{"DescribeKey", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: name})
		return err
	}},
	{"Encrypt", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: name, Plaintext: []byte("x")})
		return err
	}},
	{"Decrypt", sym, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		out, err := c.Decrypt(ctx, &awskms.DecryptInput{KeyId: name, CiphertextBlob: k.ciphertext})
		if err == nil && string(out.Plaintext) != "shared secret" {
			return fmt.Errorf("Decrypt returned %q", out.Plaintext)
		}
		return err
	}},
	{"ReEncrypt", sym, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		_, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{SourceKeyId: name, DestinationKeyId: name, CiphertextBlob: k.ciphertext})
		return err
	}},
	{"GenerateDataKey", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: name, KeySpec: "AES_256"})
		return err
	}},
	{"GenerateDataKeyWithoutPlaintext", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: name, NumberOfBytes: aws.Int32(16)})
		return err
	}},
	{"GenerateDataKeyPair", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GenerateDataKeyPair(ctx, &awskms.GenerateDataKeyPairInput{KeyId: name, KeyPairSpec: "ECC_NIST_P256"})
		return err
	}},
	{"GenerateDataKeyPairWithoutPlaintext", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &awskms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: name, KeyPairSpec: "ECC_NIST_P256"})
		return err
	}},
	{"Sign", sign, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.Sign(ctx, &awskms.SignInput{KeyId: name, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
		return err
	}},
	{"Verify", sign, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		_, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: name, Message: []byte("signed"), Signature: k.signature, SigningAlgorithm: "ECDSA_SHA_256"})
		return err
	}},
	{"GetPublicKey", sign, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: name})
		return err
	}},
	{"GenerateMac", func(k *crossAccountKeys) *types.KeyMetadata { return k.hmac }, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: name, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
		return err
	}},
	{"VerifyMac", func(k *crossAccountKeys) *types.KeyMetadata { return k.hmac }, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		_, err := c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: name, Message: []byte("maced"), Mac: k.mac, MacAlgorithm: "HMAC_SHA_256"})
		return err
	}},
	{"DeriveSharedSecret", func(k *crossAccountKeys) *types.KeyMetadata { return k.agree }, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		_, err := c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: name, KeyAgreementAlgorithm: "ECDH", PublicKey: k.peerDER})
		return err
	}},
	{"Encapsulate", func(k *crossAccountKeys) *types.KeyMetadata { return k.kem }, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: name, EncapsulationAlgorithm: "ML_KEM"})
		return err
	}},
	{"Decapsulate", func(k *crossAccountKeys) *types.KeyMetadata { return k.kem }, func(ctx context.Context, c *awskms.Client, k *crossAccountKeys, name *string) error {
		_, err := c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: name, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: k.encapsulated})
		return err
	}},
	{"GetKeyRotationStatus", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: name})
		return err
	}},
	{"CreateGrant", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: name, GranteePrincipal: aws.String(partnerARN("partner")),
			Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
		return err
	}},
	{"ListGrants", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: name})
		return err
	}},
}

// sameAccountOps are the key operations AWS refuses on a key of another
// account, whatever the policies say.
var sameAccountOps = []keyOp{
	{"EnableKey", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: name})
		return err
	}},
	{"DisableKey", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: name})
		return err
	}},
	{"ScheduleKeyDeletion", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: name})
		return err
	}},
	{"CancelKeyDeletion", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: name})
		return err
	}},
	{"UpdateKeyDescription", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.UpdateKeyDescription(ctx, &awskms.UpdateKeyDescriptionInput{KeyId: name, Description: aws.String("mine")})
		return err
	}},
	{"GetKeyLastUsage", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: name})
		return err
	}},
	{"GetKeyPolicy", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: name})
		return err
	}},
	{"PutKeyPolicy", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: name, Policy: aws.String(sharedWithPartner), BypassPolicyLockoutSafetyCheck: true})
		return err
	}},
	{"ListKeyPolicies", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.ListKeyPolicies(ctx, &awskms.ListKeyPoliciesInput{KeyId: name})
		return err
	}},
	{"TagResource", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.TagResource(ctx, &awskms.TagResourceInput{KeyId: name, Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}})
		return err
	}},
	{"UntagResource", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.UntagResource(ctx, &awskms.UntagResourceInput{KeyId: name, TagKeys: []string{"k"}})
		return err
	}},
	{"ListResourceTags", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: name})
		return err
	}},
	{"EnableKeyRotation", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: name})
		return err
	}},
	{"DisableKeyRotation", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: name})
		return err
	}},
	{"RotateKeyOnDemand", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: name})
		return err
	}},
	{"ListKeyRotations", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: name})
		return err
	}},
	{"GetParametersForImport", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: name, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048"})
		return err
	}},
	{"DeleteImportedKeyMaterial", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.DeleteImportedKeyMaterial(ctx, &awskms.DeleteImportedKeyMaterialInput{KeyId: name})
		return err
	}},
	{"CreateAlias", sym, func(ctx context.Context, c *awskms.Client, _ *crossAccountKeys, name *string) error {
		_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/theirs"), TargetKeyId: name})
		return err
	}},
}

func partnerARN(user string) string { return "arn:aws:iam::" + partner + ":user/" + user }

// TestCrossAccount checks each rule of cross-account use, with the
// principals of a second account: an operation AWS allows across accounts
// works with the key ARN (and the alias ARN where an alias is accepted)
// when the key policy allows the other account and the caller's identity
// policy allows it too; with a bare key id or alias name it looks in the
// caller's own account (NotFoundException); without the identity policy's
// allow, or without the key policy's, it is AccessDeniedException with
// AWS's message; the other key operations are refused across accounts
// whatever the policies say.
func TestCrossAccount(t *testing.T) {
	ctx := context.Background()
	env := kmstest.StartWithIAM(t, accountsIAM, t.TempDir())
	k := makeCrossAccountKeys(t, env.Client)
	partnerC := env.UserClient(t, partner, "partner")
	outsider := env.UserClient(t, partner, "outsider")
	encrypter := env.UserClient(t, partner, "encrypter")
	p := partnerARN("partner")

	t.Run("allowed by both sides, by key ARN", func(t *testing.T) {
		for _, o := range crossAccountOps {
			if err := o.call(ctx, partnerC, k, o.key(k).Arn); err != nil {
				t.Errorf("%s by key ARN: %v", o.op, err)
			}
		}
		// The grant the partner made is on the owner's key.
		gs, err := env.Client.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: k.sym.KeyId})
		if err != nil || len(gs.Grants) != 1 || aws.ToString(gs.Grants[0].GranteePrincipal) != p {
			t.Errorf("grants on the shared key: %+v, %v", gs, err)
		}
	})
	t.Run("by alias ARN where aliases are accepted", func(t *testing.T) {
		aliasARN := aws.String("arn:aws:kms:us-east-1:" + kmstest.Account + ":alias/shared")
		for _, op := range []string{"DescribeKey", "Encrypt", "Decrypt", "GenerateDataKey"} {
			o := findOp(t, crossAccountOps, op)
			if err := o.call(ctx, partnerC, k, aliasARN); err != nil {
				t.Errorf("%s by alias ARN: %v", op, err)
			}
		}
		// CreateGrant, ListGrants and GetKeyRotationStatus take a key ARN only.
		for _, op := range []string{"CreateGrant", "ListGrants", "GetKeyRotationStatus"} {
			wantCode(t, findOp(t, crossAccountOps, op).call(ctx, partnerC, k, aliasARN), "NotFoundException")
		}
	})
	t.Run("a key id or alias name names the caller's own account", func(t *testing.T) {
		for _, o := range crossAccountOps {
			wantCode(t, o.call(ctx, partnerC, k, o.key(k).KeyId), "NotFoundException")
		}
		wantCode(t, findOp(t, crossAccountOps, "Encrypt").call(ctx, partnerC, k, aws.String("alias/shared")), "NotFoundException")
		// Decrypt finds a symmetric ciphertext's key without a KeyId.
		if err := findOp(t, crossAccountOps, "Decrypt").call(ctx, partnerC, k, nil); err != nil {
			t.Errorf("Decrypt without KeyId: %v", err)
		}
	})
	t.Run("the caller's identity policy must allow too", func(t *testing.T) {
		for _, o := range crossAccountOps {
			arn := aws.ToString(o.key(k).Arn)
			err := o.call(ctx, outsider, k, o.key(k).Arn)
			wantDenied(t, err, denial(partnerARN("outsider"), "kms:"+grantAction(o.op), arn, noIdentity("kms:"+grantAction(o.op))))
		}
		// encrypter's identity policy allows Encrypt only.
		if err := findOp(t, crossAccountOps, "Encrypt").call(ctx, encrypter, k, k.sym.Arn); err != nil {
			t.Errorf("Encrypt allowed by both sides: %v", err)
		}
		err := findOp(t, crossAccountOps, "Decrypt").call(ctx, encrypter, k, k.sym.Arn)
		wantDenied(t, err, denial(partnerARN("encrypter"), "kms:Decrypt", aws.ToString(k.sym.Arn), noIdentity("kms:Decrypt")))
	})
	t.Run("the key policy must allow too", func(t *testing.T) {
		arn := aws.ToString(k.private.Arn)
		_, err := partnerC.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.private.Arn, Plaintext: []byte("x")})
		wantDenied(t, err, denial(p, "kms:Encrypt", arn, noResource("kms:Encrypt")))
		_, err = partnerC.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: k.private.Arn})
		wantDenied(t, err, denial(p, "kms:DescribeKey", arn, noResource("kms:DescribeKey")))
		// An explicit deny in the key policy wins over both allows.
		ct, err := env.Client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.sym.KeyId, Plaintext: []byte("x"), EncryptionContext: map[string]string{"forbidden": "yes"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = partnerC.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: map[string]string{"forbidden": "yes"}})
		wantDenied(t, err, denial(p, "kms:Decrypt", aws.ToString(k.sym.Arn), "with an explicit deny in a resource-based policy"))
	})
	t.Run("other key operations are refused across accounts", func(t *testing.T) {
		for _, o := range sameAccountOps {
			arn := aws.ToString(o.key(k).Arn)
			err := o.call(ctx, partnerC, k, o.key(k).Arn)
			wantDenied(t, err, denial(p, "kms:"+o.op, arn, noResource("kms:"+o.op)))
		}
		d, err := env.Client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: k.sym.KeyId})
		if err != nil || d.KeyMetadata.KeyState != types.KeyStateEnabled || aws.ToString(d.KeyMetadata.Description) != "" {
			t.Errorf("the shared key after the refused operations: %+v, %v", d, err)
		}
	})
	t.Run("a grant allows without identity policies", func(t *testing.T) {
		// The partner grants outsider Encrypt on the owner's key: outsider
		// may then Encrypt, though no identity policy of its allows it.
		g, err := partnerC.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: k.sym.Arn, GranteePrincipal: aws.String(partnerARN("outsider")),
			Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := outsider.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.sym.Arn, Plaintext: []byte("x")}); err != nil {
			t.Errorf("Encrypt through the grant: %v", err)
		}
		// The partner revokes it, across accounts, by key ARN.
		if _, err := partnerC.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: k.sym.Arn, GrantId: g.GrantId}); err != nil {
			t.Fatalf("RevokeGrant by key ARN: %v", err)
		}
		_, err = outsider.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.sym.Arn, Plaintext: []byte("x")})
		wantDenied(t, err, denial(partnerARN("outsider"), "kms:Encrypt", aws.ToString(k.sym.Arn), noIdentity("kms:Encrypt")))
		// A grant whose retiring principal is the partner is retired by it.
		g, err = env.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: k.sym.KeyId, GranteePrincipal: aws.String(partnerARN("outsider")),
			RetiringPrincipal: aws.String(p), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
		if err != nil {
			t.Fatal(err)
		}
		rg, err := partnerC.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(p)})
		if err != nil || len(rg.Grants) != 1 || aws.ToString(rg.Grants[0].KeyId) != aws.ToString(k.sym.Arn) {
			t.Fatalf("ListRetirableGrants: %+v, %v", rg, err)
		}
		if _, err := partnerC.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: k.sym.Arn, GrantId: g.GrantId}); err != nil {
			t.Fatalf("RetireGrant across accounts: %v", err)
		}
	})
	t.Run("each account has its own keys and aliases", func(t *testing.T) {
		ck, err := partnerC.CreateKey(ctx, &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(ck.KeyMetadata.AWSAccountId) != partner || !strings.Contains(aws.ToString(ck.KeyMetadata.Arn), ":"+partner+":key/") {
			t.Fatalf("the partner's key: %+v", ck.KeyMetadata)
		}
		// The partner's key policy delegates to the partner's account.
		pol, err := partnerC.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: ck.KeyMetadata.KeyId})
		if err != nil || !strings.Contains(aws.ToString(pol.Policy), "arn:aws:iam::"+partner+":root") {
			t.Fatalf("the partner's key policy: %v, %v", pol, err)
		}
		// The same alias name in each account.
		if _, err := partnerC.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/shared"), TargetKeyId: ck.KeyMetadata.KeyId}); err != nil {
			t.Fatal(err)
		}
		ks, err := partnerC.ListKeys(ctx, &awskms.ListKeysInput{})
		if err != nil || len(ks.Keys) != 1 || aws.ToString(ks.Keys[0].KeyId) != aws.ToString(ck.KeyMetadata.KeyId) {
			t.Errorf("the partner's ListKeys: %+v, %v", ks, err)
		}
		as, err := partnerC.ListAliases(ctx, &awskms.ListAliasesInput{})
		if err != nil || len(as.Aliases) != 1 || aws.ToString(as.Aliases[0].TargetKeyId) != aws.ToString(ck.KeyMetadata.KeyId) {
			t.Errorf("the partner's ListAliases: %+v, %v", as, err)
		}
		// The owner cannot use the partner's key: its policy names the
		// partner's account only.
		_, err = env.Client.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.Arn, Plaintext: []byte("x")})
		wantDenied(t, err, denial("arn:aws:iam::"+kmstest.Account+":user/admin", "kms:Encrypt", aws.ToString(ck.KeyMetadata.Arn), noResource("kms:Encrypt")))
	})
}

// grantAction is the action a crossAccountOps entry is authorized as: the
// operation's own, except ReEncrypt (ReEncryptFrom first).
func grantAction(op string) string {
	if op == "ReEncrypt" {
		return "ReEncryptFrom"
	}
	return op
}

func findOp(t *testing.T, ops []keyOp, name string) keyOp {
	t.Helper()
	for _, o := range ops {
		if o.op == name {
			return o
		}
	}
	t.Fatalf("no operation %s", name)
	return keyOp{}
}
