package policy

import (
	"strings"
	"testing"
)

// TestTrustPolicy: a role's trust policy names principals, needs an
// Action, refuses Resource, and applies whatever the request's resource.
func TestTrustPolicy(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole", "Resource": "*"}]}`, "cannot have Resource"},
		{`{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole", "NotResource": "*"}]}`, "cannot have Resource"},
		{`{"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}`, "Principal is missing"},
		{`{"Statement": [{"Effect": "Allow", "Principal": "*"}]}`, "Action is missing"},
	} {
		if _, err := Parse([]byte(tc.doc), TrustPolicy); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}

	trust, err := Parse([]byte(`{"Version": "2012-10-17", "Statement": [
		{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": "sts:AssumeRole"},
		{"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole",
		 "Condition": {"StringLike": {"sts:RoleSessionName": "ci-*"}}}]}`), TrustPolicy)
	if err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::111122223333:role/app"
	for _, tc := range []struct {
		caller, action, session string
		want                    Decision
		direct                  bool
	}{
		{"arn:aws:iam::111122223333:user/alice", "sts:AssumeRole", "x", Allow, true},
		{"arn:aws:iam::111122223333:user/alice", "sts:TagSession", "x", NotApplicable, false},
		{"arn:aws:iam::111122223333:user/bob", "sts:AssumeRole", "x", NotApplicable, false},
		{"arn:aws:iam::444455556666:user/carol", "sts:AssumeRole", "ci-1", Allow, false},
		{"arn:aws:iam::444455556666:user/carol", "sts:AssumeRole", "dev-1", NotApplicable, false},
	} {
		p, err := NewPrincipal(tc.caller)
		if err != nil {
			t.Fatal(err)
		}
		ctx := NewContext(1)
		ctx.Set("sts:rolesessionname", tc.session)
		res := trust.EvaluateDetailed(&Request{Principal: p, Action: tc.action, Resource: role, Context: ctx})
		if res.Decision != tc.want || res.Direct != tc.direct {
			t.Errorf("%s %s %s: %v direct=%v, want %v direct=%v", tc.caller, tc.action, tc.session, res.Decision, res.Direct, tc.want, tc.direct)
		}
	}
}
