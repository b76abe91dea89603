package policy_test

import (
	"fmt"

	"github.com/kmsd/kmsd/internal/policy"
)

// Evaluate a key policy that names one user directly, delegates the rest of
// the account to IAM and requires an encryption context, then combine the
// result with the caller's identity policies.
func Example() {
	keyPolicy, err := policy.Parse([]byte(`{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
	     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
	    {"Sid": "Allow use of the key", "Effect": "Allow",
	     "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
	     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
	     "Condition": {"StringEquals": {"kms:EncryptionContext:Department": "IT"}}}
	  ]}`), policy.ResourcePolicy)
	if err != nil {
		panic(err)
	}

	const key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, caller := range []string{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/bob"} {
		p, err := policy.NewPrincipal(caller)
		if err != nil {
			panic(err)
		}
		ctx := policy.NewContext(2)
		ctx.Set("kms:calleraccount", p.Account)
		ctx.Set("kms:encryptioncontext:department", "IT")
		req := &policy.Request{Principal: p, Action: "kms:Decrypt", Resource: key, Context: ctx}

		res := keyPolicy.EvaluateDetailed(req)
		fmt.Printf("%s: %v (direct %v, via account %v, statement %q)\n", caller, res.Decision, res.Direct, res.ViaAccount, res.Sid)

		v := policy.Authorize(&policy.Authorization{
			Principal: p, Action: req.Action, Resource: key, ResourceAccount: "111122223333",
			KeyPolicy: &res,
			Identity:  policy.NotApplicable, // neither caller has an identity policy
		})
		if v.Allowed {
			fmt.Println("  allowed:", v.Reason)
		} else {
			fmt.Println("  denied:", v.Message)
		}
	}
	// Output:
	// arn:aws:iam::111122223333:user/alice: Allow (direct true, via account true, statement "Allow use of the key")
	//   allowed: AllowedByKeyPolicy
	// arn:aws:iam::111122223333:user/bob: Allow (direct false, via account true, statement "Enable IAM User Permissions")
	//   denied: User: arn:aws:iam::111122223333:user/bob is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no identity-based policy allows the kms:Decrypt action
}

// Parse errors name the statement and the element at fault.
func ExampleParse_error() {
	_, err := policy.Parse([]byte(`{"Version": "2012-10-17", "Statement": [
	  {"Sid": "Admins", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}, "Action": "kms:*", "Resource": "*"}]}`),
		policy.ResourcePolicy)
	fmt.Println(err)
	_, err = policy.Parse([]byte(`{"Version": "2012-02-01", "Statement": []}`), policy.ResourcePolicy)
	fmt.Println(err)
	// Output:
	// malformed policy document: Statement[0] (Sid "Admins"): Principal.AWS: invalid principal "arn:aws:iam::111122223333:user/*": a wildcard may only stand alone ("*"), never match part of a principal
	// malformed policy document: Version: "2012-02-01" is not a policy language version (use "2012-10-17" or "2008-10-17")
}
