package policy

import (
	"encoding/json"
	"fmt"
	"testing"
)

// condPolicy builds an identity policy that allows everything under the
// given Condition element.
func condPolicy(t testing.TB, version, cond string) *Policy {
	t.Helper()
	v := ""
	if version != "" {
		v = fmt.Sprintf(`"Version": %q,`, version)
	}
	doc := fmt.Sprintf(`{%s "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": %s}}`, v, cond)
	p, err := Parse([]byte(doc), IdentityPolicy)
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return p
}

type condCase struct {
	name    string
	version string // "" means 2012-10-17 here, "none" no Version element
	cond    string
	ctx     map[string][]string
	want    bool
}

func one(kv ...string) map[string][]string {
	m := map[string][]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = append(m[kv[i]], kv[i+1])
	}
	return m
}

func runCondCases(t *testing.T, cases []condCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.version
			switch v {
			case "":
				v = Version2012
			case "none": // no Version element
				v = ""
			}
			p := condPolicy(t, v, c.cond)
			r := &Request{Action: "kms:Encrypt", Resource: "*", Context: ContextOf(c.ctx)}
			got := p.Evaluate(r) == Allow
			if got != c.want {
				ctx, _ := json.Marshal(c.ctx)
				t.Errorf("condition %s with context %s = %v, want %v", c.cond, ctx, got, c.want)
			}
		})
	}
}

