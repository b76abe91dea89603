package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name string
		kind Kind
		doc  string
	}{
		{"default key policy", ResourcePolicy, defaultKeyPolicy},
		{"statement as object", ResourcePolicy, `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}}`},
		{"legacy version", ResourcePolicy, `{"Version": "2008-10-17", "Statement": [{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}`},
		{"no version", IdentityPolicy, `{"Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}`},
		{"key policy statement without Action", ResourcePolicy, `{"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]}`},
		{"key policy statement without Resource", ResourcePolicy, `{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}]}`},
		{"empty Condition", IdentityPolicy, `{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}`},
		{"every operator", IdentityPolicy, `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
			"StringEquals": {"a:a": "x"}, "StringNotEquals": {"a:a": "x"}, "StringEqualsIgnoreCase": {"a:a": "x"}, "StringNotEqualsIgnoreCase": {"a:a": "x"},
			"StringLike": {"a:a": "x*"}, "StringNotLike": {"a:a": "x?"},
			"NumericEquals": {"a:n": 1}, "NumericNotEquals": {"a:n": "1"}, "NumericLessThan": {"a:n": "1.5"}, "NumericLessThanEquals": {"a:n": "-1"},
			"NumericGreaterThan": {"a:n": "1e2"}, "NumericGreaterThanEquals": {"a:n": "0"},
			"DateEquals": {"a:d": "2025-01-01"}, "DateNotEquals": {"a:d": "2025-01-01T00:00:00Z"}, "DateLessThan": {"a:d": 1700000000},
			"DateLessThanEquals": {"a:d": "2025-01-01T00:00:00.5+01:00"}, "DateGreaterThan": {"a:d": "2025-01"}, "DateGreaterThanEquals": {"a:d": "1700000000"},
			"Bool": {"a:b": true}, "BinaryEquals": {"a:x": "AAEC"}, "IpAddress": {"a:ip": ["10.0.0.0/8", "::1"]}, "NotIpAddress": {"a:ip": "192.0.2.1"},
			"ArnEquals": {"a:arn": "arn:aws:iam::111122223333:root"}, "ArnLike": {"a:arn": "arn:aws:iam::*:role/*"},
			"ArnNotEquals": {"a:arn": "arn:aws:iam::111122223333:root"}, "ArnNotLike": {"a:arn": "arn:*"},
			"Null": {"a:a": "true"}, "StringEqualsIfExists": {"a:a": "x"}, "ForAnyValue:StringLike": {"a:s": "x*"},
			"ForAllValues:StringEqualsIgnoreCaseIfExists": {"a:s": ["x", "y"]}}}]}`},
		{"principal forms", ResourcePolicy, `{"Statement": [{"Effect": "Allow", "Principal": {"AWS": [
			"111122223333", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/a", "arn:aws:iam::111122223333:user/path/b",
			"arn:aws:iam::111122223333:role/r", "arn:aws:sts::111122223333:assumed-role/r/s", "arn:aws:sts::111122223333:federated-user/f",
			"arn:aws-us-gov:iam::111122223333:root"],
			"Service": "logs.amazonaws.com", "Federated": "arn:aws:iam::111122223333:saml-provider/idp"}, "Action": "kms:*", "Resource": "*"}]}`},
		{"variable escapes in resource head", IdentityPolicy, `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:${$}::b"}]}`},
		{"literal ${ under 2008", IdentityPolicy, `{"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::${", "Condition": {"StringEquals": {"a:a": "${"}}}]}`},
		{"duplicate Sids in a key policy", ResourcePolicy, `{"Statement": [{"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}, {"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse([]byte(c.doc), c.kind); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	stmt := func(body string) string {
		return `{"Version": "2012-10-17", "Statement": [{"Sid": "First", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}, {"Sid": "Bad", ` + body + `}]}`
	}
	istmt := func(body string) string {
		return `{"Version": "2012-10-17", "Statement": [{` + body + `}]}`
	}
	cases := []struct {
		name    string
		kind    Kind
		doc     string
		stmt    int    // want SyntaxError.Statement
		mention string // the message must contain this
	}{
		{"not JSON", ResourcePolicy, `{"Version": `, -1, "invalid JSON"},
		{"bad JSON syntax", ResourcePolicy, `{"Version" "2012-10-17"}`, -1, "invalid JSON at byte"},
		{"trailing data", ResourcePolicy, defaultKeyPolicy + ` {}`, -1, "unexpected data after"},
		{"not an object", ResourcePolicy, `["Statement"]`, -1, "must be a JSON object"},
		{"duplicate top-level key", ResourcePolicy, `{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}`, -1, `duplicate key "Version"`},
		{"duplicate key in statement", ResourcePolicy, stmt(`"Effect": "Allow", "Effect": "Deny", "Principal": "*"`), -1, `duplicate key "Effect"`},
		{"duplicate condition key", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": "1", "a:a": "2"}}`), -1, `duplicate key "a:a"`},
		{"unknown version", ResourcePolicy, `{"Version": "2012-02-01", "Statement": []}`, -1, `"2012-02-01" is not a policy language version`},
		{"version not a string", ResourcePolicy, `{"Version": 2012, "Statement": []}`, -1, "Version must be a string"},
		{"Id not a string", ResourcePolicy, `{"Id": ["x"], "Statement": []}`, -1, "Id must be a string"},
		{"unknown top-level element", ResourcePolicy, `{"Version": "2012-10-17", "Statment": []}`, -1, `unknown top-level element "Statment"`},
		{"no statement", ResourcePolicy, `{"Version": "2012-10-17"}`, -1, "no Statement"},
		{"empty statement list", ResourcePolicy, `{"Statement": []}`, -1, "empty list"},
		{"statement not an object", ResourcePolicy, `{"Statement": ["x"]}`, 0, "a statement must be an object"},
		{"statement a string", ResourcePolicy, `{"Statement": "x"}`, -1, "Statement must be an object or a list"},
		{"unknown statement element", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Actions": "x"`), 1, `unknown element "Actions"`},
		{"lower-case element name", ResourcePolicy, stmt(`"effect": "Allow", "Principal": "*"`), 1, `unknown element "effect"`},
		{"missing Effect", ResourcePolicy, stmt(`"Principal": "*", "Action": "*", "Resource": "*"`), 1, "Effect is missing"},
		{"bad Effect", ResourcePolicy, stmt(`"Effect": "allow", "Principal": "*", "Action": "*", "Resource": "*"`), 1, `Effect must be "Allow" or "Deny", not "allow"`},
		{"Effect not a string", ResourcePolicy, stmt(`"Effect": true, "Principal": "*"`), 1, "not a boolean"},
		{"Sid not a string", ResourcePolicy, stmt(`"Sid2": 1`), 1, `unknown element "Sid2"`},
		{"missing principal", ResourcePolicy, stmt(`"Effect": "Allow", "Action": "*", "Resource": "*"`), 1, "Principal is missing"},
		{"principal in identity policy", IdentityPolicy, istmt(`"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"`), 0, "identity policy cannot name principals"},
		{"Principal and NotPrincipal", ResourcePolicy, stmt(`"Effect": "Deny", "Principal": "*", "NotPrincipal": "*", "Action": "*", "Resource": "*"`), 1, "both Principal and NotPrincipal"},
		{"NotPrincipal with Allow", ResourcePolicy, stmt(`"Effect": "Allow", "NotPrincipal": {"AWS": "111122223333"}, "Action": "*", "Resource": "*"`), 1, "NotPrincipal can only be used with"},
		{"principal string", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": "111122223333", "Action": "*", "Resource": "*"`), 1, `not the string "111122223333"`},
		{"principal empty object", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {}, "Action": "*", "Resource": "*"`), 1, "names no principal"},
		{"principal empty list", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": []}, "Action": "*", "Resource": "*"`), 1, "Principal.AWS is an empty list"},
		{"principal number", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": 111122223333}, "Action": "*", "Resource": "*"`), 1, "Principal.AWS must be a string or a list of strings, not a number"},
		{"principal wildcard ARN", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}, "Action": "*", "Resource": "*"`), 1, "wildcard may only stand alone"},
		{"principal group", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:group/admins"}, "Action": "*", "Resource": "*"`), 1, "IAM groups cannot be principals"},
		{"principal short account", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "1111"}, "Action": "*", "Resource": "*"`), 1, `invalid principal "1111"`},
		{"principal with region", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam:us-east-1:111122223333:root"}, "Action": "*", "Resource": "*"`), 1, "no region"},
		{"principal key ARN", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "arn:aws:kms::111122223333:key/x"}, "Action": "*", "Resource": "*"`), 1, "expected an account root"},
		{"principal session without name", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"AWS": "arn:aws:sts::111122223333:assumed-role/r"}, "Action": "*", "Resource": "*"`), 1, "assumed-role/ROLE-NAME/SESSION-NAME"},
		{"principal type unknown", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"IAM": "x"}, "Action": "*", "Resource": "*"`), 1, `unknown principal type "IAM"`},
		{"principal canonical user", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"CanonicalUser": "abc"}, "Action": "*", "Resource": "*"`), 1, "CanonicalUser"},
		{"service wildcard", ResourcePolicy, stmt(`"Effect": "Allow", "Principal": {"Service": "*.amazonaws.com"}, "Action": "*", "Resource": "*"`), 1, "Principal.Service"},
		{"Action and NotAction", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "NotAction": "kms:Decrypt", "Resource": "*"`), 0, "both Action and NotAction"},
		{"missing Action in identity policy", IdentityPolicy, istmt(`"Effect": "Allow", "Resource": "*"`), 0, "Action is missing"},
		{"missing Resource in identity policy", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*"`), 0, "Resource is missing"},
		{"action without service", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "Encrypt", "Resource": "*"`), 0, `invalid action "Encrypt"`},
		{"action with wildcard service", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "km*:Encrypt", "Resource": "*"`), 0, `invalid action "km*:Encrypt"`},
		{"action empty list", IdentityPolicy, istmt(`"Effect": "Allow", "Action": [], "Resource": "*"`), 0, "Action is an empty list"},
		{"action not a string", IdentityPolicy, istmt(`"Effect": "Allow", "Action": ["kms:Encrypt", 3], "Resource": "*"`), 0, "Action[1] must be a string"},
		{"action object", IdentityPolicy, istmt(`"Effect": "Allow", "Action": {"kms": "Encrypt"}, "Resource": "*"`), 0, "Action must be a string or a list of strings, not an object"},
		{"Resource and NotResource", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"`), 0, "both Resource and NotResource"},
		{"resource not an ARN", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "key/1234"`), 0, `invalid resource "key/1234"`},
		{"resource short ARN", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "arn:aws:kms:us-east-1"`), 0, `invalid resource "arn:aws:kms:us-east-1"`},
		{"resource service wildcard", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "arn:aws:*:us-east-1:111122223333:key/x"`), 0, "service field"},
		{"resource variable before the fifth colon", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "arn:aws:kms:${aws:RequestedRegion}:111122223333:key/x"`), 0, "only allowed in the resource part"},
		{"unterminated variable", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/${aws:username"`), 0, "unterminated policy variable"},
		{"empty variable", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": "${}"}}`), 0, "empty policy variable"},
		{"bad default", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": "${aws:username, anonymous}"}}`), 0, "single quotes"},
		{"duplicate Sid in identity policy", IdentityPolicy, `{"Statement": [{"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"}, {"Sid": "A", "Effect": "Deny", "Action": "*", "Resource": "*"}]}`, 1, "Sids must be unique"},
		{"condition not an object", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": []`), 0, "Condition must be an object"},
		{"unknown operator", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEqual": {"a:a": "x"}}`), 0, `unknown condition operator "StringEqual"`},
		{"operator case", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"stringequals": {"a:a": "x"}}`), 0, `unknown condition operator "stringequals"`},
		{"unknown set prefix", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"ForSomeValues:StringEquals": {"a:a": "x"}}`), 0, "unknown condition operator"},
		{"NullIfExists", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NullIfExists": {"a:a": "true"}}`), 0, "Null operator takes neither"},
		{"ForAnyValue:Null", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"ForAnyValue:Null": {"a:a": "true"}}`), 0, "Null operator takes neither"},
		{"operator block not an object", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": "x"}`), 0, "Condition.StringEquals must be an object"},
		{"operator block empty", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {}}`), 0, "has no condition key"},
		{"condition value null", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": null}}`), 0, "Condition.StringEquals.a:a must be a string, number, boolean or a list of them, not null"},
		{"condition value object", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": {"b": 1}}}`), 0, "not an object"},
		{"condition value empty list", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": []}}`), 0, "empty list"},
		{"condition value nested list", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"a:a": [["x"]]}}`), 0, "a:a[0] must be a string, number or boolean"},
		{"bad number", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"a:n": "ten"}}`), 0, `Condition.NumericLessThan.a:n: "ten" is not a number`},
		{"number variable", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"a:n": "${a:m}"}}`), 0, "is not a number"},
		{"bad date", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": "next week"}}`), 0, `"next week" is not a date`},
		{"bad bool", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "yes"}}`), 0, `"yes" is not a boolean`},
		{"bool made of escapes", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"a:b": "${$}"}}`), 0, `"${$}" is not a boolean`},
		{"bad null", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {"a:a": 1}}`), 0, `"1" is not a boolean`},
		{"bad base64", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"BinaryEquals": {"a:x": "not base64!"}}`), 0, "is not base64"},
		{"bad IP", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}`), 0, "is not an IP address or CIDR range"},
		{"bad IP host", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "example.com"}}`), 0, "Condition.NotIpAddress.aws:SourceIp"},
		{"empty condition key", IdentityPolicy, istmt(`"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"": "x"}}`), 0, "empty condition key"},
		{"too deep", IdentityPolicy, strings.Repeat("[", 40) + strings.Repeat("]", 40), -1, "nested more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), c.kind)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %v, want a *SyntaxError", err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %q", err, c.mention)
			}
			if se.Statement != c.stmt {
				t.Errorf("Statement = %d, want %d (%v)", se.Statement, c.stmt, err)
			}
			if !IsSyntaxError(fmt.Errorf("wrapped: %w", err)) {
				t.Error("IsSyntaxError(wrapped) = false")
			}
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Parse([]byte(`{"Version": "2012-10-17", "Statement": [
		{"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
		{"Sid": "UseOfTheKey", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"kms:X": "x"}}}]}`), ResourcePolicy)
	want := `malformed policy document: Statement[1] (Sid "UseOfTheKey"): Condition.NumericLessThan.kms:X: "x" is not a number`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if _, err := Parse([]byte(`{}`), Kind(9)); err == nil || IsSyntaxError(err) {
		t.Errorf("invalid kind: %v", err)
	}
}
