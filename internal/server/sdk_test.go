package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// errCode returns the AWS error code of err, failing the test when err is nil.
func errCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got success")
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v is not an AWS API error", err)
	}
	return ae.ErrorCode()
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errCode(t, err); got != code {
		t.Fatalf("error code = %s (%v), want %s", got, err, code)
	}
}

func createKey(t *testing.T, c *awskms.Client, desc string) *types.KeyMetadata {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{Description: aws.String(desc)})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata
}

func TestCreateDescribeListKeys(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client

	out, err := c.CreateKey(ctx, &awskms.CreateKeyInput{
		Description: aws.String("first"),
		Tags:        []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("payments")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	md := out.KeyMetadata
	if md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt ||
		md.KeyState != types.KeyStateEnabled || !md.Enabled || md.Origin != types.OriginTypeAwsKms ||
		md.KeyManager != types.KeyManagerTypeCustomer || aws.ToString(md.AWSAccountId) != kmstest.Account ||
		aws.ToString(md.Description) != "first" || md.MultiRegion == nil || *md.MultiRegion {
		t.Fatalf("unexpected metadata %+v", md)
	}
	wantARN := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", kmstest.Region, kmstest.Account, aws.ToString(md.KeyId))
	if aws.ToString(md.Arn) != wantARN {
		t.Fatalf("Arn = %s, want %s", aws.ToString(md.Arn), wantARN)
	}
	if len(md.EncryptionAlgorithms) != 1 || md.EncryptionAlgorithms[0] != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("EncryptionAlgorithms = %v", md.EncryptionAlgorithms)
	}
	if md.CreationDate == nil || time.Since(*md.CreationDate) > time.Minute {
		t.Fatalf("CreationDate = %v", md.CreationDate)
	}
	if len(aws.ToString(md.CurrentKeyMaterialId)) != 64 {
		t.Fatalf("CurrentKeyMaterialId = %q", aws.ToString(md.CurrentKeyMaterialId))
	}

	// DescribeKey by id, ARN, alias name and alias ARN.
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/first"), TargetKeyId: md.KeyId}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{*md.KeyId, wantARN, "alias/first", fmt.Sprintf("arn:aws:kms:%s:%s:alias/first", kmstest.Region, kmstest.Account)} {
		d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatalf("DescribeKey(%s): %v", id, err)
		}
		if aws.ToString(d.KeyMetadata.KeyId) != *md.KeyId {
			t.Fatalf("DescribeKey(%s) = %s", id, aws.ToString(d.KeyMetadata.KeyId))
		}
	}

	// ListKeys pages through every key exactly once.
	want := map[string]bool{*md.KeyId: true}
	for i := 0; i < 6; i++ {
		want[*createKey(t, c, "more").KeyId] = true
	}
	got := map[string]bool{}
	var marker *string
	pages := 0
	for {
		l, err := c.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(3), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range l.Keys {
			if got[*k.KeyId] {
				t.Fatalf("key %s listed twice", *k.KeyId)
			}
			got[*k.KeyId] = true
			if !strings.HasSuffix(*k.KeyArn, *k.KeyId) {
				t.Fatalf("KeyArn %s does not end with %s", *k.KeyArn, *k.KeyId)
			}
		}
		if !l.Truncated {
			if l.NextMarker != nil {
				t.Fatal("NextMarker present on the last page")
			}
			break
		}
		marker = l.NextMarker
	}
	if len(got) != len(want) || pages != 3 {
		t.Fatalf("listed %d keys in %d pages, want %d in 3", len(got), pages, len(want))
	}
	_, err = c.ListKeys(ctx, &awskms.ListKeysInput{Marker: aws.String("garbage")})
	wantCode(t, err, "InvalidMarkerException")
	_, err = c.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(0)})
	wantCode(t, err, "ValidationException")
}

