package policy

import (
	"fmt"
	"testing"
)

const (
	acctA   = "111122223333"
	acctB   = "444455556666"
	keyARN  = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	userARN = "arn:aws:iam::111122223333:user/alice"
)

func mustPrincipal(t testing.TB, arn string) Principal {
	t.Helper()
	p, err := NewPrincipal(arn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t testing.TB, doc string, kind Kind) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc), kind)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return p
}

// principalPolicy is a key policy allowing kms:* to the given Principal
// element.
func principalPolicy(t testing.TB, principal string) *Policy {
	return mustParse(t, `{"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Principal": `+principal+`, "Action": "kms:*", "Resource": "*"}]}`, ResourcePolicy)
}

func TestNewPrincipal(t *testing.T) {
	p := mustPrincipal(t, "arn:aws:sts::111122223333:assumed-role/Ops/alice@example.com")
	if p.Account != acctA || p.RoleARN != "arn:aws:iam::111122223333:role/Ops" || p.Type != PrincipalAWS {
		t.Errorf("session principal = %+v", p)
	}
	p = mustPrincipal(t, userARN)
	if p.Account != acctA || p.RoleARN != "" || p.IsAccountRoot() {
		t.Errorf("user principal = %+v", p)
	}
	if p := mustPrincipal(t, "arn:aws:iam::111122223333:root"); !p.IsAccountRoot() {
		t.Errorf("root not recognised: %+v", p)
	}
	for _, bad := range []string{"", "alice", "arn:aws:kms:us-east-1:111122223333:key/x", "arn:aws:iam::12:user/a", "arn:aws:sts::111122223333:assumed-role/Ops", "arn:aws:sts::111122223333:assumed-role/Ops/"} {
		if _, err := NewPrincipal(bad); err == nil {
			t.Errorf("NewPrincipal(%q) accepted", bad)
		}
	}
}

