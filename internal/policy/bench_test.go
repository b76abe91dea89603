package policy

import "testing"

// defaultKeyPolicy is the policy KMS attaches to a key created without one,
// in the form GetKeyPolicy returns it.
const defaultKeyPolicy = `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`

// tenStatementPolicy is a console-style key policy with conditions.
const tenStatementPolicy = `{
  "Version": "2012-10-17",
  "Id": "key-consolepolicy-3",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow access for Key Administrators", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:role/KeyAdmin", "arn:aws:iam::111122223333:user/admin"]},
     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"], "Resource": "*"},
    {"Sid": "Deny deletion without MFA", "Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*",
     "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    {"Sid": "Deny plain HTTP", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    {"Sid": "Deny outside the network", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:db8::/32", "10.0.0.0/8"]}, "Bool": {"aws:ViaAWSService": "false"}}},
    {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:role/App", "arn:aws:iam::111122223333:user/alice"]},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333", "kms:EncryptionContext:Department": ["IT", "Finance"]}}},
    {"Sid": "Allow grants for AWS resources", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/App"},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*", "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    {"Sid": "Allow tagged principals", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"StringEquals": {"aws:PrincipalTag/team": "${aws:ResourceTag/team}"}, "ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["Department", "Project*"]}}},
    {"Sid": "Allow only recent requests", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/Batch"}, "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}, "NumericLessThanEquals": {"aws:MultiFactorAuthAge": "3600"}}},
    {"Sid": "Cross-account use", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*",
     "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::444455556666:role/reader-*"}}}
  ]
}`

func BenchmarkParseDefaultKeyPolicy(b *testing.B) {
	doc := []byte(defaultKeyPolicy)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc, ResourcePolicy); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluateDefaultKeyPolicy(b *testing.B) {
	p, err := Parse([]byte(defaultKeyPolicy), ResourcePolicy)
	if err != nil {
		b.Fatal(err)
	}
	pr, _ := NewPrincipal("arn:aws:iam::111122223333:user/alice")
	ctx := NewContext(4)
	ctx.Set("kms:calleraccount", "111122223333")
	ctx.Set("aws:securetransport", "true")
	r := &Request{Principal: pr, Action: "kms:Decrypt", Resource: keyARN, Context: ctx}
	b.ReportAllocs()
	for b.Loop() {
		if res := p.EvaluateDetailed(r); res.Decision != Allow || !res.ViaAccount {
			b.Fatal(res)
		}
	}
}

func BenchmarkEvaluateTenStatementsWithConditions(b *testing.B) {
	p, err := Parse([]byte(tenStatementPolicy), ResourcePolicy)
	if err != nil {
		b.Fatal(err)
	}
	pr, _ := NewPrincipal("arn:aws:iam::111122223333:user/alice")
	ctx := NewContext(12)
	ctx.Set("kms:calleraccount", "111122223333")
	ctx.Set("aws:securetransport", "true")
	ctx.Set("aws:sourceip", "203.0.113.7")
	ctx.Set("aws:viaawsservice", "false")
	ctx.Set("aws:principaltag/team", "blue")
	ctx.Set("aws:resourcetag/team", "blue")
	ctx.Set("aws:currenttime", "2026-03-01T12:00:00Z")
	ctx.Set("kms:encryptioncontext:department", "IT")
	ctx.Set("kms:encryptioncontextkeys", "Department", "ProjectId")
	r := &Request{Principal: pr, Action: "kms:Decrypt", Resource: keyARN, Context: ctx}
	if res := p.EvaluateDetailed(r); res.Decision != Allow || !res.Direct || res.Sid != "Allow use of the key" {
		b.Fatalf("%+v", res)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := p.EvaluateDetailed(r); res.Decision != Allow {
			b.Fatal(res)
		}
	}
}