func TestKeyIdentifierErrors(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "")
	missing := "11111111-2222-3333-4444-555555555555"
	cases := []struct {
		id   string
		code string
	}{
		{missing, "NotFoundException"},
		{"arn:aws:kms:us-east-1:111122223333:key/" + missing, "NotFoundException"},
		{"alias/nope", "NotFoundException"},
		{"not-a-key", "NotFoundException"},
		{"arn:aws:kms:us-west-2:111122223333:key/" + *md.KeyId, "NotFoundException"},
		{"arn:aws:kms:us-east-1:444455556666:key/" + *md.KeyId, "NotFoundException"},
		{"arn:aws:s3:::bucket", "InvalidArnException"},
		{"", "ValidationException"},
		{strings.Repeat("a", 2049), "ValidationException"},
	}
	for _, tc := range cases {
		_, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(tc.id)})
		if got := errCode(t, err); got != tc.code {
			t.Errorf("DescribeKey(%.40q) = %s (%v), want %s", tc.id, got, err, tc.code)
		}
	}
	// Operations that take only a key id or key ARN refuse aliases.
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/k"), TargetKeyId: md.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String("alias/k")})
	wantCode(t, err, "NotFoundException")
}

func TestEncryptDecrypt(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "")
	other := createKey(t, c, "")
	ec := map[string]string{"tenant": "t1", "purpose": "test"}

	for _, n := range []int{1, 100, 4096} {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: pt, EncryptionContext: ec})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(enc.KeyId) != aws.ToString(md.Arn) || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
			t.Fatalf("Encrypt response %+v", enc)
		}
		if n >= 16 && bytes.Contains(enc.CiphertextBlob, pt) {
			t.Fatal("ciphertext contains the plaintext")
		}
		dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"purpose": "test", "tenant": "t1"}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dec.Plaintext, pt) || aws.ToString(dec.KeyId) != aws.ToString(md.Arn) ||
			aws.ToString(dec.KeyMaterialId) != aws.ToString(md.CurrentKeyMaterialId) {
			t.Fatalf("Decrypt response %+v", dec)
		}
	}

	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.Arn, Plaintext: []byte("secret"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	// KeyId may name the key in any form; another key is IncorrectKeyException.
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/enc"), TargetKeyId: md.KeyId}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{*md.KeyId, *md.Arn, "alias/enc"} {
		if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(id)}); err != nil {
			t.Fatalf("Decrypt with KeyId %s: %v", id, err)
		}
	}
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: other.KeyId})
	wantCode(t, err, "IncorrectKeyException")

	// Wrong or missing encryption context, and any flipped bit.
	for _, bad := range []map[string]string{nil, {"tenant": "t1"}, {"tenant": "t2", "purpose": "test"}, {"Tenant": "t1", "purpose": "test"}} {
		_, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: bad})
		wantCode(t, err, "InvalidCiphertextException")
	}
	for i := 0; i < len(enc.CiphertextBlob)*8; i += 7 {
		blob := bytes.Clone(enc.CiphertextBlob)
		blob[i/8] ^= 1 << (i % 8)
		_, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec})
		// A flipped bit in the key id names a key that does not exist.
		if code := errCode(t, err); code != "InvalidCiphertextException" && code != "AccessDeniedException" {
			t.Fatalf("bit %d flipped: %s", i, code)
		}
	}
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: []byte("garbage")})
	wantCode(t, err, "InvalidCiphertextException")

	// Size limits.
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: make([]byte, 4097)})
	wantCode(t, err, "ValidationException")
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	wantCode(t, err, "InvalidKeyUsageException")
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), EncryptionAlgorithm: "NOPE"})
	wantCode(t, err, "ValidationException")

	// Dry runs succeed with DryRunOperationException.
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.KeyId, DryRun: aws.Bool(true), DryRunModifiers: []types.DryRunModifierType{types.DryRunModifierTypeIgnoreCiphertext}})
	wantCode(t, err, "DryRunOperationException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.KeyId})
	wantCode(t, err, "ValidationException")
}