func TestPrincipalMatching(t *testing.T) {
	user := mustPrincipal(t, userARN)
	pathUser := mustPrincipal(t, "arn:aws:iam::111122223333:user/division/team/carol")
	root := mustPrincipal(t, "arn:aws:iam::111122223333:root")
	otherUser := mustPrincipal(t, "arn:aws:iam::444455556666:user/bob")
	session := mustPrincipal(t, "arn:aws:sts::111122223333:assumed-role/Ops/s1")
	pathSession := mustPrincipal(t, "arn:aws:sts::111122223333:assumed-role/Deploy/s1")
	pathSession.RoleARN = "arn:aws:iam::111122223333:role/ci/Deploy"
	fedUser := mustPrincipal(t, "arn:aws:sts::111122223333:federated-user/dana")
	service := Principal{Type: PrincipalService, ARN: "logs.us-east-1.amazonaws.com"}
	idp := Principal{Type: PrincipalFederated, ARN: "cognito-identity.amazonaws.com"}

	type want struct {
		p      Principal
		d      Decision
		direct bool
	}
	cases := []struct {
		name      string
		principal string
		checks    []want
	}{
		{"star", `"*"`, []want{{user, Allow, true}, {otherUser, Allow, true}, {service, Allow, true}, {Principal{}, Allow, true}}},
		{"AWS star", `{"AWS": "*"}`, []want{{user, Allow, true}, {otherUser, Allow, true}, {service, Allow, true}}},
		{"account root ARN", `{"AWS": "arn:aws:iam::111122223333:root"}`, []want{
			{user, Allow, false}, {session, Allow, false}, {fedUser, Allow, false}, {root, Allow, true}, {otherUser, NotApplicable, false}, {service, NotApplicable, false}}},
		{"bare account id", `{"AWS": "111122223333"}`, []want{{user, Allow, false}, {root, Allow, true}, {otherUser, NotApplicable, false}}},
		{"account in another partition", `{"AWS": "arn:aws-cn:iam::111122223333:root"}`, []want{{user, NotApplicable, false}}},
		{"user ARN", `{"AWS": "arn:aws:iam::111122223333:user/alice"}`, []want{{user, Allow, true}, {pathUser, NotApplicable, false}, {root, NotApplicable, false}, {session, NotApplicable, false}}},
		{"user ARN with path", `{"AWS": ["arn:aws:iam::111122223333:user/division/team/carol"]}`, []want{{pathUser, Allow, true}, {user, NotApplicable, false}}},
		{"role ARN matches its sessions", `{"AWS": "arn:aws:iam::111122223333:role/Ops"}`, []want{{session, Allow, true}, {pathSession, NotApplicable, false}, {user, NotApplicable, false}}},
		{"role ARN with path", `{"AWS": "arn:aws:iam::111122223333:role/ci/Deploy"}`, []want{{pathSession, Allow, true}, {session, NotApplicable, false}}},
		{"session ARN matches that session", `{"AWS": "arn:aws:sts::111122223333:assumed-role/Ops/s1"}`, []want{{session, Allow, true}}},
		{"session ARN not another session", `{"AWS": "arn:aws:sts::111122223333:assumed-role/Ops/s2"}`, []want{{session, NotApplicable, false}}},
		{"federated user", `{"AWS": "arn:aws:sts::111122223333:federated-user/dana"}`, []want{{fedUser, Allow, true}, {user, NotApplicable, false}}},
		{"several accounts", `{"AWS": ["111122223333", "444455556666"]}`, []want{{user, Allow, false}, {otherUser, Allow, false}}},
		{"service", `{"Service": ["logs.us-east-1.amazonaws.com"]}`, []want{{service, Allow, true}, {user, NotApplicable, false}, {Principal{Type: PrincipalService, ARN: "s3.amazonaws.com"}, NotApplicable, false}}},
		{"service does not match an AWS principal of the same name", `{"Service": "logs.us-east-1.amazonaws.com"}`, []want{{Principal{ARN: "logs.us-east-1.amazonaws.com"}, NotApplicable, false}}},
		{"federated provider", `{"Federated": "cognito-identity.amazonaws.com"}`, []want{{idp, Allow, true}, {service, NotApplicable, false}}},
		{"mixed types", `{"AWS": "arn:aws:iam::111122223333:user/alice", "Service": "logs.us-east-1.amazonaws.com"}`, []want{{user, Allow, true}, {service, Allow, true}, {otherUser, NotApplicable, false}}},
		{"direct and account together", `{"AWS": ["111122223333", "arn:aws:iam::111122223333:user/alice"]}`, []want{{user, Allow, true}, {pathUser, Allow, false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := principalPolicy(t, c.principal)
			for _, w := range c.checks {
				r := &Request{Principal: w.p, Action: "kms:Decrypt", Resource: keyARN}
				res := p.EvaluateDetailed(r)
				if res.Decision != w.d || res.Direct != w.direct || res.ViaAccount != (w.d == Allow && !w.direct) {
					t.Errorf("%+v: got %+v, want decision %v direct %v", w.p, res, w.d, w.direct)
				}
				if got := p.Evaluate(r); got != w.d {
					t.Errorf("%+v: Evaluate = %v, want %v", w.p, got, w.d)
				}
			}
		})
	}
}

func TestNotPrincipal(t *testing.T) {
	user := mustPrincipal(t, userARN)
	root := mustPrincipal(t, "arn:aws:iam::111122223333:root")
	bob := mustPrincipal(t, "arn:aws:iam::111122223333:user/bob")
	session := mustPrincipal(t, "arn:aws:sts::111122223333:assumed-role/Ops/s1")
	other := mustPrincipal(t, "arn:aws:iam::444455556666:user/alice")
	service := Principal{Type: PrincipalService, ARN: "logs.us-east-1.amazonaws.com"}
	denyAllBut := func(list string) *Policy {
		return mustParse(t, `{"Version": "2012-10-17", "Statement": [
			{"Sid": "DenyOthers", "Effect": "Deny", "NotPrincipal": {"AWS": `+list+`}, "Action": "kms:*", "Resource": "*"},
			{"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}]}`, ResourcePolicy)
	}
	cases := []struct {
		name string
		list string
		p    Principal
		want Decision
	}{
		{"listed user with account escapes", `["arn:aws:iam::111122223333:user/alice", "111122223333"]`, user, Allow},
		{"other user is denied", `["arn:aws:iam::111122223333:user/alice", "111122223333"]`, bob, Deny},
		{"root escapes with its account", `["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:root"]`, root, Allow},
		{"user listed without its account is denied", `["arn:aws:iam::111122223333:user/alice"]`, user, Deny},
		{"account alone does not exclude users", `["111122223333"]`, user, Deny},
		{"role and account exclude the session", `["arn:aws:iam::111122223333:role/Ops", "111122223333"]`, session, Allow},
		{"session ARN without role does not", `["arn:aws:sts::111122223333:assumed-role/Ops/s1", "111122223333"]`, session, Deny},
		{"role, session and account", `["arn:aws:iam::111122223333:role/Ops", "arn:aws:sts::111122223333:assumed-role/Ops/s1", "111122223333"]`, session, Allow},
		{"other account is denied", `["arn:aws:iam::111122223333:user/alice", "111122223333"]`, other, Deny},
		{"star excludes everyone", `"*"`, user, Allow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := denyAllBut(c.list).Evaluate(&Request{Principal: c.p, Action: "kms:Decrypt", Resource: keyARN}); got != c.want {
				t.Errorf("Evaluate = %v, want %v", got, c.want)
			}
		})
	}
	svc := mustParse(t, `{"Statement": {"Effect": "Deny", "NotPrincipal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "*", "Resource": "*"}}`, ResourcePolicy)
	if got := svc.Evaluate(&Request{Principal: service, Action: "kms:Encrypt", Resource: keyARN}); got != NotApplicable {
		t.Errorf("listed service: %v", got)
	}
	if got := svc.Evaluate(&Request{Principal: user, Action: "kms:Encrypt", Resource: keyARN}); got != Deny {
		t.Errorf("user under service NotPrincipal: %v", got)
	}
}

