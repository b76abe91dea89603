package server_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestGetKeyLastUsage: GetKeyLastUsage reports, for each key, the last
// successful cryptographic operation (each operation AWS tracks, by its
// name), with its time, request id and the eventID of its audit record;
// failed operations, dry runs and other operations do not count; the
// tracking start is the key's creation.
func TestGetKeyLastUsage(t *testing.T) {
	ctx := context.Background()
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	c := env.Client
	mk := func(spec types.KeySpec, usage types.KeyUsageType) *types.KeyMetadata {
		return newKey(t, c, spec, usage)
	}
	sym, sym2 := mk("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), mk("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
	sign, hmac := mk("ECC_NIST_P256", "SIGN_VERIFY"), mk("HMAC_256", "GENERATE_VERIFY_MAC")
	agree, kem := mk("ECC_NIST_P256", "KEY_AGREEMENT"), mk("ML_KEM_512", "ENCAPSULATE_DECAPSULATE")

	lastUsage := func(k *types.KeyMetadata) *awskms.GetKeyLastUsageOutput {
		t.Helper()
		out, err := c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: k.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.KeyId) != aws.ToString(k.KeyId) || !out.KeyCreationDate.Equal(*k.CreationDate) || !out.TrackingStartDate.Equal(*k.CreationDate) {
			t.Errorf("GetKeyLastUsage(%s) = %+v: want its key id, and its creation as the creation and tracking start dates", aws.ToString(k.KeyId), out)
		}
		return out
	}
	if u := lastUsage(sym).KeyLastUsage; u != nil {
		t.Fatalf("a new key's last usage: %+v", u)
	}

	ct, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: sym.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: sign.KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	mac, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: hmac.KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	encap, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: kem.KeyId, EncapsulationAlgorithm: "ML_KEM"})
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ecdh.P256().GenerateKey(rand.Reader)
	peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())

	// Each tracked operation, then the key's last usage: the operation,
	// the clock's time, the request's id and its audit record's eventID.
	for _, tc := range []struct {
		op   string
		keys []*types.KeyMetadata
		call func() (middleware.Metadata, error)
	}{
		{"Encrypt", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: sym.KeyId, Plaintext: []byte("x")})
			return meta(out, err)
		}},
		{"Decrypt", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
			return meta(out, err)
		}},
		{"ReEncrypt", []*types.KeyMetadata{sym, sym2}, func() (middleware.Metadata, error) {
			out, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, DestinationKeyId: sym2.KeyId})
			return meta(out, err)
		}},
		{"GenerateDataKey", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: sym.KeyId, KeySpec: "AES_256"})
			return meta(out, err)
		}},
		{"GenerateDataKeyWithoutPlaintext", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: sym.KeyId, KeySpec: "AES_128"})
			return meta(out, err)
		}},
		{"GenerateDataKeyPair", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.GenerateDataKeyPair(ctx, &awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: "ECC_NIST_P256"})
			return meta(out, err)
		}},
		{"GenerateDataKeyPairWithoutPlaintext", []*types.KeyMetadata{sym}, func() (middleware.Metadata, error) {
			out, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &awskms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: sym.KeyId, KeyPairSpec: "ECC_NIST_P256"})
			return meta(out, err)
		}},
		{"Sign", []*types.KeyMetadata{sign}, func() (middleware.Metadata, error) {
			out, err := c.Sign(ctx, &awskms.SignInput{KeyId: sign.KeyId, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
			return meta(out, err)
		}},
		{"Verify", []*types.KeyMetadata{sign}, func() (middleware.Metadata, error) {
			out, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: sign.KeyId, Message: []byte("m"), Signature: sig.Signature, SigningAlgorithm: "ECDSA_SHA_256"})
			return meta(out, err)
		}},
		{"GenerateMac", []*types.KeyMetadata{hmac}, func() (middleware.Metadata, error) {
			out, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: hmac.KeyId, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
			return meta(out, err)
		}},
		{"VerifyMac", []*types.KeyMetadata{hmac}, func() (middleware.Metadata, error) {
			out, err := c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: hmac.KeyId, Message: []byte("m"), Mac: mac.Mac, MacAlgorithm: "HMAC_SHA_256"})
			return meta(out, err)
		}},
		{"DeriveSharedSecret", []*types.KeyMetadata{agree}, func() (middleware.Metadata, error) {
			out, err := c.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: agree.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: peerDER})
			return meta(out, err)
		}},
		{"Encapsulate", []*types.KeyMetadata{kem}, func() (middleware.Metadata, error) {
			out, err := c.Encapsulate(ctx, &awskms.EncapsulateInput{KeyId: kem.KeyId, EncapsulationAlgorithm: "ML_KEM"})
			return meta(out, err)
		}},
		{"Decapsulate", []*types.KeyMetadata{kem}, func() (middleware.Metadata, error) {
			out, err := c.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: kem.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: encap.SharedSecretCiphertextBlob})
			return meta(out, err)
		}},
	} {
		env.Clock.Advance(time.Minute)
		md, err := tc.call()
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		reqID, _ := awsmiddleware.GetRequestIDMetadata(md)
		eventID := eventIDOf(t, a, reqID)
		for _, k := range tc.keys {
			u := lastUsage(k).KeyLastUsage
			if u == nil || string(u.Operation) != tc.op || !u.Timestamp.Equal(env.Clock.Now().Truncate(time.Millisecond)) ||
				aws.ToString(u.KmsRequestId) != reqID || aws.ToString(u.CloudTrailEventId) != eventID {
				t.Errorf("after %s: last usage of %s = %+v; want %s at %v, request %s, event %s",
					tc.op, aws.ToString(k.KeyId), u, tc.op, env.Clock.Now(), reqID, eventID)
			}
		}
	}

	// A dry run, a failed operation and an operation that is not
	// cryptography leave the last usage as it was.
	before := lastUsage(sym).KeyLastUsage
	env.Clock.Advance(time.Minute)
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: sym.KeyId, Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: map[string]string{"wrong": "context"}})
	wantCode(t, err, "InvalidCiphertextException")
	if _, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: sym.KeyId}); err != nil {
		t.Fatal(err)
	}
	if after := lastUsage(sym).KeyLastUsage; !after.Timestamp.Equal(*before.Timestamp) || after.Operation != before.Operation {
		t.Errorf("last usage after a dry run, a failure and DescribeKey: %+v, want %+v", after, before)
	}

	// It names a key of the caller's account by key id or key ARN only.
	if _, err := c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: sym.Arn}); err != nil {
		t.Errorf("by key ARN: %v", err)
	}
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/used"), TargetKeyId: sym.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: aws.String("alias/used")})
	wantCode(t, err, "NotFoundException")
	_, err = c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: aws.String("")})
	wantCode(t, err, "ValidationException")
}