func TestReEncrypt(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	a, b := createKey(t, c, "a"), createKey(t, c, "b")
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: a.KeyId, Plaintext: []byte("move me"), EncryptionContext: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	re, err := c.ReEncrypt(ctx, &awskms.ReEncryptInput{
		CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: map[string]string{"k": "v"},
		DestinationKeyId: b.KeyId, DestinationEncryptionContext: map[string]string{"new": "ctx"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(re.SourceKeyId) != *a.Arn || aws.ToString(re.KeyId) != *b.Arn ||
		aws.ToString(re.SourceKeyMaterialId) != *a.CurrentKeyMaterialId || aws.ToString(re.DestinationKeyMaterialId) != *b.CurrentKeyMaterialId ||
		re.SourceEncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("ReEncrypt response %+v", re)
	}
	dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"new": "ctx"}})
	if err != nil || string(dec.Plaintext) != "move me" || aws.ToString(dec.KeyId) != *b.Arn {
		t.Fatalf("Decrypt after ReEncrypt: %v %+v", err, dec)
	}
	_, err = c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: b.KeyId})
	wantCode(t, err, "InvalidCiphertextException")
	_, err = c.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: map[string]string{"k": "v"}, SourceKeyId: b.KeyId, DestinationKeyId: b.KeyId})
	wantCode(t, err, "IncorrectKeyException")
}

func TestGenerateDataKey(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "")
	ec := map[string]string{"file": "a.txt"}
	for _, tc := range []struct {
		in   awskms.GenerateDataKeyInput
		size int
	}{
		{awskms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes256}, 32},
		{awskms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes128}, 16},
		{awskms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1)}, 1},
		{awskms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1024)}, 1024},
	} {
		in := tc.in
		in.KeyId = md.KeyId
		in.EncryptionContext = ec
		out, err := c.GenerateDataKey(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Plaintext) != tc.size || aws.ToString(out.KeyId) != *md.Arn || aws.ToString(out.KeyMaterialId) != *md.CurrentKeyMaterialId {
			t.Fatalf("GenerateDataKey response: %d bytes, %+v", len(out.Plaintext), out)
		}
		dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ec})
		if err != nil || !bytes.Equal(dec.Plaintext, out.Plaintext) {
			t.Fatalf("Decrypt of data key: %v", err)
		}
	}
	wo, err := c.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: wo.CiphertextBlob})
	if err != nil || len(dec.Plaintext) != 32 {
		t.Fatalf("Decrypt of data key without plaintext: %v", err)
	}
	for _, in := range []awskms.GenerateDataKeyInput{
		{KeyId: md.KeyId},
		{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)},
		{KeyId: md.KeyId, NumberOfBytes: aws.Int32(0)},
		{KeyId: md.KeyId, NumberOfBytes: aws.Int32(1025)},
		{KeyId: md.KeyId, KeySpec: "AES_512"},
	} {
		_, err := c.GenerateDataKey(ctx, &in)
		wantCode(t, err, "ValidationException")
	}

	r, err := c.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(64)})
	if err != nil || len(r.Plaintext) != 64 {
		t.Fatalf("GenerateRandom: %v", err)
	}
	for _, n := range []int32{0, 1025} {
		_, err := c.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(n)})
		wantCode(t, err, "ValidationException")
	}
}