func TestActionsAndResources(t *testing.T) {
	cases := []struct {
		name     string
		stmt     string
		action   string
		resource string
		want     Decision
	}{
		{"exact action", `"Action": "kms:Encrypt", "Resource": "*"`, "kms:Encrypt", keyARN, Allow},
		{"action case-insensitive", `"Action": "KMS:encrypt", "Resource": "*"`, "kms:Encrypt", keyARN, Allow},
		{"request action case-insensitive", `"Action": "kms:Encrypt", "Resource": "*"`, "KMS:ENCRYPT", keyARN, Allow},
		{"other action", `"Action": "kms:Encrypt", "Resource": "*"`, "kms:Decrypt", keyARN, NotApplicable},
		{"action prefix wildcard", `"Action": "kms:GenerateDataKey*", "Resource": "*"`, "kms:GenerateDataKeyWithoutPlaintext", keyARN, Allow},
		{"action prefix wildcard exact", `"Action": "kms:GenerateDataKey*", "Resource": "*"`, "kms:GenerateDataKey", keyARN, Allow},
		{"action infix wildcard", `"Action": "kms:*Grant*", "Resource": "*"`, "kms:ListRetirableGrants", keyARN, Allow},
		{"action question mark", `"Action": "kms:?ncrypt", "Resource": "*"`, "kms:Encrypt", keyARN, Allow},
		{"action question mark mismatch", `"Action": "kms:?ncrypt", "Resource": "*"`, "kms:Decrypt", keyARN, NotApplicable},
		{"other service", `"Action": "kms:*", "Resource": "*"`, "s3:GetObject", keyARN, NotApplicable},
		{"any action", `"Action": "*", "Resource": "*"`, "s3:GetObject", keyARN, Allow},
		{"action list", `"Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"`, "kms:Decrypt", keyARN, Allow},
		{"NotAction other", `"NotAction": "kms:Decrypt", "Resource": "*"`, "kms:Encrypt", keyARN, Allow},
		{"NotAction listed", `"NotAction": ["kms:Decrypt", "kms:ReEncrypt*"], "Resource": "*"`, "kms:ReEncryptFrom", keyARN, NotApplicable},
		{"exact resource", `"Action": "*", "Resource": "` + keyARN + `"`, "kms:Encrypt", keyARN, Allow},
		{"resource case-sensitive", `"Action": "*", "Resource": "arn:aws:kms:us-east-1:111122223333:key/1234ABCD-12ab-34cd-56ef-1234567890ab"`, "kms:Encrypt", keyARN, NotApplicable},
		{"resource region wildcard", `"Action": "*", "Resource": "arn:aws:kms:*:111122223333:key/*"`, "kms:Encrypt", keyARN, Allow},
		{"resource other account", `"Action": "*", "Resource": "arn:aws:kms:*:444455556666:key/*"`, "kms:Encrypt", keyARN, NotApplicable},
		{"resource in-segment wildcard", `"Action": "*", "Resource": "arn:aws:kms:us-*-1:111122223333:key/*"`, "kms:Encrypt", keyARN, Allow},
		{"resource in-segment wildcard stays in segment", `"Action": "*", "Resource": "arn:aws:kms:us-*1:111122223333:key/*"`, "kms:Encrypt", "arn:aws:kms:us-east-2:1:111122223333:key/x", NotApplicable},
		{"resource segment-ending star crosses colons", `"Action": "*", "Resource": "arn:aws:kms:*"`, "kms:Encrypt", keyARN, Allow},
		{"resource question mark", `"Action": "*", "Resource": "arn:aws:kms:us-east-?:111122223333:key/*"`, "kms:Encrypt", keyARN, Allow},
		{"resource needs full match", `"Action": "*", "Resource": "arn:aws:kms:us-east-1:111122223333:key/1234"`, "kms:Encrypt", keyARN, NotApplicable},
		{"alias ARN", `"Action": "*", "Resource": "arn:aws:kms:us-east-1:111122223333:alias/prod-*"`, "kms:CreateAlias", "arn:aws:kms:us-east-1:111122223333:alias/prod-db", Allow},
		{"star request resource only matches star", `"Action": "*", "Resource": "arn:aws:kms:*:111122223333:*"`, "kms:CreateKey", "*", NotApplicable},
		{"star resource matches star request", `"Action": "*", "Resource": "*"`, "kms:CreateKey", "*", Allow},
		{"NotResource other", `"Action": "*", "NotResource": "arn:aws:kms:*:*:alias/*"`, "kms:Encrypt", keyARN, Allow},
		{"NotResource listed", `"Action": "*", "NotResource": ["arn:aws:kms:*:*:key/*"]`, "kms:Encrypt", keyARN, NotApplicable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustParse(t, `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", `+c.stmt+`}}`, IdentityPolicy)
			if got := p.Evaluate(&Request{Action: c.action, Resource: c.resource}); got != c.want {
				t.Errorf("Evaluate = %v, want %v", got, c.want)
			}
		})
	}
}

