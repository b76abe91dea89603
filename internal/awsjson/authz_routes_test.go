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

// TestRouteWithoutAuthorizerRefuses: an operation that somehow lacks its
// authorization rule never runs.
func TestRouteWithoutAuthorizerRefuses(t *testing.T) {
	called := false
	o := op(opSpec[kms.EncryptInput, *kms.EncryptOutput]{Name: "Encrypt", Limit: DefaultBodyLimit, Validate: validateEncrypt,
		Call: func(*kms.Service, context.Context, kms.Caller, *kms.EncryptInput) (*kms.EncryptOutput, error) {
			called = true
			return &kms.EncryptOutput{}, nil
		}})
	r := &Route{Name: o.name, BodyLimit: o.limit, op: o}
	_, err := r.Serve(context.Background(), kms.Caller{}, []byte(`{"KeyId":"alias/a","Plaintext":"aGVsbG8="}`))
	if err == nil || called {
		t.Fatalf("Serve = %v, operation called: %v", err, called)
	}
}

// TestDeniedBeforeTheOperation: a caller without permission is refused
// after validation and before the operation runs.
func TestDeniedBeforeTheOperation(t *testing.T) {
	routes, admin := newRoutes(t)
	nobody := kms.Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/nobody"}
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