func TestKeyStates(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "")
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: md.KeyId}); err != nil {
		t.Fatal(err)
	}
	d, _ := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
	if d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.Enabled {
		t.Fatalf("after DisableKey: %+v", d.KeyMetadata)
	}
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
	wantCode(t, err, "DisabledException")
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "DisabledException")
	_, err = c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: md.KeyId, KeySpec: types.DataKeySpecAes256})
	wantCode(t, err, "DisabledException")
	if _, err := c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: md.Arn}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKeyDescription(ctx, &awskms.UpdateKeyDescriptionInput{KeyId: md.KeyId, Description: aws.String("new")}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
	if aws.ToString(d.KeyMetadata.Description) != "new" {
		t.Fatalf("description = %q", aws.ToString(d.KeyMetadata.Description))
	}

	// Scheduling deletion: 7–30 days, default 30.
	for _, days := range []int32{6, 31, 0} {
		_, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(days)})
		wantCode(t, err, "ValidationException")
	}
	s, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: md.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(s.PendingWindowInDays) != 30 || s.KeyState != types.KeyStatePendingDeletion || aws.ToString(s.KeyId) != *md.Arn {
		t.Fatalf("ScheduleKeyDeletion response %+v", s)
	}
	if want := env.Clock.Now().Add(30 * 24 * time.Hour); s.DeletionDate.Sub(want).Abs() > time.Second {
		t.Fatalf("DeletionDate = %v, want %v", s.DeletionDate, want)
	}
	d, _ = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
	if d.KeyMetadata.KeyState != types.KeyStatePendingDeletion || d.KeyMetadata.DeletionDate == nil {
		t.Fatalf("after ScheduleKeyDeletion: %+v", d.KeyMetadata)
	}
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: md.KeyId})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: md.KeyId})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("b")}}})
	wantCode(t, err, "KMSInvalidStateException")

	cancel, err := c.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: md.KeyId})
	if err != nil || aws.ToString(cancel.KeyId) != *md.Arn {
		t.Fatalf("CancelKeyDeletion: %v", err)
	}
	d, _ = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
	if d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.DeletionDate != nil {
		t.Fatalf("after CancelKeyDeletion: %+v", d.KeyMetadata)
	}
	_, err = c.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: md.KeyId})
	wantCode(t, err, "KMSInvalidStateException")

	// The reaper deletes the key once the waiting period has passed, and
	// not a moment before.
	if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/doomed"), TargetKeyId: md.KeyId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(7*24*time.Hour - time.Minute)
	if n, err := env.Service.ReapDeletedKeys(ctx); err != nil || n != 0 {
		t.Fatalf("reaped %d keys early (%v)", n, err)
	}
	env.Clock.Advance(2 * time.Minute)
	if n, err := env.Service.ReapDeletedKeys(ctx); err != nil || n != 1 {
		t.Fatalf("reaped %d keys, want 1 (%v)", n, err)
	}
	_, err = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
	wantCode(t, err, "NotFoundException")
	// A ciphertext of a deleted key: AWS's AccessDeniedException.
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")
	_, err = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/doomed")})
	wantCode(t, err, "NotFoundException")
}

