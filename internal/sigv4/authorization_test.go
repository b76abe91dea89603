package sigv4

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

func TestParseAuthorization(t *testing.T) {
	const (
		cred = "Credential=AKID/20250101/eu-west-3/kms/aws4_request"
		sh   = "SignedHeaders=content-type;host;x-amz-date;x-amz-target"
		sig  = "Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	good := "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig
	wantGood := func(t *testing.T, a authorization) {
		t.Helper()
		if a.accessKeyID != "AKID" || a.scope() != "20250101/eu-west-3/kms/aws4_request" ||
			!slices.Equal(a.signedHeaders, []string{"content-type", "host", "x-amz-date", "x-amz-target"}) ||
			len(a.signature) != 32 || a.signature[0] != 0x01 {
			t.Errorf("parsed %+v", a)
		}
	}

	cases := []struct {
		name     string
		header   string
		noDate   bool
		wantMsg  string // exact message; "" means success
		contains string // substring of the message, when the exact text is long
	}{
		{name: "go sdk form", header: good},
		{name: "no spaces after commas", header: "AWS4-HMAC-SHA256 " + cred + "," + sh + "," + sig},
		{name: "any parameter order", header: "AWS4-HMAC-SHA256 " + sig + ", " + cred + ", " + sh},
		{name: "several spaces", header: "AWS4-HMAC-SHA256   " + cred + " ,  " + sh + ",   " + sig},
		{name: "uppercase hex", header: "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + "Signature=" + strings.ToUpper(sig[10:20]) + sig[20:]},

		{name: "missing everything", header: "AWS4-HMAC-SHA256",
			wantMsg: "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. " +
				"Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256"},
		{name: "missing everything and date", header: "AWS4-HMAC-SHA256", noDate: true,
			wantMsg: "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. " +
				"Authorization header requires 'SignedHeaders' parameter. " +
				"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256"},
		{name: "missing credential", header: "AWS4-HMAC-SHA256 " + sh + ", " + sig,
			wantMsg: "Authorization header requires 'Credential' parameter. Authorization=AWS4-HMAC-SHA256 " + sh + ", " + sig},
		{name: "missing signature and signed headers", header: "AWS4-HMAC-SHA256 " + cred,
			wantMsg: "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
				"Authorization=AWS4-HMAC-SHA256 " + cred},
		{name: "empty signature value", header: "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=",
			contains: "Authorization header requires 'Signature' parameter. Authorization="},
		{name: "only the date missing", header: good, noDate: true,
			wantMsg: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=" + good},
		{name: "not AWS", header: "Bearer abc",
			wantMsg: "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. " +
				"Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer abc"},
		{name: "SigV4a", header: "AWS4-ECDSA-P256-SHA256 " + cred + ", " + sh + ", " + sig,
			wantMsg: "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'. Only 'AWS4-HMAC-SHA256' is supported."},
		{name: "SigV2", header: "AWS AKID:c2lnbmF0dXJl",
			wantMsg: "Unsupported AWS 'algorithm': 'AWS'. Only 'AWS4-HMAC-SHA256' is supported."},
		{name: "lowercase algorithm", header: "aws4-hmac-sha256 " + cred + ", " + sh + ", " + sig,
			contains: "Authorization header requires 'Credential' parameter."},
		{name: "duplicated credential", header: good + ", " + cred,
			wantMsg: "Authorization header has more than one 'Credential' parameter."},
		{name: "duplicated signature", header: good + ", " + sig,
			wantMsg: "Authorization header has more than one 'Signature' parameter."},
		{name: "unknown parameter", header: good + ", Foo=bar",
			wantMsg: "Authorization header has an unknown parameter 'Foo'. Expected only 'Credential', 'SignedHeaders' and 'Signature'."},
		{name: "lowercase parameter name", header: "AWS4-HMAC-SHA256 credential=AKID/20250101/eu-west-3/kms/aws4_request, " + sh + ", " + sig,
			contains: "unknown parameter 'credential'"},
		{name: "space before equals", header: "AWS4-HMAC-SHA256 Credential =AKID/20250101/eu-west-3/kms/aws4_request, " + sh + ", " + sig,
			contains: "unknown parameter 'Credential '"},
		{name: "missing equals", header: good + ", garbage",
			contains: "Invalid key=value pair (missing equal-sign) in Authorization header (hashed with SHA-256 and encoded with Base64): '"},
		{name: "trailing comma", header: good + ",",
			contains: "Invalid key=value pair (missing equal-sign)"},
		{name: "empty parameter", header: "AWS4-HMAC-SHA256 " + cred + ",, " + sh + ", " + sig,
			contains: "Invalid key=value pair (missing equal-sign)"},
		{name: "credential with 4 elements", header: "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-3/kms, " + sh + ", " + sig,
			wantMsg: "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKID/20250101/eu-west-3/kms'"},
		{name: "credential with 6 elements", header: "AWS4-HMAC-SHA256 Credential=AK/ID/20250101/eu-west-3/kms/aws4_request, " + sh + ", " + sig,
			contains: "Credential must have exactly 5 slash-delimited elements"},
		{name: "credential with empty element", header: "AWS4-HMAC-SHA256 Credential=AKID//eu-west-3/kms/aws4_request, " + sh + ", " + sig,
			contains: "Credential must have exactly 5 slash-delimited elements"},
		{name: "uppercase signed header", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=content-type;Host;x-amz-date, " + sig,
			wantMsg: "Invalid SignedHeaders 'content-type;Host;x-amz-date': header names must be lowercase."},
		{name: "unsorted signed headers", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;content-type;x-amz-date, " + sig,
			wantMsg: "Invalid SignedHeaders 'host;content-type;x-amz-date': header names must be sorted and appear only once."},
		{name: "duplicated signed header", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;host;x-amz-date, " + sig,
			wantMsg: "Invalid SignedHeaders 'host;host;x-amz-date': header names must be sorted and appear only once."},
		{name: "empty signed header", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sig,
			wantMsg: "Invalid SignedHeaders 'host;;x-amz-date': empty header name."},
		{name: "trailing semicolon", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date;, " + sig,
			wantMsg: "Invalid SignedHeaders 'host;x-amz-date;': empty header name."},
		{name: "signed header not a token", header: "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x amz, " + sig,
			wantMsg: "Invalid SignedHeaders 'host;x amz': 'x amz' is not a valid header name."},
		{name: "signature not hex", header: "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + strings.Repeat("g", 64),
			wantMsg: "Signature must be 64 hexadecimal characters, got '" + strings.Repeat("g", 64) + "'."},
		{name: "signature too short", header: "AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=abcd",
			wantMsg: "Signature must be 64 hexadecimal characters, got 'abcd'."},
		{name: "signature too long", header: good + "00",
			contains: "Signature must be 64 hexadecimal characters"},
		{name: "huge header is not echoed in full", header: "Bearer " + strings.Repeat("x", 10000),
			contains: strings.Repeat("x", maxEcho-len("Bearer ")) + "..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseAuthorization(tc.header, !tc.noDate)
			if tc.wantMsg == "" && tc.contains == "" {
				if err != nil {
					t.Fatalf("parseAuthorization: %v", err)
				}
				wantGood(t, a)
				return
			}
			var ae *awserr.Error
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *awserr.Error", err)
			}
			if ae.Code != awserr.IncompleteSignature {
				t.Errorf("code = %s, want %s", ae.Code, awserr.IncompleteSignature)
			}
			if tc.wantMsg != "" && ae.Message != tc.wantMsg {
				t.Errorf("message = %q\nwant      %q", ae.Message, tc.wantMsg)
			}
			if !strings.Contains(ae.Message, tc.contains) {
				t.Errorf("message = %q, want it to contain %q", ae.Message, tc.contains)
			}
			if len(ae.Message) > 2*maxEcho {
				t.Errorf("message of %d bytes", len(ae.Message))
			}
		})
	}
}