// TestTrailingDaysWithoutKeyUsage: a key policy can refuse to disable or
// delete a key used recently (kms:TrailingDaysWithoutKeyUsage): days since
// its last use, or since tracking began when it was never used.
func TestTrailingDaysWithoutKeyUsage(t *testing.T) {
	ctx := context.Background()
	env := kmstest.Start(t)
	c := env.Client
	const policy = `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
	  {"Effect": "Deny", "Principal": "*", "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"], "Resource": "*",
	   "Condition": {"NumericLessThan": {"kms:TrailingDaysWithoutKeyUsage": "30"}}}]}`
	k, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(policy)})
	if err != nil {
		t.Fatal(err)
	}
	id := k.KeyMetadata.KeyId
	// Never used, but created just now.
	_, err = c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: id})
	wantCode(t, err, "AccessDeniedException")
	env.Clock.Advance(31 * 24 * time.Hour)
	if _, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(29 * 24 * time.Hour)
	_, err = c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: id})
	wantCode(t, err, "AccessDeniedException")
	env.Clock.Advance(24 * time.Hour)
	if _, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: id}); err != nil {
		t.Fatalf("DisableKey 30 days after the last use: %v", err)
	}
	if _, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: id}); err != nil {
		t.Fatalf("ScheduleKeyDeletion 30 days after the last use: %v", err)
	}
}

// meta returns the result metadata of an SDK output.
func meta[T any](out *T, err error) (middleware.Metadata, error) {
	if err != nil {
		return middleware.Metadata{}, err
	}
	return resultMetadata(out), nil
}

// eventIDOf returns the eventID of the audit record of request id.
func eventIDOf(t *testing.T, a *memAuditor, id string) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.records {
		if r.RequestID == id {
			return r.EventID
		}
	}
	t.Fatalf("no audit record of request %s", id)
	return ""
}

// resultMetadata returns the ResultMetadata member every SDK output has.
func resultMetadata(out any) middleware.Metadata {
	return reflect.ValueOf(out).Elem().FieldByName("ResultMetadata").Interface().(middleware.Metadata)
}
