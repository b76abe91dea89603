package sigv4

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

// authorizationSeeds are Authorization headers worth mutating: real ones from
// both header sets, and each kind of malformation.
var authorizationSeeds = []string{
	"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
	"AWS4-HMAC-SHA256 Credential=AKIAKMSDTEST00000001/20250101/eu-west-3/kms/aws4_request, SignedHeaders=" + goSDKSignedHeaders + ", Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"AWS4-HMAC-SHA256 Credential=A/20250101/eu-west-3/kms/aws4_request,SignedHeaders=host;x-amz-date,Signature=0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	"AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
	"AWS4-HMAC-SHA256 Credential=A/B/C/D/E, Credential=A/B/C/D/E",
	"AWS4-HMAC-SHA256 Credential=A/B/C/D, SignedHeaders=host, Signature=zz",
	"AWS4-HMAC-SHA256 Credential=A/B/C/D/E/F, SignedHeaders=Host;X-Amz-Date, Signature=",
	"AWS4-HMAC-SHA256 Credential=A//C/D/E, SignedHeaders=x-amz-date;host, Signature=ab,",
	"AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=host;;x, Signature=ab, Extra=1",
	"AWS4-HMAC-SHA256 Credential",
	"AWS4-HMAC-SHA256",
	"AWS4-HMAC-SHA256  ,,",
	"AWS4-ECDSA-P256-SHA256 Credential=A/B/C/D/E",
	"AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
	"Bearer eyJhbGciOi",
	"",
	"\x00\xff AWS4-HMAC-SHA256 Credential=\xe1\x88\xb4",
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range authorizationSeeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, header string, haveDate bool) {
		a, err := parseAuthorization(header, haveDate)
		if err != nil {
			var ae *awserr.Error
			if !errors.As(err, &ae) || ae.Code != awserr.IncompleteSignature {
				t.Fatalf("error %v (%T) is not an IncompleteSignatureException", err, err)
			}
			// Echoed values are bounded, so messages are too.
			if len(ae.Message) > 4*maxEcho+1024 {
				t.Fatalf("message of %d bytes", len(ae.Message))
			}
			return
		}
		if len(a.signature) != 32 {
			t.Fatalf("signature of %d bytes", len(a.signature))
		}
		for _, s := range []string{a.accessKeyID, a.date, a.region, a.service, a.terminator} {
			if s == "" || strings.Contains(s, "/") {
				t.Fatalf("bad scope element %q in %+v", s, a)
			}
		}
		if len(a.signedHeaders) == 0 || !slices.IsSorted(a.signedHeaders) || len(slices.Compact(slices.Clone(a.signedHeaders))) != len(a.signedHeaders) {
			t.Fatalf("signed headers %q not sorted and unique", a.signedHeaders)
		}
		if strings.Join(a.signedHeaders, ";") != a.signedHeadersRaw || strings.ToLower(a.signedHeadersRaw) != a.signedHeadersRaw {
			t.Fatalf("signed headers %q vs raw %q", a.signedHeaders, a.signedHeadersRaw)
		}
		// Rendering the parsed header the way the SDKs do must parse to the
		// same thing.
		again, err := parseAuthorization("AWS4-HMAC-SHA256 Credential="+a.accessKeyID+"/"+a.scope()+
			", SignedHeaders="+a.signedHeadersRaw+", Signature="+hex.EncodeToString(a.signature), true)
		if err != nil {
			t.Fatalf("re-rendered header does not parse: %v", err)
		}
		if again.accessKeyID != a.accessKeyID || again.scope() != a.scope() ||
			again.signedHeadersRaw != a.signedHeadersRaw || string(again.signature) != string(a.signature) {
			t.Fatalf("round trip changed %+v into %+v", a, again)
		}
	})
}

// FuzzVerify drives Verify with arbitrary header, date, path, query, body
// and one extra header, starting from validly signed requests. It must never
// panic, must return only the documented AWS errors, must be deterministic,
// and must accept no request that carries an X-Amz-* header it did not sign.
func FuzzVerify(f *testing.F) {
	for _, set := range []headerSet{goSDK, botocore} {
		r := newSignedRequest(f, "http://127.0.0.1:4599", signParams{set: set})
		for _, extra := range [][2]string{{"", ""}, {"X-Forwarded-For", "203.0.113.9"}, {"X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLETOKEN"}, {"x-amz-target", "TrentService.CreateKey"}, {"X-Amz-User-Agent", "aws-sdk-js/3.0"}} {
			f.Add(r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), "/", "", r.Host, []byte(testBody), extra[0], extra[1])
		}
	}
	for _, s := range authorizationSeeds {
		f.Add(s, "20250101T001000Z", "//a/../b%2F", "a=1&b=%zz", "h:1", []byte{}, "", "")
	}
	v := newTestVerifier(t0)
	allowed := []string{awserr.MissingAuthenticationTok, awserr.IncompleteSignature, awserr.InvalidSignature, awserr.UnrecognizedClient}
	f.Fuzz(func(t *testing.T, authz, amzDate, path, query, host string, body []byte, extraName, extraValue string) {
		build := func() *http.Request {
			r := &http.Request{
				Method: http.MethodPost,
				URL:    &url.URL{Path: path, RawQuery: query},
				Host:   host,
				Header: http.Header{
					"Authorization":         {authz},
					"X-Amz-Date":            {amzDate},
					"Content-Type":          {"application/x-amz-json-1.1"},
					"X-Amz-Target":          {testTarget},
					"Amz-Sdk-Invocation-Id": {"9b0a4b5e-1f0c-4c4e-8d3a-2f7e2b9c1d11"},
					"Amz-Sdk-Request":       {"attempt=1; max=3"},
					"Accept-Encoding":       {"identity"},
				},
				ContentLength: int64(len(body)),
			}
			if extraName != "" {
				// As received: a second key differing only in case is
				// what a request built in process may carry.
				r.Header[extraName] = append(r.Header[extraName], extraValue)
			}
			return r
		}
		res, err := v.Verify(context.Background(), build(), body)
		res2, err2 := v.Verify(context.Background(), build(), body)
		if res != res2 || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: (%v, %v) then (%v, %v)", res, err, res2, err2)
		}
		if err == nil {
			if res.AccessKeyID != testAccessKey || res.Region != testRegion {
				t.Fatalf("accepted with Result %+v", res)
			}
			a, err := parseAuthorization(authz, true)
			if err != nil {
				t.Fatalf("accepted an Authorization header that does not parse: %v", err)
			}
			for key := range build().Header {
				if name := strings.ToLower(key); strings.HasPrefix(name, "x-amz-") && !slices.Contains(a.signedHeaders, name) {
					t.Fatalf("accepted with %s unsigned (signed: %s)", key, a.signedHeadersRaw)
				}
			}
			return
		}
		var ae *awserr.Error
		if !errors.As(err, &ae) || !slices.Contains(allowed, ae.Code) {
			t.Fatalf("unexpected error %v (%T)", err, err)
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Fatalf("secret in error: %v", err)
		}
	})
}

