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

// FuzzVerify drives Verify with arbitrary header, date, path, query and body,
// starting from validly signed requests. It must never panic, must return
// only the documented AWS errors, and must be deterministic.
func FuzzVerify(f *testing.F) {
	for _, set := range []headerSet{goSDK, botocore} {
		r := newSignedRequest(f, "http://127.0.0.1:4599", signParams{set: set})
		f.Add(r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), "/", "", r.Host, []byte(testBody))
	}
	for _, s := range authorizationSeeds {
		f.Add(s, "20250101T001000Z", "//a/../b%2F", "a=1&b=%zz", "h:1", []byte{})
	}
	v := newTestVerifier(t0)
	allowed := []string{awserr.MissingAuthenticationTok, awserr.IncompleteSignature, awserr.InvalidSignature, awserr.UnrecognizedClient}
	f.Fuzz(func(t *testing.T, authz, amzDate, path, query, host string, body []byte) {
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
