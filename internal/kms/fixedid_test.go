package kms

import (
	"context"
	"errors"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestFixedKeyID: CreateKey in a WithFixedKeyID context gives the key
// that id; a taken id is AlreadyExistsException, an id that is not a
// lowercase UUID (or a multi-Region key) ValidationException; without it
// ids are random.
func TestFixedKeyID(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	const id = "0123abcd-12ab-44cd-86ef-1234567890ab"
	ck, err := s.CreateKey(WithFixedKeyID(ctx, id), admin, &CreateKeyInput{})
	if err != nil || ck.KeyMetadata.KeyId != id {
		t.Fatalf("CreateKey with a fixed id = %+v, %v", ck, err)
	}
	if _, err := s.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id}); err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	for _, tc := range []struct {
		name string
		id   string
		in   CreateKeyInput
		code string
	}{
		{"taken", id, CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: UsageGenerateVerifyMac}, awserr.AlreadyExists},
		{"upper case", "0123ABCD-12ab-44cd-86ef-1234567890ab", CreateKeyInput{}, awserr.Validation},
		{"not a UUID", "alias/x", CreateKeyInput{}, awserr.Validation},
		{"multi-Region", "1123abcd-12ab-44cd-86ef-1234567890ab", CreateKeyInput{MultiRegion: true}, awserr.Validation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateKey(WithFixedKeyID(ctx, tc.id), admin, &tc.in)
			if !errors.Is(err, awserr.New(tc.code, "")) {
				t.Fatalf("CreateKey = %v, want %s", err, tc.code)
			}
		})
	}
	// The key with the taken id is unchanged.
	if d, err := s.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id}); err != nil || d.KeyMetadata.KeySpec != SpecSymmetricDefault {
		t.Fatalf("DescribeKey after the refusals = %+v, %v", d, err)
	}
	other, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil || other.KeyMetadata.KeyId == id {
		t.Fatalf("CreateKey without a fixed id = %+v, %v", other, err)
	}
}