func TestResourceSegmentSearch(t *testing.T) {
	// Two stars, one free (it ends a segment) and one confined: the linear
	// matcher would give up; the search finds the match.
	p := mustParse(t, `{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:svc:r:*:a*b"}}`, IdentityPolicy)
	for res, want := range map[string]Decision{
		"arn:aws:svc:r:x:a1:a2b": Allow,         // first * takes "x:a1", second takes "2"
		"arn:aws:svc:r:x:a1:2b":  NotApplicable, // the second * cannot take ':'
		"arn:aws:svc:r:x:ab":     Allow,
		"arn:aws:svc:r:x:a:b":    NotApplicable,
	} {
		if got := p.Evaluate(&Request{Action: "svc:Do", Resource: res}); got != want {
			t.Errorf("%s: %v, want %v", res, got, want)
		}
	}
}

func TestEvaluationLogic(t *testing.T) {
	user := mustPrincipal(t, userARN)
	p := mustParse(t, `{
		"Version": "2012-10-17",
		"Id": "key-policy",
		"Statement": [
			{"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
			{"Sid": "Alice", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"}, "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
			{"Sid": "NoDeleteOverHTTP", "Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
			{"Sid": "NoAction", "Effect": "Allow", "Principal": "*", "Resource": "*"}
		]}`, ResourcePolicy)
	if p.Version() != Version2012 || p.ID() != "key-policy" || p.NumStatements() != 4 || p.Sid(2) != "NoDeleteOverHTTP" || p.Kind() != ResourcePolicy {
		t.Errorf("accessors: %q %q %d %q %v", p.Version(), p.ID(), p.NumStatements(), p.Sid(2), p.Kind())
	}

	ctx := NewContext(1)
	ctx.Set("aws:SecureTransport", "false")
	r := &Request{Principal: user, Action: "kms:Decrypt", Resource: keyARN, Context: ctx}
	res := p.EvaluateDetailed(r)
	if res.Decision != Allow || !res.Direct || !res.ViaAccount || res.Statement != 1 || res.Sid != "Alice" {
		t.Errorf("Decrypt: %+v", res)
	}
	ms := p.Matches(r)
	if len(ms) != 2 || ms[0] != (Match{0, "Root", Allow, true}) || ms[1] != (Match{1, "Alice", Allow, false}) {
		t.Errorf("Matches = %+v", ms)
	}

	r.Action = "kms:DescribeKey"
	res = p.EvaluateDetailed(r)
	if res.Decision != Allow || res.Direct || !res.ViaAccount || res.Statement != 0 {
		t.Errorf("DescribeKey: %+v", res)
	}

	r.Action = "kms:ScheduleKeyDeletion"
	res = p.EvaluateDetailed(r)
	if res.Decision != Deny || res.Statement != 2 || res.Sid != "NoDeleteOverHTTP" || res.Direct || res.ViaAccount {
		t.Errorf("explicit deny must win: %+v", res)
	}
	if p.Evaluate(r) != Deny {
		t.Error("Evaluate: explicit deny must win")
	}
	ctx.Set("aws:securetransport", "true")
	if got := p.Evaluate(r); got != Allow {
		t.Errorf("over TLS: %v", got)
	}

	// A statement without Action (or Resource) in a key policy never applies.
	other := mustPrincipal(t, "arn:aws:iam::444455556666:user/eve")
	if got := p.EvaluateDetailed(&Request{Principal: other, Action: "kms:Encrypt", Resource: keyARN}); got.Decision != NotApplicable || got.Statement != -1 {
		t.Errorf("inert statement applied: %+v", got)
	}
}

