package kms

import (
	"context"
	"testing"
)

// BenchmarkAuthorizeEncrypt measures the authorization of one Encrypt
// request on a warm cache: the built-in admin through IAM delegation (the
// default key policy and an allow-all identity policy), and a user named
// by a key policy with a condition on the encryption context.
func BenchmarkAuthorizeEncrypt(b *testing.B) {
	ctx := context.Background()
	s := newAuthzService(&testing.T{})
	adminCaller := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/admin", SourceIP: "127.0.0.1",
		Identity: mustIdentity(&testing.T{}, IdentityConfig{ARN: "arn:aws:iam::111122223333:user/admin", Type: PrincipalTypeUser, UserName: "admin"}, allowAll)}
	alice := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/alice", SourceIP: "127.0.0.1",
		Identity: mustIdentity(&testing.T{}, IdentityConfig{ARN: "arn:aws:iam::111122223333:user/alice", Type: PrincipalTypeUser, UserName: "alice"})}
	named := `{"Version": "2012-10-17", "Statement": [
	  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
	  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
	   "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t1"}}}]}`
	for _, bc := range []struct {
		name   string
		caller Caller
		policy *string
	}{{"admin-default-policy", adminCaller, nil}, {"named-user-condition", alice, &named}} {
		b.Run(bc.name, func(b *testing.B) {
			ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{Policy: bc.policy})
			if err != nil {
				b.Fatal(err)
			}
			in := &EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: make([]byte, 32), EncryptionContext: map[string]string{"tenant": "t1"}}
			if _, err := AuthorizeEncrypt.Check(ctx, s, bc.caller, in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := AuthorizeEncrypt.Check(ctx, s, bc.caller, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
