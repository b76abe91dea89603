package kms

import (
	"context"
	"testing"

	"github.com/kmsd/kmsd/internal/testalloc"
)

// TestAuthorizeEncryptAllocs holds the allocation budget of authorizing an
// Encrypt on a warm cache: the built-in admin through IAM delegation, so
// the default key policy and an identity policy are evaluated (policy
// evaluation itself allocates nothing: see internal/policy). Figure of
// Go 1.26; BenchmarkAuthorizeEncrypt measures the time.
func TestAuthorizeEncryptAllocs(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	caller := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/admin", SourceIP: "127.0.0.1",
		Identity: mustIdentity(t, IdentityConfig{ARN: "arn:aws:iam::111122223333:user/admin", Type: PrincipalTypeUser, UserName: "admin"}, allowAll)}
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	in := &EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: make([]byte, 32), EncryptionContext: map[string]string{"tenant": "t1"}}
	// 3 today: Rule.authorize's Caller parameter, moved to the heap because
	// the call's state points at it, that state (authzCall), and the key
	// request of the rule's key resolution (keyRequest).
	testalloc.Budget(t, "AuthorizeEncrypt.Check", 4, func() {
		if _, err := AuthorizeEncrypt.Check(ctx, s, caller, in); err != nil {
			t.Fatal(err)
		}
	})
}