func TestAliases(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	a, b := createKey(t, c, "a"), createKey(t, c, "b")
	for _, name := range []string{"alias/app", "alias/app/db", "alias/x_y-z"} {
		if _, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: a.Arn}); err != nil {
			t.Fatalf("CreateAlias(%s): %v", name, err)
		}
	}
	_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: b.KeyId})
	wantCode(t, err, "AlreadyExistsException")
	// AWS's codes: a name without the alias/ prefix is a validation
	// error; the reserved prefix alias/aws/ is NotAuthorizedException.
	for name, code := range map[string]string{
		"app":                               "ValidationException",
		"aliases/app":                       "ValidationException",
		"alias/":                            "ValidationException",
		"alias/aws/s3":                      "NotAuthorizedException",
		"alias/aws/mine":                    "NotAuthorizedException",
		"alias/a:b":                         "InvalidAliasNameException",
		"alias/bad!":                        "ValidationException",
		"alias/" + strings.Repeat("a", 251): "ValidationException",
	} {
		_, err := c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: a.KeyId})
		if got := errCode(t, err); got != code {
			t.Errorf("CreateAlias(%q) = %s, want %s", name, got, code)
		}
	}
	_, err = c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/aws/s3"), TargetKeyId: a.KeyId})
	wantCode(t, err, "NotAuthorizedException")
	_, err = c.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/aws/s3")})
	wantCode(t, err, "NotAuthorizedException")
	_, err = c.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("app")})
	wantCode(t, err, "ValidationException")
	if as, err := c.ListAliases(ctx, &awskms.ListAliasesInput{}); err != nil || len(as.Aliases) != 3 {
		t.Fatalf("aliases after the refused names: %+v, %v", as, err)
	}
	_, err = c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/z"), TargetKeyId: aws.String("alias/app")})
	wantCode(t, err, "NotFoundException")
	_, err = c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/z"), TargetKeyId: aws.String("11111111-2222-3333-4444-555555555555")})
	wantCode(t, err, "NotFoundException")

	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("x")})
	if err != nil || aws.ToString(enc.KeyId) != *a.Arn {
		t.Fatalf("Encrypt via alias: %v", err)
	}
	if _, err := c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: b.KeyId}); err != nil {
		t.Fatal(err)
	}
	enc, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("x")})
	if err != nil || aws.ToString(enc.KeyId) != *b.Arn {
		t.Fatalf("Encrypt via updated alias: %v", err)
	}
	_, err = c.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/none"), TargetKeyId: b.KeyId})
	wantCode(t, err, "NotFoundException")

	all, err := c.ListAliases(ctx, &awskms.ListAliasesInput{})
	if err != nil || len(all.Aliases) != 3 || all.Truncated {
		t.Fatalf("ListAliases: %v %+v", err, all)
	}
	first := all.Aliases[0]
	if aws.ToString(first.AliasName) != "alias/app" || aws.ToString(first.TargetKeyId) != *b.KeyId ||
		aws.ToString(first.AliasArn) != "arn:aws:kms:us-east-1:111122223333:alias/app" || first.CreationDate == nil || first.LastUpdatedDate == nil {
		t.Fatalf("alias entry %+v", first)
	}
	ofA, err := c.ListAliases(ctx, &awskms.ListAliasesInput{KeyId: a.KeyId})
	if err != nil || len(ofA.Aliases) != 2 {
		t.Fatalf("ListAliases(KeyId=a): %v %d", err, len(ofA.Aliases))
	}
	p1, err := c.ListAliases(ctx, &awskms.ListAliasesInput{Limit: aws.Int32(2)})
	if err != nil || len(p1.Aliases) != 2 || !p1.Truncated {
		t.Fatalf("ListAliases page 1: %v %+v", err, p1)
	}
	p2, err := c.ListAliases(ctx, &awskms.ListAliasesInput{Limit: aws.Int32(2), Marker: p1.NextMarker})
	if err != nil || len(p2.Aliases) != 1 || p2.Truncated || aws.ToString(p2.Aliases[0].AliasName) != "alias/x_y-z" {
		t.Fatalf("ListAliases page 2: %v %+v", err, p2)
	}

	if _, err := c.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/app")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/app")})
	wantCode(t, err, "NotFoundException")
	_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
}

