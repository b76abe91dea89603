package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/awsarn"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/kmstest"
)

const partner = "444455556666"

// authzIAM declares the principals of the authorization tests: in the
// default account alice (named by key policies), bob (IAM delegation),
// mallory (nothing), carol (an identity-policy deny), keyadmin (policies
// from a file) and the role app; in a second account dave (with an
// identity policy for the first account's keys) and erin (without).
const authzIAM = `
accounts:
  - id: "111122223333"
    users:
      - name: alice
      - name: bob
        tags: {team: payments}
        policies:
          - name: use-keys
            document:
              Version: 2012-10-17
              Statement:
                - Effect: Allow
                  Action: [kms:Encrypt, kms:Decrypt, kms:DescribeKey]
                  Resource: "arn:aws:kms:*:111122223333:key/*"
      - name: mallory
      - name: carol
        policies:
          - document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}'
          - document: '{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}]}'
      - name: keyadmin
        policies:
          - file: keyadmin.json
    roles:
      - name: app
        path: /services/
        tags: {team: payments}
  - id: "444455556666"
    users:
      - name: dave
        policies:
          - document: |
              {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                "Resource": "arn:aws:kms:us-east-1:111122223333:key/*"}]}
      - name: erin
`

const keyadminPolicy = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Action": ["kms:CreateKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"], "Resource": "*"}]}`

