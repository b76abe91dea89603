package awsquery

import (
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/iam"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		body, action, code string
	}{
		{"Action=GetCallerIdentity&Version=2011-06-15", "GetCallerIdentity", ""},
		{"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fapp&RoleSessionName=s&DurationSeconds=900&Policy=%7B%7D&ExternalId=xy", "AssumeRole", ""},
		{"Version=2011-06-15", "", errMissingAction},
		{"Action=GetCallerIdentity", "GetCallerIdentity", errMissingParameter},
		{"Action=GetCallerIdentity&Version=2010-01-01", "GetCallerIdentity", errInvalidAction},
		{"Action=GetSessionToken&Version=2011-06-15", "GetSessionToken", errInvalidAction},
		{"Action=GetCallerIdentity&Action=AssumeRole&Version=2011-06-15", "", awserr.Validation},
		{"Action=AssumeRole&Version=2011-06-15&RoleArn=a&RoleArn=b", "", awserr.Validation},
		{"Action=AssumeRole&Version=2011-06-15&SerialNumber=x", "AssumeRole", awserr.Validation},
		{"Action=AssumeRole&Version=2011-06-15&PolicyArns.member.1.arn=x", "AssumeRole", awserr.Validation},
		{"Action=AssumeRole&Version=2011-06-15&Tags.member.1.Key=x", "AssumeRole", awserr.Validation},
		{"Action=AssumeRole&Version=2011-06-15&Bogus=1", "AssumeRole", awserr.Validation},
		{"Action=GetCallerIdentity&Version=2011-06-15&RoleArn=x", "GetCallerIdentity", awserr.Validation},
		{"Action=%zz", "", awserr.Validation},
	} {
		req, err := Parse([]byte(tc.body))
		if awserr.CodeOf(err) != tc.code || req == nil || req.Action != tc.action {
			t.Errorf("Parse(%q) = %+v, %v; want action %q, code %q", tc.body, req, err, tc.action, tc.code)
		}
	}
}

func TestAudited(t *testing.T) {
	req, err := Parse([]byte("Action=AssumeRole&Version=2011-06-15&RoleArn=r&RoleSessionName=s&DurationSeconds=900&Policy=p"))
	if err != nil {
		t.Fatal(err)
	}
	got := req.Audited()
	if len(got) != 4 || got["roleArn"] != "r" || got["roleSessionName"] != "s" || got["durationSeconds"] != int64(900) || got["policy"] != "p" {
		t.Fatalf("Audited() = %v", got)
	}
	req, _ = Parse([]byte("Action=GetCallerIdentity&Version=2011-06-15"))
	if req.Audited() != nil {
		t.Fatalf("GetCallerIdentity audited %v", req.Audited())
	}
}

func TestIs(t *testing.T) {
	for _, tc := range []struct {
		method, ctype, target string
		want                  bool
	}{
		{"POST", "application/x-www-form-urlencoded; charset=utf-8", "", true},
		{"POST", "application/x-www-form-urlencoded", "", true},
		{"POST", "application/x-amz-json-1.1", "TrentService.ListKeys", false},
		{"POST", "application/x-www-form-urlencoded", "TrentService.ListKeys", false},
		{"GET", "application/x-www-form-urlencoded", "", false},
		{"POST", "", "", false},
	} {
		r := httptest.NewRequest(tc.method, "/", nil)
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		if tc.target != "" {
			r.Header.Set("X-Amz-Target", tc.target)
		}
		if got := Is(r); got != tc.want {
			t.Errorf("Is(%s %q %q) = %v", tc.method, tc.ctype, tc.target, got)
		}
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		err      error
		status   int
		code     string
		typ      string
		internal bool
	}{
		{awserr.New(awserr.AccessDenied, "no"), http.StatusForbidden, "AccessDenied", "Sender", false},
		{awserr.New(awserr.Validation, "bad"), 400, "ValidationError", "Sender", false},
		{awserr.New(awserr.ExpiredToken, "old"), 400, "ExpiredToken", "Sender", false},
		{awserr.New(awserr.UnrecognizedClient, "who"), http.StatusForbidden, "InvalidClientTokenId", "Sender", false},
		{awserr.New(awserr.InvalidSignature, "sig"), http.StatusForbidden, "SignatureDoesNotMatch", "Sender", false},
		{awserr.New(iam.PackedPolicyTooLarge, "big"), 400, "PackedPolicyTooLarge", "Sender", false},
		{awserr.New(awserr.MalformedPolicyDocument, "x"), 400, "MalformedPolicyDocument", "Sender", false},
		{errors.New("disk on fire: secret path /x"), 500, "InternalFailure", "Receiver", true},
		{awserr.New(awserr.KMSInternal, "internal detail"), 500, "InternalFailure", "Receiver", true},
	} {
		status, body, internal := ErrorResponse(tc.err, "req-1")
		var got errorResponse
		if err := xml.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v: %v", tc.err, err)
		}
		if status != tc.status || got.Error.Code != tc.code || got.Error.Type != tc.typ || internal != tc.internal ||
			got.RequestID != "req-1" || got.Xmlns != Namespace {
			t.Errorf("%v: %d %s internal=%v", tc.err, status, body, internal)
		}
		if status == 500 && strings.Contains(string(body), "detail") || strings.Contains(string(body), "fire") {
			t.Errorf("%v: an internal error's text is sent: %s", tc.err, body)
		}
	}
}