func TestTags(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createKey(t, c, "")
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	if _, err := c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: []types.Tag{tag("b", "1"), tag("a", "2"), tag("c", "")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.Arn, Tags: []types.Tag{tag("b", "changed")}}); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: md.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range l.Tags {
		got = append(got, *tg.TagKey+"="+*tg.TagValue)
	}
	if strings.Join(got, ",") != "a=2,b=changed,c=" || l.Truncated {
		t.Fatalf("tags = %v", got)
	}
	p1, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: md.KeyId, Limit: aws.Int32(2)})
	if err != nil || len(p1.Tags) != 2 || !p1.Truncated {
		t.Fatalf("page 1: %v %+v", err, p1)
	}
	p2, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: md.KeyId, Limit: aws.Int32(2), Marker: p1.NextMarker})
	if err != nil || len(p2.Tags) != 1 || *p2.Tags[0].TagKey != "c" {
		t.Fatalf("page 2: %v %+v", err, p2)
	}
	if _, err := c.UntagResource(ctx, &awskms.UntagResourceInput{KeyId: md.KeyId, TagKeys: []string{"a", "missing"}}); err != nil {
		t.Fatal(err)
	}
	l, _ = c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: md.KeyId})
	if len(l.Tags) != 2 {
		t.Fatalf("after untag: %d tags", len(l.Tags))
	}
	tagsNow := func() string {
		t.Helper()
		l, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range l.Tags {
			got = append(got, *tg.TagKey+"="+*tg.TagValue)
		}
		return strings.Join(got, ",")
	}
	// A tag key beginning with aws:, in any letter case, is TagException,
	// and no tag of the request is applied.
	for _, reserved := range []string{"aws:reserved", "AWS:Name", "Aws:x", "aWs:"} {
		_, err = c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: []types.Tag{tag("ok", "1"), tag(reserved, "x")}})
		wantCode(t, err, "TagException")
		_, err = c.UntagResource(ctx, &awskms.UntagResourceInput{KeyId: md.KeyId, TagKeys: []string{reserved}})
		wantCode(t, err, "TagException")
	}
	if got := tagsNow(); got != "b=changed,c=" {
		t.Fatalf("tags after the refused requests: %s", got)
	}
	_, err = c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: []types.Tag{tag(strings.Repeat("k", 129), "x")}})
	wantCode(t, err, "ValidationException")
	// AWS's tag quota, 50 per key, is LimitExceededException (a quota,
	// as the API reference says); the key keeps its tags.
	many := make([]types.Tag, 51)
	for i := range many {
		many[i] = tag(fmt.Sprintf("k%02d", i), "v")
	}
	_, err = c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: many})
	wantCode(t, err, "LimitExceededException")
	if _, err := c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: many[:48]}); err != nil {
		t.Fatalf("tagging up to 50 tags: %v", err)
	}
	_, err = c.TagResource(ctx, &awskms.TagResourceInput{KeyId: md.KeyId, Tags: many[48:49]})
	wantCode(t, err, "LimitExceededException")
	if got := tagsNow(); strings.Count(got, "=") != 50 || strings.Contains(got, "k48") {
		t.Fatalf("tags after the 51st was refused: %s", got)
	}
	// CreateKey with a reserved tag key or too many tags creates nothing.
	before, err := c.ListKeys(ctx, &awskms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{Tags: []types.Tag{tag("AWS:x", "y")}})
	wantCode(t, err, "TagException")
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{Tags: many})
	wantCode(t, err, "LimitExceededException")
	if after, err := c.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil || len(after.Keys) != len(before.Keys) {
		t.Fatalf("keys after the refused CreateKey: %d, want %d (%v)", len(after.Keys), len(before.Keys), err)
	}
}

func TestCreateKeyOptions(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	if _, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Policy: aws.String(policy), KeySpec: types.KeySpecSymmetricDefault, KeyUsage: types.KeyUsageTypeEncryptDecrypt}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   awskms.CreateKeyInput
		code string
	}{
		{awskms.CreateKeyInput{Policy: aws.String("not json")}, "MalformedPolicyDocumentException"},
		{awskms.CreateKeyInput{KeySpec: "BOGUS"}, "ValidationException"},
		{awskms.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify}, "ValidationException"},
		{awskms.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault}, "ValidationException"},
		// A multi-Region key cannot live in a custom key store.
		{awskms.CreateKeyInput{MultiRegion: aws.Bool(true), Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String("cks-1234567890abcdef0")}, "UnsupportedOperationException"},
		{awskms.CreateKeyInput{Description: aws.String(strings.Repeat("d", 8193))}, "ValidationException"},
		{awskms.CreateKeyInput{CustomKeyStoreId: aws.String("cks-1234567890abcdef0")}, "CustomKeyStoreNotFoundException"},
	} {
		_, err := c.CreateKey(ctx, &tc.in)
		if got := errCode(t, err); got != tc.code {
			t.Errorf("CreateKey(%+v) = %s (%v), want %s", tc.in, got, err, tc.code)
		}
	}
}

func TestAuthentication(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	_, err := env.NewClient("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").ListKeys(ctx, &awskms.ListKeysInput{})
	wantCode(t, err, "UnrecognizedClientException")
	_, err = env.NewClient(env.AccessKeyID, env.Secret+"x").ListKeys(ctx, &awskms.ListKeysInput{})
	wantCode(t, err, "InvalidSignatureException")
}
