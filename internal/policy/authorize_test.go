package policy

import "testing"

func TestAuthorize(t *testing.T) {
	alice := mustPrincipal(t, userARN)                                      // named in the key policy
	bob := mustPrincipal(t, "arn:aws:iam::111122223333:user/bob")           // only through the account
	root := mustPrincipal(t, "arn:aws:iam::111122223333:root")              // the account's root user
	carol := mustPrincipal(t, "arn:aws:iam::444455556666:user/carol")       // another account, named
	dave := mustPrincipal(t, "arn:aws:iam::444455556666:user/dave")         // another account, via its account
	erin := mustPrincipal(t, "arn:aws:iam::999988887777:user/erin")         // an account the policy ignores
	ops := mustPrincipal(t, "arn:aws:sts::111122223333:assumed-role/Ops/s") // a role session, named by its role
	logs := Principal{Type: PrincipalService, ARN: "logs.us-east-1.amazonaws.com"}

	keyPolicy := mustParse(t, `{"Version": "2012-10-17", "Statement": [
		{"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
		{"Sid": "Users", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::444455556666:user/carol", "arn:aws:iam::111122223333:role/Ops"]},
		 "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"},
		{"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "kms:Decrypt", "Resource": "*"},
		{"Sid": "Logs", "Effect": "Allow", "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "kms:Encrypt", "Resource": "*"},
		{"Sid": "NoDisable", "Effect": "Deny", "Principal": "*", "Action": "kms:DisableKey", "Resource": "*",
		 "Condition": {"StringNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:root"}}}]}`, ResourcePolicy)
	allowAll := mustParse(t, `{"Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}}`, IdentityPolicy)
	denyDecrypt := mustParse(t, `{"Statement": {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}}`, IdentityPolicy)

	const (
		noResource = "because no resource-based policy allows the "
		noIdentity = "because no identity-based policy allows the "
	)
	cases := []struct {
		name     string
		p        Principal
		action   string
		identity []*Policy
		grant    bool
		nonKey   bool // an operation without a key resource
		allowed  bool
		reason   Reason
		message  string
	}{
		{"named user, no IAM policy", alice, "kms:Decrypt", nil, false, false, true, AllowedByKeyPolicy, ""},
		{"named role matches its session", ops, "kms:Encrypt", nil, false, false, true, AllowedByKeyPolicy, ""},
		{"account delegation needs IAM", bob, "kms:Decrypt", nil, false, false, false, DeniedNoIdentityAllow,
			"User: arn:aws:iam::111122223333:user/bob is not authorized to perform: kms:Decrypt on resource: " + keyARN + " " + noIdentity + "kms:Decrypt action"},
		{"account delegation with IAM allow", bob, "kms:Decrypt", []*Policy{allowAll}, false, false, true, AllowedByDelegation, ""},
		{"identity deny beats key policy allow", alice, "kms:Decrypt", []*Policy{allowAll, denyDecrypt}, false, false, false, DeniedByIdentity,
			"User: " + userARN + " is not authorized to perform: kms:Decrypt on resource: " + keyARN + " with an explicit deny in an identity-based policy"},
		{"key policy deny beats everything", alice, "kms:DisableKey", []*Policy{allowAll}, true, false, false, DeniedByKeyPolicy,
			"User: " + userARN + " is not authorized to perform: kms:DisableKey on resource: " + keyARN + " with an explicit deny in a resource-based policy"},
		{"root user needs no IAM policy", root, "kms:DisableKey", nil, false, false, true, AllowedByKeyPolicy, ""},
		{"root user is delegated the account", root, "kms:ScheduleKeyDeletion", nil, false, false, true, AllowedByKeyPolicy, ""},
		{"grant allows without policies", erin, "kms:Decrypt", nil, true, false, true, AllowedByGrant, ""},
		{"grant cannot override an identity deny", bob, "kms:Decrypt", []*Policy{denyDecrypt}, true, false, false, DeniedByIdentity, ""},
		{"cross-account named needs IAM", carol, "kms:Encrypt", nil, false, false, false, DeniedNoIdentityAllow,
			"User: arn:aws:iam::444455556666:user/carol is not authorized to perform: kms:Encrypt on resource: " + keyARN + " " + noIdentity + "kms:Encrypt action"},
		{"cross-account named with IAM", carol, "kms:Encrypt", []*Policy{allowAll}, false, false, true, AllowedCrossAccount, ""},
		{"cross-account via account with IAM", dave, "kms:Decrypt", []*Policy{allowAll}, false, false, true, AllowedCrossAccount, ""},
		{"cross-account, key policy silent", dave, "kms:Encrypt", []*Policy{allowAll}, false, false, false, DeniedNoKeyPolicyAllow,
			"User: arn:aws:iam::444455556666:user/dave is not authorized to perform: kms:Encrypt on resource: " + keyARN + " " + noResource + "kms:Encrypt action"},
		{"unknown account", erin, "kms:Decrypt", []*Policy{allowAll}, false, false, false, DeniedNoKeyPolicyAllow, ""},
		{"service named", logs, "kms:Encrypt", nil, false, false, true, AllowedByKeyPolicy, ""},
		{"service not allowed", logs, "kms:Decrypt", nil, false, false, false, DeniedNoKeyPolicyAllow, ""},
		{"non-key operation with IAM", bob, "kms:CreateKey", []*Policy{allowAll}, false, true, true, AllowedByIdentity, ""},
		{"non-key operation without IAM", bob, "kms:CreateKey", nil, false, true, false, DeniedNoIdentityAllow,
			"User: arn:aws:iam::111122223333:user/bob is not authorized to perform: kms:CreateKey on resource: * " + noIdentity + "kms:CreateKey action"},
		{"non-key operation for root", root, "kms:ListKeys", nil, false, true, true, AllowedByIdentity, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Authorization{Principal: c.p, Action: c.action, Resource: keyARN, ResourceAccount: acctA, Grant: c.grant}
			r := &Request{Principal: c.p, Action: c.action, Resource: keyARN, Context: ContextOf(map[string][]string{"aws:PrincipalArn": {c.p.ARN}})}
			if c.nonKey {
				a.Resource, r.Resource, a.ResourceAccount = "*", "*", ""
			} else {
				res := keyPolicy.EvaluateDetailed(r)
				a.KeyPolicy = &res
			}
			a.Identity = EvaluateAll(c.identity, r)
			v := Authorize(a)
			if v.Allowed != c.allowed || v.Reason != c.reason {
				t.Errorf("Authorize = %v/%v, want %v/%v", v.Allowed, v.Reason, c.allowed, c.reason)
			}
			if c.message != "" && v.Message != c.message {
				t.Errorf("message = %q\nwant      %q", v.Message, c.message)
			}
			if v.Allowed != (v.Message == "") {
				t.Errorf("allowed %v with message %q", v.Allowed, v.Message)
			}
		})
	}
	for r := AllowedByKeyPolicy; r <= DeniedNoIdentityAllow; r++ {
		if s := r.String(); s == "" || s == "Reason(?)" {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
	}
}
