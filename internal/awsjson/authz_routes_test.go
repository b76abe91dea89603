package awsjson

import (
	"context"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/kms"
)

// adminIdentity is an identity whose identity policy allows everything (as
// kmsd's built-in admin user has).
func adminIdentity(tb testing.TB) *kms.Identity {
	tb.Helper()
	p, err := kms.CompileIdentityPolicy("all", `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}`)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := kms.NewIdentity(kms.IdentityConfig{ARN: "arn:aws:iam::111122223333:user/admin", Type: kms.PrincipalTypeUser,
		UserName: "admin", Policies: []*kms.IdentityPolicy{p}})
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// TestEveryRouteIsAuthorized fails when an operation is served without an
// authorization rule for its input: add the operation to kms.authzRules
// (one line for an operation on one key, see onKey).
func TestEveryRouteIsAuthorized(t *testing.T) {
	routes, _ := newRoutes(t)
	for name, r := range routes {
		if r.authorize == nil {
			t.Errorf("route %s has no authorizer", name)
		}
		if err := kms.CheckAuthorizationRule(name, r.NewInput()); err != nil {
			t.Error(err)
		}
	}
	for _, name := range []string{"GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies", "CreateGrant", "ListGrants",
		"ListRetirableGrants", "RetireGrant", "RevokeGrant"} {
		if routes[name] == nil {
			t.Errorf("no route for %s", name)
		}
	}
}

// TestRouteWithoutAuthorizerRefuses: a route that somehow lacks its
// authorizer never runs its operation.
func TestRouteWithoutAuthorizerRefuses(t *testing.T) {
	called := false
	r := op("Encrypt", DefaultBodyLimit, validateEncrypt, func(context.Context, kms.Caller, *kms.EncryptInput) (*kms.EncryptOutput, error) {
		called = true
		return &kms.EncryptOutput{}, nil
	}, nil)
	_, err := r.Serve(context.Background(), kms.Caller{}, []byte(`{"KeyId":"alias/a","Plaintext":"aGVsbG8="}`))
	if err == nil || called {
		t.Fatalf("Serve = %v, operation called: %v", err, called)
	}
}

// TestDeniedBeforeTheOperation: a caller without permission is refused
// after validation and before the operation runs.
func TestDeniedBeforeTheOperation(t *testing.T) {
	routes, admin := newRoutes(t)
	nobody := kms.Caller{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/nobody"}
	ctx := context.Background()
	_, err := routes["CreateKey"].Serve(ctx, nobody, []byte(`{}`))
	if awserr.CodeOf(err) != awserr.AccessDenied {
		t.Fatalf("CreateKey by nobody: %v", err)
	}
	// Validation comes first.
	_, err = routes["CreateKey"].Serve(ctx, nobody, []byte(`{"KeyUsage":"NOPE"}`))
	if awserr.CodeOf(err) != awserr.Validation {
		t.Fatalf("invalid CreateKey by nobody: %v", err)
	}
	out, err := routes["ListKeys"].Serve(ctx, admin, []byte(`{}`))
	if err != nil || string(out) != `{"Keys":[],"Truncated":false}` {
		t.Fatalf("ListKeys after the refused CreateKey: %s %v", out, err)
	}
}