func TestCombine(t *testing.T) {
	cases := []struct {
		in   []Decision
		want Decision
	}{
		{nil, NotApplicable},
		{[]Decision{NotApplicable, NotApplicable}, NotApplicable},
		{[]Decision{NotApplicable, Allow}, Allow},
		{[]Decision{Allow, Deny, Allow}, Deny},
	}
	for _, c := range cases {
		if got := Combine(c.in...); got != c.want {
			t.Errorf("Combine(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	allow := mustParse(t, `{"Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}}`, IdentityPolicy)
	deny := mustParse(t, `{"Statement": {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}}`, IdentityPolicy)
	r := &Request{Action: "kms:Decrypt", Resource: keyARN}
	if got := EvaluateAll([]*Policy{allow, deny}, r); got != Deny {
		t.Errorf("EvaluateAll = %v", got)
	}
	r.Action = "kms:Encrypt"
	if got := EvaluateAll([]*Policy{allow, deny}, r); got != Allow {
		t.Errorf("EvaluateAll = %v", got)
	}
	if got := EvaluateAll(nil, r); got != NotApplicable {
		t.Errorf("EvaluateAll(nil) = %v", got)
	}
	if s := fmt.Sprint(Allow, Deny, NotApplicable); s != "Allow Deny NotApplicable" {
		t.Errorf("String: %s", s)
	}
}

func TestContext(t *testing.T) {
	var c Context // the zero Context is usable
	if c.Get("x") != nil || c.Len() != 0 {
		t.Fatal("zero Context not empty")
	}
	c.Set("AWS:UserName", "alice")
	c.Add("aws:TagKeys", "a")
	c.Add("AWS:tagkeys", "b")
	if got := c.Get("aws:username"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("Get = %q", got)
	}
	if got := c.Get("aws:TAGKEYS"); len(got) != 2 {
		t.Errorf("Add: %q", got)
	}
	c.Delete("Aws:UserName")
	if c.Len() != 1 {
		t.Errorf("Delete: %d keys", c.Len())
	}
}