// stsReadOnly are the STS operations kmsd serves that CloudTrail marks
// readOnly (both: neither changes a resource).
var stsReadOnly = []string{"GetCallerIdentity", "AssumeRole"}

// secretElements are the STS request parameters and response elements
// that hold a secret: never audited.
var secretElements = []string{"SecretAccessKey", "SessionToken", "TokenCode", "secretAccessKey", "sessionToken", "tokenCode"}

// TestOperationTable checks the STS operation table as awsjson's checks
// the KMS one: every part declared, read-only as CloudTrail marks it, each
// parameter a field of the operation's input and recorded under its
// CloudTrail name, no secret audited, the refused parameters apart from
// the accepted ones.
func TestOperationTable(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range operations {
		if o.name == "" || seen[o.name] {
			t.Errorf("operation %q: no name, or declared twice", o.name)
		}
		seen[o.name] = true
		if o.limit <= 0 || o.limit > BodyLimit() || o.serve == nil {
			t.Errorf("%s: declared without a body limit (within BodyLimit) or a call", o.name)
		}
		if want := slices.Contains(stsReadOnly, o.name); o.readOnly != want {
			t.Errorf("%s: readOnly is %v, CloudTrail's is %v", o.name, o.readOnly, want)
		}
		if (o.input == nil) != (len(o.params) == 0) {
			t.Errorf("%s: parameters %v without an input struct, or the reverse", o.name, o.params)
		}
		var fields []string
		if o.input != nil {
			st := reflect.TypeOf(o.input)
			for i := range st.NumField() {
				fields = append(fields, strings.ToLower(st.Field(i).Name))
			}
		}
		var names []string
		for _, p := range o.params {
			names = append(names, strings.ToLower(p.name))
			if p.audit != "" && p.audit != strings.ToLower(p.name[:1])+p.name[1:] {
				t.Errorf("%s: %s recorded as %q, not CloudTrail's lowerCamel name", o.name, p.name, p.audit)
			}
			if slices.Contains(secretElements, p.name) && p.audit != "" {
				t.Errorf("%s: the secret %s is audited", o.name, p.name)
			}
			if slices.Contains(o.refused, p.name) {
				t.Errorf("%s: %s both accepted and refused", o.name, p.name)
			}
		}
		slices.Sort(fields)
		slices.Sort(names)
		if !slices.Equal(fields, names) {
			t.Errorf("%s: parameters %v, input fields %v", o.name, names, fields)
		}
		for _, r := range o.response {
			if slices.Contains(secretElements, r) {
				t.Errorf("%s: the secret response element %s is audited", o.name, r)
			}
		}
	}
	for _, name := range stsReadOnly {
		if !seen[name] {
			t.Errorf("%s is not served", name)
		}
	}
}

// TestBodyLimits: each operation refuses a body over its own limit.
func TestBodyLimits(t *testing.T) {
	for _, o := range operations {
		body := "Action=" + o.name + "&Version=" + Version
		pad := "&Pad=" + strings.Repeat("x", int(o.limit)-len(body))
		if _, err := Parse([]byte(body + pad)); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("%s: a body over its %d-byte limit: %v", o.name, o.limit, err)
		}
	}
}
