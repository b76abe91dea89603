package kms

import (
	"context"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestScopeSeparatesRegions: one Service serves the Region of each
// request's scope. A key, an alias or a ciphertext of one Region does not
// exist for a caller in another, and ARNs name the scope's partition and
// Region.
func TestScopeSeparatesRegions(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	paris := admin
	paris.Region = "eu-west-3"

	ck, err := s.CreateKey(ctx, paris, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	arn := ck.KeyMetadata.Arn
	if want := "arn:aws:kms:eu-west-3:111122223333:key/" + ck.KeyMetadata.KeyId; arn != want {
		t.Fatalf("key ARN %s, want %s", arn, want)
	}
	if err := s.CreateAlias(ctx, paris, &AliasInput{AliasName: "alias/paris", TargetKeyId: arn}); err != nil {
		t.Fatal(err)
	}
	enc, err := s.Encrypt(ctx, paris, &EncryptInput{KeyId: "alias/paris", Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if enc.KeyId != arn {
		t.Fatalf("encrypted under %s, want %s", enc.KeyId, arn)
	}

	for name, keyID := range map[string]string{"id": ck.KeyMetadata.KeyId, "ARN": arn, "alias": "alias/paris"} {
		if _, err := s.DescribeKey(ctx, admin, &KeyIdInput{KeyId: keyID}); awserr.CodeOf(err) != awserr.NotFound {
			t.Errorf("DescribeKey by %s from us-east-1: %v, want NotFoundException", name, err)
		}
	}
	_, err = s.Decrypt(ctx, admin, &DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if awserr.CodeOf(err) != awserr.AccessDenied || !strings.Contains(err.Error(), "does not exist in this region") {
		t.Errorf("Decrypt from us-east-1: %v, want AWS's AccessDeniedException", err)
	}
	if ks, err := s.ListKeys(ctx, admin, &ListInput{}); err != nil || len(ks.Keys) != 0 {
		t.Errorf("ListKeys in us-east-1: %+v, %v", ks, err)
	}
	as, err := s.ListAliases(ctx, paris, &ListAliasesInput{})
	if err != nil || len(as.Aliases) != 1 || as.Aliases[0].AliasArn != "arn:aws:kms:eu-west-3:111122223333:alias/paris" {
		t.Errorf("ListAliases in eu-west-3: %+v, %v", as, err)
	}
	// Another partition's ARN names nothing here.
	other := strings.Replace(arn, "arn:aws:", "arn:aws-cn:", 1)
	if _, err := s.DescribeKey(ctx, paris, &KeyIdInput{KeyId: other}); awserr.CodeOf(err) != awserr.NotFound {
		t.Errorf("DescribeKey %s: %v, want NotFoundException", other, err)
	}

	// Nothing is created in an incomplete scope.
	noRegion := admin
	noRegion.Region = ""
	if _, err := s.CreateKey(ctx, noRegion, &CreateKeyInput{}); err == nil || awserr.CodeOf(err) != "" {
		t.Errorf("CreateKey without a Region: %v, want an internal error", err)
	}

	// aws:RequestedRegion is the scope's Region.
	doc := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*",
	  "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-3"}}}]}`
	id := mustIdentity(t, IdentityConfig{ARN: admin.ARN, Type: PrincipalTypeUser, UserName: "admin"}, doc)
	for _, c := range []struct {
		caller  Caller
		allowed bool
	}{{paris, true}, {admin, false}} {
		c.caller.Identity = id
		_, err := AuthorizeListKeys.Check(ctx, s, c.caller, &ListInput{})
		if allowed := err == nil; allowed != c.allowed {
			t.Errorf("ListKeys in %s under aws:RequestedRegion eu-west-3: %v", c.caller.Region, err)
		}
	}
}