// FuzzCanonicalRequest checks the pieces of the canonical request that are
// rebuilt from what the client sent: the path, the query string and header
// values. Each must be a canonical form: made only of the characters SigV4
// allows there, and a fixed point (canonicalizing it again changes
// nothing), so that two requests the client could have signed differently
// never canonicalize alike by accident of the implementation.
func FuzzCanonicalRequest(f *testing.F) {
	seeds := [][3]string{
		{"/", "", "application/x-amz-json-1.1"},
		{"//a/./b/../c%20d/", "b=2&a=1&a=0&c=x%20y&d=%E1%88%B4", "  a   b  "},
		{"/../%2E/..", "a=1&&b=%zz&=&x+y=+", "\t x \t"},
		{"/ሴ/a:b@c!$", "ሴ=bar&Z=1&a=b=c", ""},
		{"", "%", "\x00 \xff"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, path, query, headerValue string) {
		uris := canonicalURIs(path)
		if len(uris) < 1 || len(uris) > 2 || (len(uris) == 2 && uris[0] == uris[1]) {
			t.Fatalf("canonicalURIs(%q) = %q", path, uris)
		}
		// The AWS form is an absolute path; the Go SDK's is the path as
		// sent, encoded again (net/http hands over "*" for "OPTIONS *").
		if !strings.HasPrefix(uris[0], "/") {
			t.Fatalf("canonicalURIs(%q) = %q", path, uris)
		}
		for _, u := range uris {
			if !isCanonicalEncoding(u, "/") {
				t.Fatalf("canonicalURIs(%q) has %q", path, u)
			}
		}
		norm := removeDotSegments(path)
		if again := removeDotSegments(norm); again != norm {
			t.Fatalf("removeDotSegments not idempotent: %q -> %q -> %q", path, norm, again)
		}
		for seg := range strings.SplitSeq(strings.TrimSuffix(strings.TrimPrefix(norm, "/"), "/"), "/") {
			if seg == "." || seg == ".." || (seg == "" && norm != "/") {
				t.Fatalf("removeDotSegments(%q) = %q keeps segment %q", path, norm, seg)
			}
		}

		q, err := canonicalQuery(query)
		if err != nil {
			if awserr.CodeOf(err) != awserr.IncompleteSignature {
				t.Fatalf("canonicalQuery(%q): %v", query, err)
			}
		} else {
			if !isCanonicalEncoding(q, "=&") {
				t.Fatalf("canonicalQuery(%q) = %q", query, q)
			}
			if again, err := canonicalQuery(q); err != nil || again != q {
				t.Fatalf("canonicalQuery not a fixed point: %q -> %q -> %q (%v)", query, q, again, err)
			}
			if q != "" {
				pairs := strings.Split(q, "&")
				if !slices.IsSortedFunc(pairs, func(a, b string) int {
					an, av, _ := strings.Cut(a, "=")
					bn, bv, _ := strings.Cut(b, "=")
					if c := strings.Compare(an, bn); c != 0 {
						return c
					}
					return strings.Compare(av, bv)
				}) {
					t.Fatalf("canonicalQuery(%q) = %q is not sorted", query, q)
				}
			}
		}

		v := string(appendHeaderValue(nil, headerValue))
		if v != strings.TrimSpace(v) || strings.Contains(v, "  ") {
			t.Fatalf("appendHeaderValue(%q) = %q", headerValue, v)
		}
		if again := string(appendHeaderValue(nil, v)); again != v {
			t.Fatalf("appendHeaderValue not idempotent: %q -> %q -> %q", headerValue, v, again)
		}
	})
}

// isCanonicalEncoding reports whether s holds only RFC 3986 unreserved
// characters, the bytes of extra, and %XX escapes with uppercase hex.
func isCanonicalEncoding(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUnreserved(c), strings.IndexByte(extra, c) >= 0:
		case c == '%' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