func TestStringOperators(t *testing.T) {
	k := "kms:EncryptionContext:Department"
	runCondCases(t, []condCase{
		{"StringEquals match", "", `{"StringEquals": {"kms:EncryptionContext:Department": "IT"}}`, one(k, "IT"), true},
		{"StringEquals mismatch", "", `{"StringEquals": {"kms:EncryptionContext:Department": "IT"}}`, one(k, "HR"), false},
		{"StringEquals is case-sensitive", "", `{"StringEquals": {"kms:EncryptionContext:Department": "IT"}}`, one(k, "it"), false},
		{"StringEquals absent key", "", `{"StringEquals": {"kms:EncryptionContext:Department": "IT"}}`, nil, false},
		{"StringEquals values are ORed", "", `{"StringEquals": {"kms:EncryptionContext:Department": ["HR", "IT"]}}`, one(k, "IT"), true},
		{"StringEquals number value", "", `{"StringEquals": {"s3:max-keys": 10}}`, one("s3:max-keys", "10"), true},
		{"StringEquals bool value", "", `{"StringEquals": {"aws:SecureTransport": true}}`, one("aws:SecureTransport", "true"), true},
		{"StringEquals empty string", "", `{"StringEquals": {"x:k": ""}}`, one("x:k", ""), true},
		{"StringNotEquals match", "", `{"StringNotEquals": {"kms:EncryptionContext:Department": "IT"}}`, one(k, "IT"), false},
		{"StringNotEquals mismatch", "", `{"StringNotEquals": {"kms:EncryptionContext:Department": "IT"}}`, one(k, "HR"), true},
		{"StringNotEquals absent key", "", `{"StringNotEquals": {"kms:EncryptionContext:Department": "IT"}}`, nil, true},
		{"StringNotEquals is NOR over values", "", `{"StringNotEquals": {"kms:EncryptionContext:Department": ["HR", "IT"]}}`, one(k, "IT"), false},
		{"StringNotEquals none of the values", "", `{"StringNotEquals": {"kms:EncryptionContext:Department": ["HR", "IT"]}}`, one(k, "Ops"), true},
		{"StringEqualsIgnoreCase", "", `{"StringEqualsIgnoreCase": {"kms:EncryptionContext:Department": "it"}}`, one(k, "IT"), true},
		{"StringEqualsIgnoreCase mismatch", "", `{"StringEqualsIgnoreCase": {"kms:EncryptionContext:Department": "it"}}`, one(k, "ITS"), false},
		{"StringNotEqualsIgnoreCase", "", `{"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:Department": "it"}}`, one(k, "It"), false},
		{"StringNotEqualsIgnoreCase other", "", `{"StringNotEqualsIgnoreCase": {"kms:EncryptionContext:Department": "it"}}`, one(k, "HR"), true},
		{"StringLike star", "", `{"StringLike": {"kms:RequestAlias": "alias/prod-*"}}`, one("kms:RequestAlias", "alias/prod-db"), true},
		{"StringLike star matches empty", "", `{"StringLike": {"kms:RequestAlias": "alias/prod-*"}}`, one("kms:RequestAlias", "alias/prod-"), true},
		{"StringLike star mismatch", "", `{"StringLike": {"kms:RequestAlias": "alias/prod-*"}}`, one("kms:RequestAlias", "alias/test-db"), false},
		{"StringLike star crosses colons", "", `{"StringLike": {"aws:PrincipalArn": "arn:aws:*:root"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:root"), true},
		{"StringLike question mark", "", `{"StringLike": {"x:k": "a?c"}}`, one("x:k", "abc"), true},
		{"StringLike question mark is one character", "", `{"StringLike": {"x:k": "a?c"}}`, one("x:k", "ac"), false},
		{"StringLike question mark is one rune", "", `{"StringLike": {"x:k": "a?c"}}`, one("x:k", "aéc"), true},
		{"StringLike several stars", "", `{"StringLike": {"x:k": "*a*b*c*"}}`, one("x:k", "xxaxxbxxcxx"), true},
		{"StringLike several stars mismatch", "", `{"StringLike": {"x:k": "*a*b*c*"}}`, one("x:k", "xxcxxbxxaxx"), false},
		{"StringLike is case-sensitive", "", `{"StringLike": {"x:k": "A*"}}`, one("x:k", "abc"), false},
		{"StringLike absent", "", `{"StringLike": {"x:k": "*"}}`, nil, false},
		{"StringNotLike", "", `{"StringNotLike": {"x:k": ["a*", "b*"]}}`, one("x:k", "bob"), false},
		{"StringNotLike none", "", `{"StringNotLike": {"x:k": ["a*", "b*"]}}`, one("x:k", "carol"), true},
		{"StringNotLike absent", "", `{"StringNotLike": {"x:k": "a*"}}`, nil, true},
		{"key names are case-insensitive", "", `{"StringEquals": {"KMS:encryptioncontext:DEPARTMENT": "IT"}}`, one("kms:encryptioncontext:department", "IT"), true},
		{"keys in one operator are ANDed", "", `{"StringEquals": {"x:a": "1", "x:b": "2"}}`, one("x:a", "1", "x:b", "3"), false},
		{"keys in one operator all hold", "", `{"StringEquals": {"x:a": "1", "x:b": "2"}}`, one("x:a", "1", "x:b", "2"), true},
		{"operators are ANDed", "", `{"StringEquals": {"x:a": "1"}, "StringLike": {"x:b": "z*"}}`, one("x:a", "1", "x:b", "2"), false},
		{"empty values count as absent", "", `{"StringNotEquals": {"x:k": "v"}}`, map[string][]string{"x:k": {}}, true},
	})
}

func TestNumericOperators(t *testing.T) {
	k := "kms:ScheduleKeyDeletionPendingWindowInDays"
	runCondCases(t, []condCase{
		{"NumericEquals", "", `{"NumericEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "30"}}`, one(k, "30"), true},
		{"NumericEquals decimal forms", "", `{"NumericEquals": {"x:n": "10"}}`, one("x:n", "10.000"), true},
		{"NumericEquals leading zeros", "", `{"NumericEquals": {"x:n": "10"}}`, one("x:n", "0010"), true},
		{"NumericEquals exponent", "", `{"NumericEquals": {"x:n": 1e3}}`, one("x:n", "1000"), true},
		{"NumericEquals JSON number", "", `{"NumericEquals": {"x:n": 7}}`, one("x:n", "7"), true},
		{"NumericEquals mismatch", "", `{"NumericEquals": {"x:n": "30"}}`, one("x:n", "31"), false},
		{"NumericEquals exact beyond float64", "", `{"NumericEquals": {"x:n": "9007199254740993"}}`, one("x:n", "9007199254740992"), false},
		{"NumericEquals zero signs", "", `{"NumericEquals": {"x:n": "-0"}}`, one("x:n", "0.0"), true},
		{"NumericEquals not a number in request", "", `{"NumericEquals": {"x:n": "30"}}`, one("x:n", "thirty"), false},
		{"NumericEquals absent", "", `{"NumericEquals": {"x:n": "30"}}`, nil, false},
		{"NumericNotEquals", "", `{"NumericNotEquals": {"x:n": ["7", "30"]}}`, one("x:n", "30"), false},
		{"NumericNotEquals other", "", `{"NumericNotEquals": {"x:n": ["7", "30"]}}`, one("x:n", "14"), true},
		{"NumericNotEquals absent", "", `{"NumericNotEquals": {"x:n": "7"}}`, nil, true},
		{"NumericLessThan", "", `{"NumericLessThan": {"x:n": "10"}}`, one("x:n", "9.99"), true},
		{"NumericLessThan equal", "", `{"NumericLessThan": {"x:n": "10"}}`, one("x:n", "10"), false},
		{"NumericLessThan negative", "", `{"NumericLessThan": {"x:n": "-1"}}`, one("x:n", "-1.5"), true},
		{"NumericLessThanEquals", "", `{"NumericLessThanEquals": {"x:n": "10"}}`, one("x:n", "10"), true},
		{"NumericLessThanEquals above", "", `{"NumericLessThanEquals": {"x:n": "10"}}`, one("x:n", "10.01"), false},
		{"NumericGreaterThan", "", `{"NumericGreaterThan": {"x:n": "10"}}`, one("x:n", "100"), true},
		{"NumericGreaterThan equal", "", `{"NumericGreaterThan": {"x:n": "10"}}`, one("x:n", "10"), false},
		{"NumericGreaterThan small fractions", "", `{"NumericGreaterThan": {"x:n": "0.001"}}`, one("x:n", "0.01"), true},
		{"NumericGreaterThanEquals", "", `{"NumericGreaterThanEquals": {"x:n": "7"}}`, one("x:n", "7"), true},
		{"NumericGreaterThanEquals below", "", `{"NumericGreaterThanEquals": {"x:n": "7"}}`, one("x:n", "6"), false},
		{"Numeric values ORed", "", `{"NumericLessThan": {"x:n": ["5", "20"]}}`, one("x:n", "10"), true},
	})
}

func TestDateOperators(t *testing.T) {
	ct := "aws:CurrentTime"
	et := "aws:EpochTime"
	runCondCases(t, []condCase{
		{"DateEquals ISO", "", `{"DateEquals": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}`, one(ct, "2025-01-01T00:00:00Z"), true},
		{"DateEquals ISO vs epoch", "", `{"DateEquals": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}`, one(ct, "1735689600"), true},
		{"DateEquals epoch policy vs ISO request", "", `{"DateEquals": {"aws:EpochTime": 1735689600}}`, one(et, "2025-01-01T00:00:00.000Z"), true},
		{"DateEquals offset", "", `{"DateEquals": {"aws:CurrentTime": "2025-01-01T01:00:00+01:00"}}`, one(ct, "2025-01-01T00:00:00Z"), true},
		{"DateEquals date only", "", `{"DateEquals": {"aws:CurrentTime": "2025-01-01"}}`, one(ct, "2025-01-01T00:00:00Z"), true},
		{"DateNotEquals", "", `{"DateNotEquals": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}`, one(ct, "2025-01-01T00:00:01Z"), true},
		{"DateNotEquals equal", "", `{"DateNotEquals": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}`, one(ct, "2025-01-01T00:00:00Z"), false},
		{"DateLessThan", "", `{"DateLessThan": {"aws:CurrentTime": "2025-06-30T00:00:00Z"}}`, one(ct, "2025-06-29T23:59:59Z"), true},
		{"DateLessThan after", "", `{"DateLessThan": {"aws:CurrentTime": "2025-06-30T00:00:00Z"}}`, one(ct, "2025-06-30T00:00:00Z"), false},
		{"DateLessThan fraction", "", `{"DateLessThan": {"aws:CurrentTime": "2025-06-30T00:00:00Z"}}`, one(ct, "2025-06-29T23:59:59.999Z"), true},
		{"DateLessThanEquals", "", `{"DateLessThanEquals": {"aws:CurrentTime": "2025-06-30T00:00:00Z"}}`, one(ct, "2025-06-30T00:00:00Z"), true},
		{"DateGreaterThan epoch", "", `{"DateGreaterThan": {"aws:EpochTime": "1700000000"}}`, one(et, "1700000001"), true},
		{"DateGreaterThan epoch equal", "", `{"DateGreaterThan": {"aws:EpochTime": "1700000000"}}`, one(et, "1700000000"), false},
		{"DateGreaterThanEquals", "", `{"DateGreaterThanEquals": {"aws:EpochTime": "1700000000"}}`, one(et, "1700000000"), true},
		{"Date request not a date", "", `{"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}`, one(ct, "yesterday"), false},
		{"Date absent", "", `{"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}`, nil, false},
	})
}

func TestBoolBinaryIPArnOperators(t *testing.T) {
	runCondCases(t, []condCase{
		{"Bool true", "", `{"Bool": {"aws:SecureTransport": "true"}}`, one("aws:SecureTransport", "true"), true},
		{"Bool case-insensitive", "", `{"Bool": {"aws:SecureTransport": "True"}}`, one("aws:SecureTransport", "TRUE"), true},
		{"Bool JSON boolean", "", `{"Bool": {"aws:SecureTransport": false}}`, one("aws:SecureTransport", "false"), true},
		{"Bool mismatch", "", `{"Bool": {"aws:SecureTransport": "false"}}`, one("aws:SecureTransport", "true"), false},
		{"Bool garbage request", "", `{"Bool": {"aws:SecureTransport": "true"}}`, one("aws:SecureTransport", "yes"), false},
		{"Bool absent", "", `{"Bool": {"aws:SecureTransport": "false"}}`, nil, false},
		{"Bool with variable", "", `{"Bool": {"x:a": "${x:b}"}}`, one("x:a", "true", "x:b", "TRUE"), true},

		{"BinaryEquals", "", `{"BinaryEquals": {"x:bin": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}`, one("x:bin", "QmluYXJ5VmFsdWVJbkJhc2U2NA=="), true},
		{"BinaryEquals unpadded request", "", `{"BinaryEquals": {"x:bin": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}`, one("x:bin", "QmluYXJ5VmFsdWVJbkJhc2U2NA"), true},
		{"BinaryEquals mismatch", "", `{"BinaryEquals": {"x:bin": "AAEC"}}`, one("x:bin", "AAED"), false},
		{"BinaryEquals request not base64", "", `{"BinaryEquals": {"x:bin": "AAEC"}}`, one("x:bin", "!!"), false},

		{"IpAddress v4 range", "", `{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, one("aws:SourceIp", "203.0.113.77"), true},
		{"IpAddress v4 outside", "", `{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, one("aws:SourceIp", "203.0.114.1"), false},
		{"IpAddress single address is /32", "", `{"IpAddress": {"aws:SourceIp": "192.0.2.10"}}`, one("aws:SourceIp", "192.0.2.10"), true},
		{"IpAddress single address other", "", `{"IpAddress": {"aws:SourceIp": "192.0.2.10"}}`, one("aws:SourceIp", "192.0.2.11"), false},
		{"IpAddress unmasked range", "", `{"IpAddress": {"aws:SourceIp": "203.0.113.9/24"}}`, one("aws:SourceIp", "203.0.113.200"), true},
		{"IpAddress v6 range", "", `{"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}}`, one("aws:SourceIp", "2001:db8:1234:5678::abcd"), true},
		{"IpAddress v6 outside", "", `{"IpAddress": {"aws:SourceIp": "2001:DB8:1234:5678::/64"}}`, one("aws:SourceIp", "2001:db8:1234:5679::1"), false},
		{"IpAddress v6 single", "", `{"IpAddress": {"aws:SourceIp": "2001:db8::1"}}`, one("aws:SourceIp", "2001:db8::1"), true},
		{"IpAddress v4-mapped request", "", `{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}`, one("aws:SourceIp", "::ffff:10.1.2.3"), true},
		{"IpAddress v4 policy v6 request", "", `{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}`, one("aws:SourceIp", "2001:db8::1"), false},
		{"IpAddress mixed list", "", `{"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8::/32"]}}`, one("aws:SourceIp", "2001:db8::7"), true},
		{"IpAddress request not an address", "", `{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}`, one("aws:SourceIp", "localhost"), false},
		{"NotIpAddress inside", "", `{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, one("aws:SourceIp", "203.0.113.1"), false},
		{"NotIpAddress outside", "", `{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, one("aws:SourceIp", "198.51.100.1"), true},
		{"NotIpAddress absent", "", `{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}`, nil, true},

		{"ArnLike fields", "", `{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/Admin*"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:role/AdminRole"), true},
		{"ArnLike other account", "", `{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/*"}}`, one("aws:PrincipalArn", "arn:aws:iam::444455556666:role/x"), false},
		{"ArnLike wildcard stays in its field", "", `{"ArnLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}`,
			one("aws:SourceArn", "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"), false},
		{"StringLike crosses the fields", "", `{"StringLike": {"aws:SourceArn": "arn:aws:someservice:*:111122223333:finance/*"}}`,
			one("aws:SourceArn", "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"), true},
		{"ArnLike resource field may hold colons", "", `{"ArnLike": {"aws:SourceArn": "arn:aws:logs:*:111122223333:log-group:*"}}`,
			one("aws:SourceArn", "arn:aws:logs:us-east-1:111122223333:log-group:app:stream"), true},
		{"ArnLike question mark", "", `{"ArnLike": {"aws:SourceArn": "arn:aws:sns:us-east-?:111122223333:topic"}}`, one("aws:SourceArn", "arn:aws:sns:us-east-2:111122223333:topic"), true},
		{"ArnEquals behaves like ArnLike", "", `{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:111122223333:topic"}}`, one("aws:SourceArn", "arn:aws:sns:eu-west-1:111122223333:topic"), true},
		{"ArnEquals exact", "", `{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:topic"}}`, one("aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic"), true},
		{"ArnEquals case-sensitive", "", `{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:111122223333:Topic"}}`, one("aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic"), false},
		{"ArnLike value not an ARN", "", `{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:topic"}}`, one("aws:SourceArn", "topic"), false},
		{"ArnLike star alone", "", `{"ArnLike": {"aws:SourceArn": "*"}}`, one("aws:SourceArn", "arn:aws:sns:us-east-1:111122223333:topic"), true},
		{"ArnNotLike", "", `{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:role/Admin"), false},
		{"ArnNotEquals other", "", `{"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:user/bob"), true},
		{"ArnNotLike absent", "", `{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin"}}`, nil, true},
	})
}

func TestNullIfExistsAndSets(t *testing.T) {
	runCondCases(t, []condCase{
		{"Null true absent", "", `{"Null": {"aws:TokenIssueTime": "true"}}`, nil, true},
		{"Null true present", "", `{"Null": {"aws:TokenIssueTime": "true"}}`, one("aws:TokenIssueTime", "2025-01-01T00:00:00Z"), false},
		{"Null false present", "", `{"Null": {"aws:TokenIssueTime": false}}`, one("aws:TokenIssueTime", "2025-01-01T00:00:00Z"), true},
		{"Null false absent", "", `{"Null": {"aws:TokenIssueTime": "false"}}`, nil, false},
		{"Null empty values are null", "", `{"Null": {"x:k": "true"}}`, map[string][]string{"x:k": {}}, true},

		{"IfExists absent", "", `{"StringEqualsIfExists": {"x:k": "v"}}`, nil, true},
		{"IfExists present match", "", `{"StringEqualsIfExists": {"x:k": "v"}}`, one("x:k", "v"), true},
		{"IfExists present mismatch", "", `{"StringEqualsIfExists": {"x:k": "v"}}`, one("x:k", "w"), false},
		{"negated IfExists absent", "", `{"StringNotEqualsIfExists": {"x:k": "v"}}`, nil, true},
		{"negated IfExists present", "", `{"StringNotEqualsIfExists": {"x:k": "v"}}`, one("x:k", "v"), false},
		{"NumericLessThanIfExists absent", "", `{"NumericLessThanIfExists": {"x:n": "5"}}`, nil, true},
		{"NumericLessThanIfExists present", "", `{"NumericLessThanIfExists": {"x:n": "5"}}`, one("x:n", "9"), false},
		{"IpAddressIfExists absent", "", `{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}`, nil, true},
		{"BoolIfExists present", "", `{"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}`, one("aws:MultiFactorAuthPresent", "false"), false},
		{"ArnLikeIfExists absent", "", `{"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:sns:*:*:t"}}`, nil, true},
		{"DateLessThanIfExists absent", "", `{"DateLessThanIfExists": {"aws:TokenIssueTime": "2025-01-01"}}`, nil, true},

		{"ForAllValues subset", "", `{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}}`, one("kms:EncryptionContextKeys", "Department", "kms:EncryptionContextKeys", "Project"), true},
		{"ForAllValues not a subset", "", `{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}}`, one("kms:EncryptionContextKeys", "Department", "kms:EncryptionContextKeys", "Owner"), false},
		{"ForAllValues absent is true", "", `{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "Department"}}`, nil, true},
		{"ForAllValues empty is true", "", `{"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "Department"}}`, map[string][]string{"kms:EncryptionContextKeys": {}}, true},
		{"ForAnyValue one match", "", `{"ForAnyValue:StringEquals": {"kms:GrantOperations": ["Decrypt", "ReEncryptFrom"]}}`, one("kms:GrantOperations", "Encrypt", "kms:GrantOperations", "Decrypt"), true},
		{"ForAnyValue no match", "", `{"ForAnyValue:StringEquals": {"kms:GrantOperations": ["Decrypt"]}}`, one("kms:GrantOperations", "Encrypt", "kms:GrantOperations", "Sign"), false},
		{"ForAnyValue absent is false", "", `{"ForAnyValue:StringEquals": {"kms:GrantOperations": "Decrypt"}}`, nil, false},
		{"ForAnyValue StringLike", "", `{"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/finance-*"}}`, one("kms:ResourceAliases", "alias/x", "kms:ResourceAliases", "alias/finance-db"), true},
		{"ForAllValues StringNotEquals none listed", "", `{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Owner", "Cost"]}}`, one("aws:TagKeys", "Env", "aws:TagKeys", "Team"), true},
		{"ForAllValues StringNotEquals one listed", "", `{"ForAllValues:StringNotEquals": {"aws:TagKeys": ["Owner", "Cost"]}}`, one("aws:TagKeys", "Env", "aws:TagKeys", "Owner"), false},
		{"ForAllValues StringNotEquals absent", "", `{"ForAllValues:StringNotEquals": {"aws:TagKeys": "Owner"}}`, nil, true},
		{"ForAnyValue StringNotEquals one unlisted", "", `{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Owner", "Cost"]}}`, one("aws:TagKeys", "Owner", "aws:TagKeys", "Env"), true},
		{"ForAnyValue StringNotEquals all listed", "", `{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["Owner", "Cost"]}}`, one("aws:TagKeys", "Owner", "aws:TagKeys", "Cost"), false},
		{"ForAnyValue StringNotEquals absent", "", `{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "Owner"}}`, nil, false},
		{"ForAllValues IfExists absent", "", `{"ForAllValues:StringLikeIfExists": {"aws:TagKeys": "a*"}}`, nil, true},
		{"ForAnyValue IfExists absent", "", `{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "a"}}`, nil, true},
		{"ForAnyValue numeric", "", `{"ForAnyValue:NumericGreaterThan": {"x:n": "10"}}`, one("x:n", "1", "x:n", "11"), true},
		{"ForAllValues numeric", "", `{"ForAllValues:NumericGreaterThan": {"x:n": "10"}}`, one("x:n", "1", "x:n", "11"), false},
		{"plain operator on multi-valued key: any", "", `{"StringEquals": {"aws:TagKeys": "Env"}}`, one("aws:TagKeys", "Owner", "aws:TagKeys", "Env"), true},
		{"plain negated operator on multi-valued key: none", "", `{"StringNotEquals": {"aws:TagKeys": "Env"}}`, one("aws:TagKeys", "Owner", "aws:TagKeys", "Env"), false},
	})
}

func TestPolicyVariablesInConditions(t *testing.T) {
	runCondCases(t, []condCase{
		{"substituted under 2012-10-17", "", `{"StringEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/alice", "aws:username", "alice"), true},
		{"other user", "", `{"StringEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/bob", "aws:username", "alice"), false},
		{"literal under 2008-10-17", Version2008, `{"StringEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/${aws:username}", "aws:username", "alice"), true},
		{"literal under 2008-10-17, no substitution", Version2008, `{"StringEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/alice", "aws:username", "alice"), false},
		{"variable key is case-insensitive", "", `{"StringEquals": {"x:team": "${AWS:PrincipalTag/Team}"}}`, one("x:team", "blue", "aws:principaltag/team", "blue"), true},
		{"absent variable matches nothing", "", `{"StringEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/"), false},
		{"absent variable excludes nothing for a negated operator", "", `{"StringNotEquals": {"s3:prefix": "home/${aws:username}"}}`, one("s3:prefix", "home/"), true},
		{"multi-valued variable matches nothing", "", `{"StringEquals": {"x:k": "${x:multi}"}}`, one("x:k", "a", "x:multi", "a", "x:multi", "b"), false},
		{"default value", "", `{"StringEquals": {"x:k": "${aws:userid, 'anonymous'}"}}`, one("x:k", "anonymous"), true},
		{"default unused when present", "", `{"StringEquals": {"x:k": "${aws:userid, 'anonymous'}"}}`, one("x:k", "anonymous", "aws:userid", "AIDAEXAMPLE"), false},
		{"escape ${*} is a literal star", "", `{"StringLike": {"x:k": "a${*}b"}}`, one("x:k", "a*b"), true},
		{"escape ${*} is not a wildcard", "", `{"StringLike": {"x:k": "a${*}b"}}`, one("x:k", "axb"), false},
		{"escape ${?} and ${$}", "", `{"StringEquals": {"x:k": "${?}${$}"}}`, one("x:k", "?$"), true},
		{"substituted value is literal in StringLike", "", `{"StringLike": {"x:k": "${aws:username}/*"}}`, one("x:k", "abc/x", "aws:username", "a*"), false},
		{"substituted value with star matches itself", "", `{"StringLike": {"x:k": "${aws:username}/*"}}`, one("x:k", "a*/x", "aws:username", "a*"), true},
		{"variable in StringLike with wildcards", "", `{"StringLike": {"x:k": "*-${aws:username}-?"}}`, one("x:k", "prod-alice-1", "aws:username", "alice"), true},
		{"variable in StringEqualsIgnoreCase", "", `{"StringEqualsIgnoreCase": {"x:k": "${aws:username}"}}`, one("x:k", "ALICE", "aws:username", "alice"), true},
		{"variable in ArnLike", "", `{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/${aws:username}"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:user/alice", "aws:username", "alice"), true},
		{"variable in ArnLike mismatch", "", `{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/${aws:username}"}}`, one("aws:PrincipalArn", "arn:aws:iam::111122223333:user/bob", "aws:username", "alice"), false},
		{"no Version means 2008-10-17", "none", `{"StringEquals": {"x:k": "${aws:username}"}}`, one("x:k", "${aws:username}"), true},
	})
}

func TestPolicyVariablesInResource(t *testing.T) {
	doc := func(version string) []byte {
		return []byte(`{"Version": "` + version + `", "Statement": [{"Effect": "Allow", "Action": "s3:*",
			"Resource": ["arn:aws:s3:::bucket/home/${aws:username}/*", "arn:aws:s3:::bucket/${aws:PrincipalTag/team, 'shared'}"]}]}`)
	}
	p12, err := Parse(doc(Version2012), IdentityPolicy)
	if err != nil {
		t.Fatal(err)
	}
	p08, err := Parse(doc(Version2008), IdentityPolicy)
	if err != nil {
		t.Fatal(err)
	}
	alice := one("aws:username", "alice")
	cases := []struct {
		name     string
		p        *Policy
		resource string
		ctx      map[string][]string
		want     Decision
	}{
		{"own home", p12, "arn:aws:s3:::bucket/home/alice/a.txt", alice, Allow},
		{"other home", p12, "arn:aws:s3:::bucket/home/bob/a.txt", alice, NotApplicable},
		{"no user name", p12, "arn:aws:s3:::bucket/home//a.txt", nil, NotApplicable},
		{"default value", p12, "arn:aws:s3:::bucket/shared", nil, Allow},
		{"tag value", p12, "arn:aws:s3:::bucket/blue", one("aws:principaltag/team", "blue"), Allow},
		{"tag replaces default", p12, "arn:aws:s3:::bucket/shared", one("aws:principaltag/team", "blue"), NotApplicable},
		{"2008: literal", p08, "arn:aws:s3:::bucket/home/${aws:username}/a.txt", alice, Allow},
		{"2008: not substituted", p08, "arn:aws:s3:::bucket/home/alice/a.txt", alice, NotApplicable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Request{Action: "s3:GetObject", Resource: c.resource, Context: ContextOf(c.ctx)}
			if got := c.p.Evaluate(r); got != c.want {
				t.Errorf("Evaluate = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDecimalAndDateParsing(t *testing.T) {
	nums := []struct {
		a, b string
		cmp  int
	}{
		{"1", "1.0", 0}, {"0.1", "0.10", 0}, {"100", "1e2", 0}, {"-5", "-5.0", 0},
		{"1", "2", -1}, {"-2", "-1", -1}, {"-1", "0", -1}, {"0", "0.0001", -1},
		{"99.999", "100", -1}, {"123456789012345678901234567890", "123456789012345678901234567891", -1},
		{"0.0012", "0.012", -1}, {"12.5", "12.49", 1}, {"1000", "999.9999", 1}, {"1.5e-3", "0.0015", 0},
	}
	for _, n := range nums {
		a, ok1 := parseDecimal(n.a)
		b, ok2 := parseDecimal(n.b)
		if !ok1 || !ok2 {
			t.Fatalf("parseDecimal(%q)=%v, (%q)=%v", n.a, ok1, n.b, ok2)
		}
		if got := cmpDecimal(a, b); got != n.cmp {
			t.Errorf("cmp(%s, %s) = %d, want %d", n.a, n.b, got, n.cmp)
		}
		if got := cmpDecimal(b, a); got != -n.cmp {
			t.Errorf("cmp(%s, %s) = %d, want %d", n.b, n.a, got, -n.cmp)
		}
	}
	for _, bad := range []string{"", "-", ".", "1..2", "1e", "0x10", "NaN", "Inf", " 1", "1 ", "1e9999999", "1,000"} {
		if _, ok := parseDecimal(bad); ok {
			t.Errorf("parseDecimal(%q) accepted", bad)
		}
	}
	dates := []struct {
		s    string
		unix int64
	}{
		{"2025-01-01T00:00:00Z", 1735689600},
		{"2025-01-01", 1735689600},
		{"2025-01", 1735689600},
		{"2025-01-01T00:00Z", 1735689600},
		{"2025-01-01T02:00:00+02:00", 1735689600},
		{"2024-12-31T19:00:00-05:00", 1735689600},
		{"2025-01-01T00:00:00.123Z", 1735689600},
		{"2025-01-01T00:00:00", 1735689600},
		{"1735689600", 1735689600},
		{"1735689600.5", 1735689600},
	}
	for _, d := range dates {
		got, ok := parseDate(d.s)
		if !ok || got.sec != d.unix {
			t.Errorf("parseDate(%q) = %v, %v; want %d", d.s, got, ok, d.unix)
		}
	}
	for _, bad := range []string{"", "2025-13-01", "2025-02-30", "2025-01-01T25:00:00Z", "2025-01-01 00:00:00", "01/02/2025", "2025-01-01T00:00:00Q", "tomorrow", "2025-1-1"} {
		if _, ok := parseDate(bad); ok {
			t.Errorf("parseDate(%q) accepted", bad)
		}
	}
}
