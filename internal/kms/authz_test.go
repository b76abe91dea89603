package kms

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/policy"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

var authzNow = time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)

// newAuthzService builds a Service with a fixed clock.
func newAuthzService(t *testing.T) *Service {
	t.Helper()
	dir := t.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(context.Background(), backendtest.Config(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, Keystore: ks, Now: func() time.Time { return authzNow }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustIdentity(t *testing.T, cfg IdentityConfig, docs ...string) *Identity {
	t.Helper()
	for i, d := range docs {
		ip, err := CompileIdentityPolicy(string(rune('a'+i)), d)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Policies = append(cfg.Policies, ip)
	}
	id, err := NewIdentity(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const allowAll = `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}`

// TestConditionContext checks, operation by operation, the condition keys
// a request carries into policy evaluation.
func TestConditionContext(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	alice := Caller{
		Scope: testScope, ARN: "arn:aws:iam::111122223333:user/alice", SourceIP: "203.0.113.9", SecureTransport: true,
		Identity: mustIdentity(t, IdentityConfig{
			ARN: "arn:aws:iam::111122223333:user/alice", Type: PrincipalTypeUser, UserID: "AIDAALICE", UserName: "alice",
			Tags: map[string]string{"Team": "payments"},
		}, allowAll),
	}
	// A key whose policy mentions kms:ResourceAliases, so that the key's
	// aliases are looked up.
	pol := strings.Replace(DefaultKeyPolicy(testScope.Partition, "111122223333"), `"Resource" : "*"`,
		`"Resource" : "*", "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*", "none"]}}`, 1)
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{Policy: &pol, Tags: []Tag{{"Env", "prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	keyID := ck.KeyMetadata.KeyId
	keyARN := ck.KeyMetadata.Arn
	if err := s.CreateAlias(ctx, admin, &AliasInput{AliasName: "alias/orders", TargetKeyId: keyID}); err != nil {
		t.Fatal(err)
	}
	blob, err := s.Encrypt(ctx, admin, &EncryptInput{KeyId: keyID, Plaintext: []byte("x"), EncryptionContext: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}

	// Every key-resource evaluation carries these.
	common := map[string][]string{
		"aws:principalarn":          {"arn:aws:iam::111122223333:user/alice"},
		"aws:principalaccount":      {"111122223333"},
		"aws:principaltype":         {"User"},
		"aws:userid":                {"AIDAALICE"},
		"aws:username":              {"alice"},
		"aws:principaltag/team":     {"payments"},
		"aws:PrincipalTag/Team":     {"payments"}, // names are case-insensitive
		"aws:sourceip":              {"203.0.113.9"},
		"aws:securetransport":       {"true"},
		"aws:currenttime":           {"2031-02-03T04:05:06Z"},
		"aws:epochtime":             {"1927857906"},
		"aws:requestedregion":       {"us-east-1"},
		"aws:viaawsservice":         {"false"},
		"kms:calleraccount":         {"111122223333"},
		"kms:keyspec":               {"SYMMETRIC_DEFAULT"},
		"kms:customermasterkeyspec": {"SYMMETRIC_DEFAULT"},
		"kms:keyusage":              {"ENCRYPT_DECRYPT"},
		"kms:keyorigin":             {"AWS_KMS"},
		"kms:multiregion":           {"false"},
		"aws:resourcetag/env":       {"prod"},
		"kms:resourcealiases":       {"alias/orders"},
	}
	type eval struct {
		action, resource string
		want             map[string][]string // nil value: the key must be absent
	}
	cases := []struct {
		name  string
		req   authzRequest
		evals []eval
	}{
		{"Encrypt by alias with a context", req(AuthorizeEncrypt, &EncryptInput{KeyId: "alias/orders", Plaintext: []byte("x"),
			EncryptionContext: map[string]string{"Department": "IT", "project": "Apollo"}}),
			[]eval{{"kms:Encrypt", keyARN, map[string][]string{
				"kms:encryptioncontext:department": {"IT"},
				"kms:EncryptionContext:Project":    {"Apollo"},
				"kms:encryptioncontextkeys":        {"Department", "project"},
				"kms:encryptionalgorithm":          {"SYMMETRIC_DEFAULT"},
				"kms:requestalias":                 {"alias/orders"},
			}}}},
		{"Encrypt by id without a context", req(AuthorizeEncrypt, &EncryptInput{KeyId: keyID, Plaintext: []byte("x")}),
			[]eval{{"kms:Encrypt", keyARN, map[string][]string{
				"kms:encryptioncontextkeys": nil, "kms:requestalias": nil,
			}}}},
		{"Decrypt finds the key in the blob", req(AuthorizeDecrypt, &DecryptInput{CiphertextBlob: blob.CiphertextBlob, EncryptionContext: map[string]string{"a": "1"}}),
			[]eval{{"kms:Decrypt", keyARN, map[string][]string{"kms:encryptioncontext:a": {"1"}, "kms:encryptionalgorithm": {"SYMMETRIC_DEFAULT"}}}}},
		{"ReEncrypt checks both keys", req(AuthorizeReEncrypt, &ReEncryptInput{CiphertextBlob: blob.CiphertextBlob, SourceEncryptionContext: map[string]string{"a": "1"},
			DestinationKeyId: other.KeyMetadata.Arn, DestinationEncryptionContext: map[string]string{"b": "2"}}),
			[]eval{
				{"kms:ReEncryptFrom", keyARN, map[string][]string{"kms:encryptioncontext:a": {"1"}, "kms:encryptioncontext:b": nil, "kms:reencryptonsamekey": {"false"}}},
				{"kms:ReEncryptTo", other.KeyMetadata.Arn, map[string][]string{"kms:encryptioncontext:b": {"2"}, "kms:encryptioncontext:a": nil,
					"kms:requestalias": nil, "aws:resourcetag/env": nil, "kms:resourcealiases": nil}},
			}},
		{"GenerateDataKey", req(AuthorizeGenerateDataKey, &GenerateDataKeyInput{KeyId: keyARN, KeySpec: "AES_256", EncryptionContext: map[string]string{"k": "v"}}),
			[]eval{{"kms:GenerateDataKey", keyARN, map[string][]string{"kms:encryptioncontext:k": {"v"}, "kms:encryptionalgorithm": {"SYMMETRIC_DEFAULT"}}}}},
		{"DescribeKey by alias ARN", req(AuthorizeDescribeKey, &KeyIdInput{KeyId: "arn:aws:kms:us-east-1:111122223333:alias/orders"}),
			[]eval{{"kms:DescribeKey", keyARN, map[string][]string{"kms:requestalias": {"alias/orders"}}}}},
		{"ScheduleKeyDeletion default window", req(AuthorizeScheduleKeyDeletion, &ScheduleKeyDeletionInput{KeyId: keyID}),
			[]eval{{"kms:ScheduleKeyDeletion", keyARN, map[string][]string{"kms:schedulekeydeletionpendingwindowindays": {"30"}}}}},
		{"ScheduleKeyDeletion 7 days", req(AuthorizeScheduleKeyDeletion, &ScheduleKeyDeletionInput{KeyId: keyID, PendingWindowInDays: ptr(int32(7))}),
			[]eval{{"kms:ScheduleKeyDeletion", keyARN, map[string][]string{"kms:schedulekeydeletionpendingwindowindays": {"7"}}}}},
		{"TagResource", req(AuthorizeTagResource, &TagResourceInput{KeyId: keyID, Tags: []Tag{{"Owner", "ops"}, {"cost", "1"}}}),
			[]eval{{"kms:TagResource", keyARN, map[string][]string{"aws:requesttag/owner": {"ops"}, "aws:requesttag/cost": {"1"}, "aws:tagkeys": {"Owner", "cost"}}}}},
		{"UntagResource", req(AuthorizeUntagResource, &UntagResourceInput{KeyId: keyID, TagKeys: []string{"Env"}}),
			[]eval{{"kms:UntagResource", keyARN, map[string][]string{"aws:tagkeys": {"Env"}}}}},
		{"CreateGrant", req(AuthorizeCreateGrant, &CreateGrantInput{KeyId: keyID, GranteePrincipal: "arn:aws:iam::111122223333:role/app",
			RetiringPrincipal: "arn:aws:iam::111122223333:user/ops", Operations: []string{"Encrypt", "Decrypt"},
			Constraints: &GrantConstraints{EncryptionContextSubset: map[string]string{"Tenant": "t1"}}}),
			[]eval{{"kms:CreateGrant", keyARN, map[string][]string{
				"kms:grantoperations":                {"Encrypt", "Decrypt"},
				"kms:granteeprincipal":               {"arn:aws:iam::111122223333:role/app"},
				"kms:retiringprincipal":              {"arn:aws:iam::111122223333:user/ops"},
				"kms:grantconstrainttype":            {"EncryptionContextSubset"},
				"kms:grantisforawsresource":          {"false"},
				"kms:encryptioncontext:tenant":       {"t1"},
				"kms:encryptioncontextkeys":          {"Tenant"},
				"kms:bypasspolicylockoutsafetycheck": nil,
			}}}},
		{"PutKeyPolicy", req(AuthorizePutKeyPolicy, &PutKeyPolicyInput{KeyId: keyID, Policy: DefaultKeyPolicy(testScope.Partition, "111122223333")}),
			[]eval{{"kms:PutKeyPolicy", keyARN, map[string][]string{"kms:bypasspolicylockoutsafetycheck": {"false"}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []eval
			_, err := tc.req.run(ctx, s, alice, func(action, resource string, pc policy.Context) {
				got = append(got, eval{action, resource, nil})
				want := tc.evals[min(len(got), len(tc.evals))-1]
				if action != want.action || resource != want.resource {
					t.Errorf("evaluated %s on %s, want %s on %s", action, resource, want.action, want.resource)
				}
				check := map[string][]string{}
				for k, v := range common {
					check[k] = v
				}
				for k, v := range want.want {
					check[k] = v
				}
				for k, v := range check {
					if g := pc.Get(k); !slices.Equal(g, v) {
						t.Errorf("%s: %s = %q, want %q", action, k, g, v)
					}
				}
			})
			if err != nil {
				t.Fatalf("authorize: %v", err)
			}
			if len(got) != len(tc.evals) {
				t.Fatalf("%d evaluations, want %d", len(got), len(tc.evals))
			}
		})
	}
}

// TestCreateKeyContext checks the condition keys of CreateKey, which has no
// key: its request's (defaulted) properties stand in for the key's.
func TestCreateKeyContext(t *testing.T) {
	s := newAuthzService(t)
	c := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/admin"}
	cases := []struct {
		in   CreateKeyInput
		want map[string][]string
	}{
		{CreateKeyInput{}, map[string][]string{
			"kms:keyspec": {"SYMMETRIC_DEFAULT"}, "kms:keyusage": {"ENCRYPT_DECRYPT"}, "kms:keyorigin": {"AWS_KMS"},
			"kms:multiregion": {"false"}, "kms:bypasspolicylockoutsafetycheck": {"false"}, "aws:tagkeys": nil,
			"aws:requesttag/env": nil, "aws:principaltype": {"User"}, "aws:username": {"admin"},
		}},
		{CreateKeyInput{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY", Tags: []Tag{{"Env", "dev"}}, BypassPolicyLockoutSafetyCheck: true}, map[string][]string{
			"kms:keyspec": {"ECC_NIST_P256"}, "kms:keyusage": {"SIGN_VERIFY"}, "aws:requesttag/env": {"dev"}, "aws:tagkeys": {"Env"},
			"kms:bypasspolicylockoutsafetycheck": {"true"},
		}},
		{CreateKeyInput{CustomerMasterKeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"}, map[string][]string{
			"kms:keyspec": {"HMAC_256"}, "kms:customermasterkeyspec": {"HMAC_256"}, "kms:keyusage": {"GENERATE_VERIFY_MAC"},
		}},
	}
	for _, tc := range cases {
		var actions []string
		_, err := AuthorizeCreateKey.authorize(context.Background(), s, c, &tc.in, func(action, resource string, pc policy.Context) {
			actions = append(actions, action)
			if resource != "*" {
				t.Errorf("%s on resource %q, want *", action, resource)
			}
			for k, v := range tc.want {
				if g := pc.Get(k); !slices.Equal(g, v) {
					t.Errorf("%+v: %s = %q, want %q", tc.in, k, g, v)
				}
			}
		})
		// This caller has no identity policy: CreateKey is denied, after
		// one evaluation.
		if awserr.CodeOf(err) != awserr.AccessDenied || len(actions) != 1 || actions[0] != "kms:CreateKey" {
			t.Errorf("%+v: %v after %v", tc.in, err, actions)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// authzRequest is a request to authorize, for table-driven tests: a rule
// with its input.
type authzRequest struct {
	op  string
	run func(ctx context.Context, s *Service, c Caller, observe func(action, resource string, pc policy.Context)) (Caller, error)
}

func req[In any](r *Rule[In], in *In) authzRequest {
	return authzRequest{op: r.Operation(), run: func(ctx context.Context, s *Service, c Caller, observe func(string, string, policy.Context)) (Caller, error) {
		return r.authorize(ctx, s, c, in, observe)
	}}
}

// TestRuleWithoutInputRefuses: a rule called without a rule or an input
// (a bug of its caller) refuses, as an internal error.
func TestRuleWithoutInputRefuses(t *testing.T) {
	s := newAuthzService(t)
	if _, err := AuthorizeEncrypt.Check(context.Background(), s, admin, nil); err == nil || awserr.CodeOf(err) != "" {
		t.Fatalf("no input: %v, want an internal error", err)
	}
	var none *Rule[EncryptInput]
	if _, err := none.Check(context.Background(), s, admin, &EncryptInput{}); err == nil || awserr.CodeOf(err) != "" {
		t.Fatalf("no rule: %v, want an internal error", err)
	}
}

// TestGrantConstraints checks constraint matching: keys ignore case,
// values do not; Equals is exact, Subset is a subset.
func TestGrantConstraints(t *testing.T) {
	eq := map[string]string{"Tenant": "t1", "app": "web"}
	cases := []struct {
		ec             map[string]string
		equals, subset bool
	}{
		{map[string]string{"Tenant": "t1", "app": "web"}, true, true},
		{map[string]string{"tenant": "t1", "APP": "web"}, true, true},
		{map[string]string{"Tenant": "T1", "app": "web"}, false, false},
		{map[string]string{"Tenant": "t1", "app": "web", "extra": "x"}, false, true},
		{map[string]string{"Tenant": "t1"}, false, false},
		{nil, false, false},
	}
	for _, tc := range cases {
		if got := constraintsHold(&store.Grant{EncryptionContextEquals: eq}, tc.ec); got != tc.equals {
			t.Errorf("Equals %v vs %v = %v", eq, tc.ec, got)
		}
		if got := constraintsHold(&store.Grant{EncryptionContextSubset: eq}, tc.ec); got != tc.subset {
			t.Errorf("Subset %v vs %v = %v", eq, tc.ec, got)
		}
	}
}

// TestConditionsSeeTheirKeys evaluates one condition per group of condition
// keys through the real path (which builds only the groups the policies
// read): in a key policy that names the caller, and in an identity policy
// behind the default key policy. Each condition holds, so each request must
// be allowed; the same condition with a wrong value must deny.
func TestConditionsSeeTheirKeys(t *testing.T) {
	ctx := context.Background()
	s := newAuthzService(t)
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{Tags: []Tag{{"Env", "prod"}}})
	if err != nil {
		t.Fatal(err)
	}
	keyID := ck.KeyMetadata.KeyId
	if err := s.CreateAlias(ctx, admin, &AliasInput{AliasName: "alias/orders", TargetKeyId: keyID}); err != nil {
		t.Fatal(err)
	}
	const user = "arn:aws:iam::111122223333:user/carol"
	in := req(AuthorizeEncrypt, &EncryptInput{KeyId: "alias/orders", Plaintext: []byte("x"), EncryptionContext: map[string]string{"Dept": "IT"}})
	cases := []struct {
		cond, wrong string
		req         authzRequest
	}{
		{`{"StringEquals": {"aws:PrincipalArn": "` + user + `"}}`, `{"StringEquals": {"aws:PrincipalArn": "x"}}`, in},
		{`{"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/${aws:username}"}}`, `{"StringEquals": {"aws:PrincipalArn": "${aws:userid}"}}`, in},
		{`{"StringEquals": {"kms:CallerAccount": "111122223333"}}`, `{"StringEquals": {"kms:CallerAccount": "444455556666"}}`, in},
		{`{"StringEquals": {"aws:PrincipalTag/Team": "blue"}}`, `{"StringEquals": {"aws:PrincipalTag/Team": "red"}}`, in},
		{`{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, `{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}`, in},
		{`{"Bool": {"aws:SecureTransport": "true"}}`, `{"Bool": {"aws:SecureTransport": "false"}}`, in},
		{`{"StringEquals": {"aws:RequestedRegion": "us-east-1"}}`, `{"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}`, in},
		{`{"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}`, `{"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}`, in},
		{`{"NumericGreaterThan": {"aws:EpochTime": "1900000000"}}`, `{"NumericLessThan": {"aws:EpochTime": "1900000000"}}`, in},
		{`{"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "kms:KeyUsage": "ENCRYPT_DECRYPT"}}`, `{"StringEquals": {"kms:KeySpec": "RSA_2048"}}`, in},
		{`{"StringEquals": {"aws:ResourceTag/Env": "prod"}}`, `{"StringEquals": {"aws:ResourceTag/Env": "dev"}}`, in},
		{`{"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/orders"}}`, `{"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/other"}}`, in},
		{`{"StringEquals": {"kms:RequestAlias": "alias/orders"}}`, `{"StringEquals": {"kms:RequestAlias": "alias/x"}}`, in},
		{`{"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}}`, `{"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}`, in},
		{`{"StringEquals": {"kms:EncryptionContext:Dept": "IT"}}`, `{"StringEquals": {"kms:EncryptionContext:Dept": "HR"}}`, in},
		{`{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Dept"]}, "Null": {"kms:EncryptionContextKeys": "false"}}`,
			`{"Null": {"kms:EncryptionContextKeys": "true"}}`, in},
		// JSON escapes cannot hide a key.
		{`{"StringEquals": {"\u0061ws:SourceIp": "203.0.113.9"}}`, `{"StringEquals": {"\u0061ws:SourceIp": "203.0.113.10"}}`, in},
		{`{"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "30"}}`,
			`{"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "30"}}`, req(AuthorizeScheduleKeyDeletion, &ScheduleKeyDeletionInput{KeyId: keyID})},
		{`{"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt"]}, "Bool": {"kms:GrantIsForAWSResource": "false"}}`,
			`{"Bool": {"kms:GrantIsForAWSResource": "true"}}`,
			req(AuthorizeCreateGrant, &CreateGrantInput{KeyId: keyID, GranteePrincipal: user, Operations: []string{"Encrypt"}})},
		{`{"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT", "aws:RequestTag/Env": "dev"}}`, `{"StringEquals": {"kms:KeySpec": "HMAC_256"}}`,
			req(AuthorizeCreateKey, &CreateKeyInput{Tags: []Tag{{"Env", "dev"}}})},
		{`{"StringEquals": {"kms:KeySpec": "HMAC_256"}}`, `{"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}`,
			req(AuthorizeCreateKey, &CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})},
	}
	for i, tc := range cases {
		for _, wrong := range []bool{false, true} {
			cond := tc.cond
			if wrong {
				cond = tc.wrong
			}
			action := "kms:" + tc.req.op
			extra := []string{}
			if tc.req.op == "CreateKey" {
				extra = append(extra, "kms:TagResource") // CreateKey with Tags
			}
			actions := `["` + strings.Join(append(extra, action), `", "`) + `"]`
			// In an identity policy (the default key policy delegates to it).
			identityDoc := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ` + actions + `, "Resource": "*", "Condition": ` + cond + `}]}`
			c := Caller{Scope: testScope, ARN: user, SourceIP: "203.0.113.9", SecureTransport: true,
				Identity: mustIdentity(t, IdentityConfig{ARN: user, Type: PrincipalTypeUser, UserName: "carol", UserID: "AIDACAROL",
					Tags: map[string]string{"Team": "blue"}}, identityDoc)}
			_, err := tc.req.run(ctx, s, c, nil)
			if allowed := err == nil; allowed == wrong {
				t.Errorf("case %d identity policy %s: %v", i, cond, err)
			}
			if tc.req.op == "CreateKey" {
				continue // no key policy
			}
			// In a key policy that names the caller (no identity policy).
			pol := `{"Version": "2012-10-17", "Statement": [
			  {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
			  {"Effect": "Allow", "Principal": {"AWS": "` + user + `"}, "Action": ` + actions + `, "Resource": "*", "Condition": ` + cond + `}]}`
			if err := s.PutKeyPolicy(ctx, admin, &PutKeyPolicyInput{KeyId: keyID, Policy: pol}); err != nil {
				t.Fatal(err)
			}
			c.Identity = mustIdentity(t, IdentityConfig{ARN: user, Type: PrincipalTypeUser, UserName: "carol", UserID: "AIDACAROL", Tags: map[string]string{"Team": "blue"}})
			_, err = tc.req.run(ctx, s, c, nil)
			if allowed := err == nil; allowed == wrong {
				t.Errorf("case %d key policy %s: %v", i, cond, err)
			}
			if err := s.PutKeyPolicy(ctx, admin, &PutKeyPolicyInput{KeyId: keyID, Policy: DefaultKeyPolicy(testScope.Partition, "111122223333")}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestContextNeeds(t *testing.T) {
	for doc, want := range map[string]ctxNeeds{
		DefaultKeyPolicy(testScope.Partition, "111122223333"):                               0,
		`{"Condition": {"StringEquals": {"AWS:SourceIP": "x"}}}`:                            needConnection,
		`{"Condition": {"StringEquals": {"kms:EncryptionContext:Dept": "IT"}}}`:             needEC,
		`{"Resource": "arn:aws:kms:*:*:key/${aws:PrincipalTag/k}"}`:                         needPrincipalTags,
		`{"Condition": {"StringEquals": {"kms:KeySpec": "x", "kms:grantoperations": "y"}}}`: needKey | needRequest,
		`{"Condition": {"StringEquals": {"\u0061ws:x": "y"}}}`:                              needAll,
	} {
		if got := contextNeeds(doc); got != want {
			t.Errorf("contextNeeds(%s) = %b, want %b", doc, got, want)
		}
	}
}
