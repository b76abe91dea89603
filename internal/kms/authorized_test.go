package kms

import (
	"context"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestOperationRunsOnTheAuthorizedKey: an alias moved between authorization and
// the operation must not redirect the operation to a key the caller was
// never authorized for. Key B's policy denies the caller outright, so
// running on B would be a request that no policy allows.
func TestOperationRunsOnTheAuthorizedKey(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	const user = "arn:aws:iam::111122223333:user/dave"
	dave := Caller{Scope: testScope, ARN: user,
		Identity: mustIdentity(t, IdentityConfig{ARN: user, Type: PrincipalTypeUser, UserName: "dave"}, allowAll)}
	denyDave := `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
	  {"Effect": "Deny", "Principal": {"AWS": "` + user + `"}, "Action": "kms:*", "Resource": "*"}]}`
	a, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateKey(ctx, admin, &CreateKeyInput{Policy: &denyDave})
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := a.KeyMetadata.Arn, b.KeyMetadata.KeyId
	if err := s.CreateAlias(ctx, admin, &AliasInput{AliasName: "alias/x", TargetKeyId: keyA}); err != nil {
		t.Fatal(err)
	}
	moveTo := func(t *testing.T, keyID string) {
		t.Helper()
		if err := s.UpdateAlias(ctx, admin, &AliasInput{AliasName: "alias/x", TargetKeyId: keyID}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("Encrypt", func(t *testing.T) {
		in := &EncryptInput{KeyId: "alias/x", Plaintext: []byte("secret")}
		authorized, err := AuthorizeEncrypt.Check(ctx, s, dave, in)
		if err != nil {
			t.Fatal(err)
		}
		moveTo(t, keyB)
		defer moveTo(t, keyA)
		out, err := s.Encrypt(ctx, authorized, in)
		if err != nil {
			t.Fatal(err)
		}
		if out.KeyId != keyA {
			t.Fatalf("encrypted under %s, authorized for %s", out.KeyId, keyA)
		}
	})
	t.Run("ReEncrypt", func(t *testing.T) {
		blob, err := s.Encrypt(ctx, admin, &EncryptInput{KeyId: keyA, Plaintext: []byte("secret")})
		if err != nil {
			t.Fatal(err)
		}
		in := &ReEncryptInput{CiphertextBlob: blob.CiphertextBlob, SourceKeyId: "alias/x", DestinationKeyId: "alias/x"}
		authorized, err := AuthorizeReEncrypt.Check(ctx, s, dave, in)
		if err != nil {
			t.Fatal(err)
		}
		moveTo(t, keyB)
		defer moveTo(t, keyA)
		out, err := s.ReEncrypt(ctx, authorized, in)
		if err != nil {
			t.Fatal(err)
		}
		if out.SourceKeyId != keyA || out.KeyId != keyA {
			t.Fatalf("re-encrypted from %s to %s, authorized from and to %s", out.SourceKeyId, out.KeyId, keyA)
		}
	})

	// The alias operations act on the alias only while it still points at
	// the key it pointed at when they were authorized: dave may not move
	// or delete an alias of key B.
	c, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	keyC := c.KeyMetadata.KeyId
	update := &AliasInput{AliasName: "alias/x", TargetKeyId: keyC}
	del := &DeleteAliasInput{AliasName: "alias/x"}
	for _, tc := range []struct {
		op        string
		authorize func(Caller) (Caller, error)
		run       func(Caller) error
	}{
		{"UpdateAlias",
			func(c Caller) (Caller, error) { return AuthorizeUpdateAlias.Check(ctx, s, c, update) },
			func(c Caller) error { return s.UpdateAlias(ctx, c, update) }},
		{"DeleteAlias",
			func(c Caller) (Caller, error) { return AuthorizeDeleteAlias.Check(ctx, s, c, del) },
			func(c Caller) error { return s.DeleteAlias(ctx, c, del) }},
	} {
		t.Run(tc.op, func(t *testing.T) {
			authorized, err := tc.authorize(dave)
			if err != nil {
				t.Fatal(err)
			}
			moveTo(t, keyB)
			defer moveTo(t, keyA)
			if err := tc.run(authorized); awserr.CodeOf(err) != awserr.Conflict {
				t.Errorf("%s after the alias moved: %v, want %s", tc.op, err, awserr.Conflict)
			}
			if id, err := s.aliasTarget(ctx, testScope, "alias/x"); err != nil || id != keyB {
				t.Errorf("alias/x -> %q, %v; want %s", id, err, keyB)
			}
		})
	}
}
