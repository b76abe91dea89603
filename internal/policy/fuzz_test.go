package policy

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it accepts evaluates
// without panicking for a spread of requests, and that evaluation is
// consistent (Evaluate, EvaluateDetailed and Matches agree).
func FuzzParse(f *testing.F) {
	seeds := []string{
		defaultKeyPolicy,
		tenStatementPolicy,
		`{"Statement": {"Effect": "Deny", "NotPrincipal": {"AWS": ["arn:aws:iam::111122223333:user/alice", "111122223333"]}, "NotAction": "kms:Decrypt", "NotResource": "arn:aws:kms:*:*:alias/*"}}`,
		`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b/${aws:username}/*", "arn:aws:svc:r:*:a*b"],
		  "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": ["a*", "${*}?"]}, "NumericLessThanIfExists": {"x:n": [1, "2.5e1"]},
		  "DateGreaterThan": {"aws:CurrentTime": "2025-01-01T00:00:00+02:00"}, "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
		  "BinaryEquals": {"x:b": "AAEC"}, "ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:t?"}, "Null": {"x:z": true}, "Bool": {"x:t": "${x:u}"},
		  "StringEqualsIgnoreCase": {"x:s": "${aws:userid, 'anon'}"}}}]}`,
		`{"Version": "2008-10-17", "Id": "x", "Statement": [{"Sid": "1", "Effect": "Allow", "Principal": {"Service": "logs.amazonaws.com", "Federated": "idp"}, "Action": "kms:*", "Resource": "*"}]}`,
		`{"Version": "2012-02-01", "Statement": []}`,
		`{"Statement": [{"Effect": "Allow", "Effect": "Deny"}]}`,
		`{"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "arn:aws:s3:::${"}]}`,
		`[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}} trailing`,
		"",
		"\xff\xfe",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(0))
	}
	principals := []Principal{
		{},
		{Type: PrincipalAWS, ARN: "arn:aws:iam::111122223333:user/alice", Account: "111122223333"},
		{Type: PrincipalAWS, ARN: "arn:aws:iam::111122223333:root", Account: "111122223333"},
		{Type: PrincipalAWS, ARN: "arn:aws:sts::111122223333:assumed-role/Ops/s", Account: "111122223333", RoleARN: "arn:aws:iam::111122223333:role/Ops"},
		{Type: PrincipalService, ARN: "logs.amazonaws.com"},
	}
	ctx := ContextOf(map[string][]string{
		"aws:username": {"alice"}, "aws:tagkeys": {"a1", "b?"}, "x:n": {"3"}, "aws:currenttime": {"2026-01-01T00:00:00Z"},
		"aws:sourceip": {"10.1.2.3"}, "x:b": {"AAEC"}, "aws:sourcearn": {"arn:aws:sns:us-east-1:111122223333:t1"},
		"x:t": {"true"}, "x:u": {"TRUE"}, "x:s": {"ANON"}, "kms:encryptioncontext:department": {"IT"},
	})
	f.Fuzz(func(t *testing.T, doc []byte, sel uint8) {
		for _, kind := range []Kind{ResourcePolicy, IdentityPolicy} {
			p, err := Parse(doc, kind)
			if err != nil {
				if !IsSyntaxError(err) {
					t.Fatalf("Parse returned %T: %v", err, err)
				}
				continue
			}
			r := &Request{
				Principal: principals[int(sel)%len(principals)],
				Action:    []string{"kms:Decrypt", "s3:PutObject", "KMS:encrypt", ""}[int(sel/8)%4],
				Resource:  []string{keyARN, "arn:aws:s3:::b/alice/x", "*", "arn:aws:svc:r:x:a1:a2b", string(doc)}[int(sel/32)%5],
				Context:   ctx,
			}
			d := p.Evaluate(r)
			res := p.EvaluateDetailed(r)
			if res.Decision != d {
				t.Fatalf("Evaluate %v, EvaluateDetailed %v", d, res.Decision)
			}
			want := NotApplicable
			for _, m := range p.Matches(r) {
				want = Combine(want, m.Effect)
			}
			if want != d {
				t.Fatalf("Matches combine to %v, Evaluate %v", want, d)
			}
			if d == Allow && !res.Direct && !res.ViaAccount {
				t.Fatalf("Allow without a way: %+v", res)
			}
			// Parsing is deterministic.
			if _, err := Parse(bytes.Clone(doc), kind); err != nil {
				t.Fatalf("second Parse failed: %v", err)
			}
		}
	})
}