// sharedKeyPolicy delegates to IAM, names alice (with a condition on the
// encryption context) and the app role (with a condition on a principal
// tag), allows the partner account, and denies encrypting secrets.
const sharedKeyPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Alice, for IT", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:Department": "IT"}}},
    {"Sid": "Alice describes", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "kms:DescribeKey", "Resource": "*"},
    {"Sid": "Payments apps", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/services/app"},
     "Action": "kms:GenerateDataKey", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalTag/team": "payments"}}},
    {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
    {"Sid": "Never encrypt secrets", "Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:classification": "secret"}}}
  ]
}`

type authzEnv struct {
	*kmstest.Env
	dir                                                   string // holds keyadmin.json
	alice, bob, mallory, carol, keyadmin, app, dave, erin *awskms.Client
}

func startAuthz(t *testing.T) *authzEnv {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keyadmin.json"), []byte(keyadminPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	env := kmstest.StartWithIAM(t, authzIAM, dir)
	return &authzEnv{
		Env:      env,
		dir:      dir,
		alice:    env.UserClient(t, kmstest.Account, "alice"),
		bob:      env.UserClient(t, kmstest.Account, "bob"),
		mallory:  env.UserClient(t, kmstest.Account, "mallory"),
		carol:    env.UserClient(t, kmstest.Account, "carol"),
		keyadmin: env.UserClient(t, kmstest.Account, "keyadmin"),
		app:      env.RoleClient(t, kmstest.Account, "app", "worker-1"),
		dave:     env.UserClient(t, partner, "dave"),
		erin:     env.UserClient(t, partner, "erin"),
	}
}

// wantDenied checks an AccessDeniedException and its exact message.
func wantDenied(t *testing.T, err error, message string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want AccessDeniedException, got %v", err)
	}
	if ae.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("error %s (%s), want AccessDeniedException", ae.ErrorCode(), ae.ErrorMessage())
	}
	if message != "" && ae.ErrorMessage() != message {
		t.Fatalf("AccessDeniedException message\n got: %s\nwant: %s", ae.ErrorMessage(), message)
	}
}

func errMessage(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae.ErrorMessage()
}

func denial(user, action, resource, why string) string {
	return "User: " + user + " is not authorized to perform: " + action + " on resource: " + resource + " " + why
}

const (
	aliceARN   = "arn:aws:iam::111122223333:user/alice"
	bobARN     = "arn:aws:iam::111122223333:user/bob"
	malloryARN = "arn:aws:iam::111122223333:user/mallory"
	carolARN   = "arn:aws:iam::111122223333:user/carol"
	erinARN    = "arn:aws:iam::444455556666:user/erin"
	daveARN    = "arn:aws:iam::444455556666:user/dave"
)

func noIdentity(action string) string {
	return "because no identity-based policy allows the " + action + " action"
}
func noResource(action string) string {
	return "because no resource-based policy allows the " + action + " action"
}

func TestAuthorizationPrincipals(t *testing.T) {
	e := startAuthz(t)
	ctx := context.Background()
	out, err := e.Client.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(sharedKeyPolicy), Description: aws.String("shared")})
	if err != nil {
		t.Fatal(err)
	}
	keyID, keyARN := out.KeyMetadata.KeyId, aws.ToString(out.KeyMetadata.Arn)
	it := map[string]string{"Department": "IT"}
	enc := func(c *awskms.Client, id *string, ec map[string]string) (*awskms.EncryptOutput, error) {
		return c.Encrypt(ctx, &awskms.EncryptInput{KeyId: id, Plaintext: []byte("payload"), EncryptionContext: ec})
	}

	t.Run("named in the key policy, with a condition on the encryption context", func(t *testing.T) {
		ct, err := enc(e.alice, keyID, it)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := e.alice.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: it})
		if err != nil || string(dec.Plaintext) != "payload" {
			t.Fatalf("Decrypt: %v", err)
		}
		// Condition key names are case-insensitive: the pair's key may be
		// spelled in any case.
		if _, err := enc(e.alice, keyID, map[string]string{"department": "IT"}); err != nil {
			t.Fatal(err)
		}
		// Another department: only the account statement matches, which
		// delegates to IAM, and alice has no identity policy.
		_, err = enc(e.alice, keyID, map[string]string{"Department": "HR"})
		wantDenied(t, err, denial(aliceARN, "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))
		_, err = enc(e.alice, keyID, nil)
		wantDenied(t, err, denial(aliceARN, "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))
		_, err = e.alice.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: keyID, KeySpec: types.DataKeySpecAes256, EncryptionContext: it})
		wantDenied(t, err, denial(aliceARN, "kms:GenerateDataKey", keyARN, noIdentity("kms:GenerateDataKey")))
		if _, err := e.alice.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: keyID}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("explicit deny in the key policy overrides the allow", func(t *testing.T) {
		_, err := enc(e.alice, keyID, map[string]string{"Department": "IT", "classification": "secret"})
		wantDenied(t, err, denial(aliceARN, "kms:Encrypt", keyARN, "with an explicit deny in a resource-based policy"))
		// Even the built-in admin, whom everything else allows.
		_, err = enc(e.Client, keyID, map[string]string{"classification": "secret"})
		wantDenied(t, err, denial("arn:aws:iam::111122223333:user/admin", "kms:Encrypt", keyARN, "with an explicit deny in a resource-based policy"))
	})

	t.Run("IAM delegation", func(t *testing.T) {
		ct, err := enc(e.bob, keyID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.bob.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob}); err != nil {
			t.Fatal(err)
		}
		_, err = e.bob.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: keyID, NumberOfBytes: aws.Int32(32)})
		wantDenied(t, err, denial(bobARN, "kms:GenerateDataKey", keyARN, noIdentity("kms:GenerateDataKey")))
		_, err = e.bob.CreateKey(ctx, &awskms.CreateKeyInput{})
		wantDenied(t, err, denial(bobARN, "kms:CreateKey", "*", noIdentity("kms:CreateKey")))
	})

	t.Run("denied", func(t *testing.T) {
		_, err := enc(e.mallory, keyID, it)
		wantDenied(t, err, denial(malloryARN, "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))
		_, err = e.mallory.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: keyID})
		wantDenied(t, err, denial(malloryARN, "kms:DescribeKey", keyARN, noIdentity("kms:DescribeKey")))
		_, err = e.mallory.ListKeys(ctx, &awskms.ListKeysInput{})
		wantDenied(t, err, denial(malloryARN, "kms:ListKeys", "*", noIdentity("kms:ListKeys")))
		_, err = e.mallory.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/m"), TargetKeyId: keyID})
		wantDenied(t, err, denial(malloryARN, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/m", noIdentity("kms:CreateAlias")))
		// A key that does not exist is NotFoundException for everyone.
		_, err = enc(e.mallory, aws.String("11111111-2222-3333-4444-555555555555"), nil)
		wantCode(t, err, "NotFoundException")
	})

	t.Run("explicit deny in an identity policy", func(t *testing.T) {
		ct, err := enc(e.carol, keyID, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.carol.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
		wantDenied(t, err, denial(carolARN, "kms:Decrypt", keyARN, "with an explicit deny in an identity-based policy"))
	})

	t.Run("role session named by its role, with a principal tag condition", func(t *testing.T) {
		if _, err := e.app.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: keyID, KeySpec: types.DataKeySpecAes256}); err != nil {
			t.Fatal(err)
		}
		_, err := enc(e.app, keyID, nil)
		wantDenied(t, err, denial("arn:aws:sts::111122223333:assumed-role/app/worker-1", "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))
	})

	t.Run("cross-account", func(t *testing.T) {
		ct, err := enc(e.dave, aws.String(keyARN), nil)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(ct.KeyId) != keyARN {
			t.Fatalf("KeyId = %s", aws.ToString(ct.KeyId))
		}
		// The ciphertext names the key: Decrypt needs no KeyId.
		dec, err := e.dave.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
		if err != nil || string(dec.Plaintext) != "payload" {
			t.Fatalf("cross-account Decrypt: %v", err)
		}
		// A bare key id is looked up in the caller's own account.
		_, err = enc(e.dave, keyID, nil)
		wantCode(t, err, "NotFoundException")
		// The key policy does not allow the partner DescribeKey.
		_, err = e.dave.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(keyARN)})
		wantDenied(t, err, denial(daveARN, "kms:DescribeKey", keyARN, noResource("kms:DescribeKey")))
		// DisableKey cannot be called across accounts at all.
		_, err = e.dave.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyARN)})
		wantDenied(t, err, denial(daveARN, "kms:DisableKey", keyARN, noResource("kms:DisableKey")))
		// Without an identity policy of its own, the key policy is not enough.
		_, err = enc(e.erin, aws.String(keyARN), nil)
		wantDenied(t, err, denial(erinARN, "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))
	})

	t.Run("undeclared principal", func(t *testing.T) {
		cfg := kmstest.ParseIAM(t, strings.Replace(authzIAM, "      - name: mallory\n", "", 1))
		cfg.BaseDir = e.dir
		e.SetIAM(t, cfg)
		_, err := e.mallory.ListKeys(ctx, &awskms.ListKeysInput{})
		wantCode(t, err, "UnrecognizedClientException")
		if _, err := enc(e.bob, keyID, nil); err != nil {
			t.Fatalf("bob after the reload: %v", err)
		}
	})
}

func TestGrants(t *testing.T) {
	e := startAuthz(t)
	ctx := context.Background()
	key := createKey(t, e.Client, "granted")
	keyARN := aws.ToString(key.Arn)
	t1 := map[string]string{"tenant": "t1"}
	enc := func(c *awskms.Client, ec map[string]string, tokens ...string) error {
		_, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("x"), EncryptionContext: ec, GrantTokens: tokens})
		return err
	}
	wantDenied(t, enc(e.mallory, t1), denial(malloryARN, "kms:Encrypt", keyARN, noIdentity("kms:Encrypt")))

	g, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{
		KeyId: key.KeyId, GranteePrincipal: aws.String(malloryARN), Name: aws.String("mallory-t1"),
		Operations:  []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: t1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(aws.ToString(g.GrantId)) != 64 || aws.ToString(g.GrantToken) == "" {
		t.Fatalf("CreateGrant = %+v", g)
	}

	t.Run("a grant allows at once, within its constraints", func(t *testing.T) {
		if err := enc(e.mallory, t1, aws.ToString(g.GrantToken)); err != nil {
			t.Fatalf("with the grant token: %v", err)
		}
		if err := enc(e.mallory, map[string]string{"TENANT": "t1", "extra": "ok"}); err != nil {
			t.Fatalf("key case differs, extra pair: %v", err)
		}
		wantDenied(t, enc(e.mallory, map[string]string{"tenant": "T1"}), "")
		wantDenied(t, enc(e.mallory, nil), "")
		_, err := e.mallory.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: key.KeyId})
		wantDenied(t, err, "")
		_, err = e.Client.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("x"), GrantTokens: []string{"not-a-token"}})
		wantCode(t, err, "InvalidGrantTokenException")
	})

	t.Run("Name makes CreateGrant idempotent", func(t *testing.T) {
		again, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{
			KeyId: key.KeyId, GranteePrincipal: aws.String(malloryARN), Name: aws.String("mallory-t1"),
			Operations:  []types.GrantOperation{types.GrantOperationDecrypt, types.GrantOperationEncrypt},
			Constraints: &types.GrantConstraints{EncryptionContextSubset: t1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(again.GrantId) != aws.ToString(g.GrantId) || aws.ToString(again.GrantToken) == aws.ToString(g.GrantToken) {
			t.Fatalf("second CreateGrant = %s / same token %v", aws.ToString(again.GrantId), aws.ToString(again.GrantToken) == aws.ToString(g.GrantToken))
		}
		if err := enc(e.mallory, t1, aws.ToString(again.GrantToken)); err != nil {
			t.Fatal(err)
		}
		list, err := e.Client.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: key.KeyId})
		if err != nil || len(list.Grants) != 1 || list.Truncated {
			t.Fatalf("ListGrants: %v %+v", err, list)
		}
		ge := list.Grants[0]
		if aws.ToString(ge.KeyId) != keyARN || aws.ToString(ge.Name) != "mallory-t1" || aws.ToString(ge.GranteePrincipal) != malloryARN ||
			aws.ToString(ge.IssuingAccount) != "arn:aws:iam::111122223333:root" || len(ge.Operations) != 2 || ge.CreationDate == nil ||
			ge.Constraints == nil || ge.Constraints.EncryptionContextSubset["tenant"] != "t1" {
			t.Fatalf("grant entry %+v", ge)
		}
	})

	t.Run("operations must suit the key", func(t *testing.T) {
		_, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(bobARN),
			Operations: []types.GrantOperation{types.GrantOperationSign}})
		wantCode(t, err, "ValidationException")
		_, err = e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(bobARN),
			Operations: []types.GrantOperation{"Destroy"}})
		wantCode(t, err, "ValidationException")
	})

	t.Run("a revoked grant stops at once", func(t *testing.T) {
		_, err := e.mallory.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: key.KeyId, GrantId: g.GrantId})
		wantDenied(t, err, denial(malloryARN, "kms:RevokeGrant", keyARN, noIdentity("kms:RevokeGrant")))
		if _, err := e.Client.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: key.KeyId, GrantId: g.GrantId}); err != nil {
			t.Fatal(err)
		}
		wantDenied(t, enc(e.mallory, t1), "")
		wantDenied(t, enc(e.mallory, t1, aws.ToString(g.GrantToken)), "")
		_, err = e.Client.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: key.KeyId, GrantId: g.GrantId})
		wantCode(t, err, "NotFoundException")
	})

	t.Run("retiring", func(t *testing.T) {
		r, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(malloryARN),
			RetiringPrincipal: aws.String(bobARN), Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
		if err != nil {
			t.Fatal(err)
		}
		if err := enc(e.mallory, nil); err != nil {
			t.Fatal(err)
		}
		list, err := e.Client.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(bobARN)})
		if err != nil || len(list.Grants) != 1 || aws.ToString(list.Grants[0].GrantId) != aws.ToString(r.GrantId) {
			t.Fatalf("ListRetirableGrants: %v %+v", err, list)
		}
		_, err = e.bob.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(bobARN)})
		wantDenied(t, err, denial(bobARN, "kms:ListRetirableGrants", "*", noIdentity("kms:ListRetirableGrants")))
		// The grantee may not retire it (the grant does not allow
		// RetireGrant); the retiring principal may.
		_, err = e.mallory.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: r.GrantToken})
		wantDenied(t, err, denial(malloryARN, "kms:RetireGrant", keyARN, noIdentity("kms:RetireGrant")))
		if _, err := e.bob.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: r.GrantToken}); err != nil {
			t.Fatal(err)
		}
		wantDenied(t, enc(e.mallory, nil), "")

		// A grantee whose grant allows RetireGrant retires it by key ARN
		// and grant id.
		r2, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(malloryARN),
			Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationRetireGrant}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.mallory.RetireGrant(ctx, &awskms.RetireGrantInput{KeyId: aws.String(keyARN), GrantId: r2.GrantId}); err != nil {
			t.Fatal(err)
		}
		_, err = e.mallory.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: r2.GrantToken})
		wantCode(t, err, "NotFoundException")
	})

	t.Run("a grant that allows CreateGrant allows only grants within itself", func(t *testing.T) {
		_, err := e.Client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(aliceARN),
			Operations:  []types.GrantOperation{types.GrantOperationCreateGrant, types.GrantOperationEncrypt},
			Constraints: &types.GrantConstraints{EncryptionContextSubset: t1}})
		if err != nil {
			t.Fatal(err)
		}
		sub := func(ops []types.GrantOperation, c *types.GrantConstraints) error {
			_, err := e.alice.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: key.KeyId, GranteePrincipal: aws.String(malloryARN), Operations: ops, Constraints: c})
			return err
		}
		encrypt := []types.GrantOperation{types.GrantOperationEncrypt}
		if err := sub(encrypt, &types.GrantConstraints{EncryptionContextSubset: map[string]string{"tenant": "t1", "app": "x"}}); err != nil {
			t.Fatalf("stricter sub-grant: %v", err)
		}
		if err := sub(encrypt, &types.GrantConstraints{EncryptionContextEquals: t1}); err != nil {
			t.Fatalf("Equals sub-grant: %v", err)
		}
		wantDenied(t, sub(encrypt, nil), "")
		wantDenied(t, sub([]types.GrantOperation{types.GrantOperationDecrypt}, &types.GrantConstraints{EncryptionContextSubset: t1}), "")
		wantDenied(t, sub(encrypt, &types.GrantConstraints{EncryptionContextSubset: map[string]string{"tenant": "t2"}}), "")
	})
}

func TestKeyPolicies(t *testing.T) {
	e := startAuthz(t)
	ctx := context.Background()
	key := createKey(t, e.Client, "policies")

	t.Run("default policy, GetKeyPolicy and ListKeyPolicies", func(t *testing.T) {
		got, err := e.Client.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: key.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(got.Policy) != kms.DefaultKeyPolicy(awsarn.Partition, kmstest.Account) || aws.ToString(got.PolicyName) != "default" {
			t.Fatalf("GetKeyPolicy = %q / %q", aws.ToString(got.Policy), aws.ToString(got.PolicyName))
		}
		names, err := e.Client.ListKeyPolicies(ctx, &awskms.ListKeyPoliciesInput{KeyId: key.Arn})
		if err != nil || len(names.PolicyNames) != 1 || names.PolicyNames[0] != "default" || names.Truncated {
			t.Fatalf("ListKeyPolicies: %v %+v", err, names)
		}
		_, err = e.Client.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: key.KeyId, PolicyName: aws.String("other")})
		wantCode(t, err, "NotFoundException")
		_, err = e.mallory.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: key.KeyId})
		wantDenied(t, err, "")
	})

	t.Run("PutKeyPolicy takes effect with the next request", func(t *testing.T) {
		_, err := e.mallory.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: key.KeyId})
		wantDenied(t, err, "")
		pol := strings.Replace(kms.DefaultKeyPolicy(awsarn.Partition, kmstest.Account), "} ]", `}, {
    "Sid" : "Mallory may look",
    "Effect" : "Allow",
    "Principal" : { "AWS" : "`+malloryARN+`" },
    "Action" : "kms:DescribeKey",
    "Resource" : "*"
  } ]`, 1)
		if _, err := e.Client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: key.KeyId, Policy: aws.String(pol)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.mallory.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: key.KeyId}); err != nil {
			t.Fatal(err)
		}
		got, err := e.Client.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: key.KeyId, PolicyName: aws.String("default")})
		if err != nil || aws.ToString(got.Policy) != pol {
			t.Fatalf("GetKeyPolicy after PutKeyPolicy: %v", err)
		}
	})

	aliceOnly := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "` + aliceARN + `"}, "Action": "kms:*", "Resource": "*"}]}`
	const lockout = "The new key policy will not allow you to update the key policy in the future."

	t.Run("lockout safety check", func(t *testing.T) {
		_, err := e.keyadmin.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(aliceOnly)})
		wantCode(t, err, "MalformedPolicyDocumentException")
		if msg := errMessage(t, err); msg != lockout {
			t.Fatalf("message %q", msg)
		}
		// A policy that delegates to the account passes: IAM can grant
		// PutKeyPolicy.
		own, err := e.keyadmin.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(kms.DefaultKeyPolicy(awsarn.Partition, kmstest.Account))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.keyadmin.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: own.KeyMetadata.KeyId, Policy: aws.String(aliceOnly)})
		wantCode(t, err, "MalformedPolicyDocumentException")
		if _, err := e.keyadmin.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: own.KeyMetadata.KeyId, Policy: aws.String(aliceOnly),
			BypassPolicyLockoutSafetyCheck: true}); err != nil {
			t.Fatal(err)
		}
		// Locked out now: only alice may manage the key.
		_, err = e.keyadmin.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: own.KeyMetadata.KeyId})
		wantDenied(t, err, denial("arn:aws:iam::111122223333:user/keyadmin", "kms:GetKeyPolicy", aws.ToString(own.KeyMetadata.Arn), noResource("kms:GetKeyPolicy")))
		if _, err := e.alice.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: own.KeyMetadata.KeyId}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.keyadmin.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(aliceOnly), BypassPolicyLockoutSafetyCheck: true}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("malformed policies", func(t *testing.T) {
		for _, tc := range []struct{ policy, code, message string }{
			{`{"Version": "2012-10-17", "Statement": [{"Sid": "Admins", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}, "Action": "kms:*", "Resource": "*"}]}`,
				"MalformedPolicyDocumentException",
				`malformed policy document: Statement[0] (Sid "Admins"): Principal.AWS: invalid principal "arn:aws:iam::111122223333:user/*": a wildcard may only stand alone ("*"), never match part of a principal`},
			{`{"Version": "2012-02-01", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}}`,
				"MalformedPolicyDocumentException",
				`malformed policy document: Version: "2012-02-01" is not a policy language version (use "2012-10-17" or "2008-10-17")`},
			{`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}`, "MalformedPolicyDocumentException", "Principal"},
			{`not json`, "MalformedPolicyDocumentException", ""},
			{`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}` + strings.Repeat(" ", 32768),
				"LimitExceededException", ""},
		} {
			for _, put := range []bool{false, true} {
				var err error
				if put {
					_, err = e.Client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: key.KeyId, Policy: aws.String(tc.policy)})
				} else {
					_, err = e.Client.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(tc.policy)})
				}
				wantCode(t, err, tc.code)
				if msg := errMessage(t, err); tc.message != "" && !strings.Contains(msg, tc.message) {
					t.Errorf("put=%v: message %q does not contain %q", put, msg, tc.message)
				}
			}
		}
	})
}

// TestIAMAccessKeyAtRunTime: a principal declared after kmsd started and an
// access key created afterwards work without a restart.
func TestIAMAccessKeyAtRunTime(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	key := createKey(t, env.Client, "")
	cfg := kmstest.ParseIAM(t, `
accounts:
  - id: "111122223333"
    users:
      - name: newcomer
        policies:
          - document: {Version: 2012-10-17, Statement: [{Effect: Allow, Action: "kms:Encrypt", Resource: "*"}]}
`)
	env.SetIAM(t, cfg)
	c := env.UserClient(t, kmstest.Account, "newcomer")
	if _, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: []byte("x")})
	wantCode(t, err, "InvalidCiphertextException")
	// The built-in admin keeps full access.
	if _, err := env.Client.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
}
