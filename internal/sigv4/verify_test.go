package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kmsd/kmsd/internal/awserr"
)

const (
	testAccessKey = "AKIAKMSDTEST00000001"
	testSecret    = "kmsdTestSecret/0123456789+abcdefghijABCDEFGHIJ"
	testRegion    = "eu-west-3"
	// testOtherRegion is served too (newTestVerifier).
	testOtherRegion = "ap-northeast-1"
	testBody        = `{"KeyId":"alias/app","Plaintext":"aGVsbG8=","EncryptionContext":{"tenant":"t1"}}`
	testTarget      = "TrentService.Encrypt"

	// What each client signs for a KMS call, as observed on the wire:
	// aws-sdk-go-v2 signs everything but User-Agent; botocore (boto3, the AWS
	// CLI) signs only these four.
	goSDKSignedHeaders    = "accept-encoding;amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-target"
	botocoreSignedHeaders = "content-type;host;x-amz-date;x-amz-target"
)

// t0 is when test requests are signed.
var t0 = time.Date(2025, 1, 1, 0, 10, 0, 0, time.UTC)

// headerSet names the set of headers a client signs.
type headerSet int

const (
	goSDK    headerSet = iota // aws-sdk-go-v2
	botocore                  // boto3, AWS CLI
)

func (h headerSet) String() string {
	if h == goSDK {
		return "go-sdk"
	}
	return "botocore"
}

// signParams is what a client signs with; zero fields take test defaults.
type signParams struct {
	set           headerSet
	accessKey     string
	secret        string
	sessionToken  string
	region        string
	service       string
	at            time.Time
	contentSHA256 string // when set, sent (and so signed) as X-Amz-Content-Sha256
	path          string // request path and query, default "/"
}

func (p *signParams) defaults() {
	if p.accessKey == "" {
		p.accessKey = testAccessKey
	}
	if p.secret == "" {
		p.secret = testSecret
	}
	if p.region == "" {
		p.region = testRegion
	}
	if p.service == "" {
		p.service = "kms"
	}
	if p.at.IsZero() {
		p.at = t0
	}
	if p.path == "" {
		p.path = "/"
	}
}

// newSignedRequest builds an awsJson1.1 KMS request the way the chosen client
// sends it and signs it with aws-sdk-go-v2's own SigV4 signer. baseURL is a
// test server's URL (or any URL, for direct calls).
func newSignedRequest(t testing.TB, baseURL string, p signParams) *http.Request {
	t.Helper()
	p.defaults()
	r, err := http.NewRequest(http.MethodPost, baseURL+p.path, strings.NewReader(testBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", testTarget)
	r.Header.Set("User-Agent", "kmsd-test/1.0") // never signed by any client
	if p.contentSHA256 != "" {
		r.Header.Set("X-Amz-Content-Sha256", p.contentSHA256)
	}
	switch p.set {
	case goSDK:
		r.Header.Set("Amz-Sdk-Invocation-Id", "9b0a4b5e-1f0c-4c4e-8d3a-2f7e2b9c1d11")
		r.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
		r.Header.Set("Accept-Encoding", "identity")
	case botocore:
		// The SDK signer signs content-length whenever it is positive;
		// botocore never does. Hide it while signing.
		r.ContentLength = 0
	}
	payloadHash := p.contentSHA256
	if payloadHash == "" {
		payloadHash = sha256Hex([]byte(testBody))
	}
	creds := aws.Credentials{AccessKeyID: p.accessKey, SecretAccessKey: p.secret, SessionToken: p.sessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, payloadHash, p.service, p.region, p.at); err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
	r.ContentLength = int64(len(testBody))

	// Guard the test itself: the signer must have signed exactly the set
	// the real client signs.
	want := goSDKSignedHeaders
	if p.set == botocore {
		want = botocoreSignedHeaders
	}
	if p.contentSHA256 != "" {
		want = insertSorted(want, "x-amz-content-sha256")
	}
	if p.sessionToken != "" {
		want = insertSorted(want, "x-amz-security-token")
	}
	if got := r.Header.Get("Authorization"); !strings.Contains(got, "SignedHeaders="+want+",") {
		t.Fatalf("signer produced %q, want SignedHeaders=%s", got, want)
	}
	return r
}

func insertSorted(list, name string) string {
	names := strings.Split(list, ";")
	names = append(names, name)
	for i := len(names) - 1; i > 0 && names[i] < names[i-1]; i-- {
		names[i], names[i-1] = names[i-1], names[i]
	}
	return strings.Join(names, ";")
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func newTestVerifier(now time.Time) *Verifier {
	return &Verifier{
		Service: "kms",
		Regions: []string{testOtherRegion, testRegion},
		Lookup:  staticLookup(map[string]string{testAccessKey: testSecret}),
		Now:     func() time.Time { return now },
	}
}

// verifyDirect calls Verify on the client-side request itself, as code that
// builds requests in process would.
func verifyDirect(t testing.TB, v *Verifier, r *http.Request) (Result, error) {
	t.Helper()
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			t.Fatal(err)
		}
	}
	return v.Verify(context.Background(), r, body)
}

// verifyServer sends r to a real net/http server and verifies there, so that
// r.Host, Content-Length and header canonicalization are exactly what a
// server sees. r's URL must point at srv.
type verifyServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	v   *Verifier
	res Result
	err error
}

func newVerifyServer(t testing.TB) *verifyServer {
	vs := &verifyServer{}
	vs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		vs.mu.Lock()
		vs.res, vs.err = vs.v.Verify(r.Context(), r, body)
		vs.mu.Unlock()
	}))
	t.Cleanup(vs.srv.Close)
	return vs
}

func (vs *verifyServer) verify(t testing.TB, v *Verifier, r *http.Request) (Result, error) {
	t.Helper()
	vs.mu.Lock()
	vs.v, vs.res, vs.err = v, Result{}, nil
	vs.mu.Unlock()
	resp, err := vs.srv.Client().Do(r)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.res, vs.err
}

// setBody replaces the request body after signing.
func setBody(r *http.Request, body string) {
	r.Body = io.NopCloser(strings.NewReader(body))
	r.GetBody = nil
	r.ContentLength = int64(len(body))
}

// editAuthorization rewrites the Authorization header after signing.
func editAuthorization(r *http.Request, edit func(string) string) {
	r.Header.Set("Authorization", edit(r.Header.Get("Authorization")))
}

func replaceIn(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

const msgMismatch = msgSignatureMismatch

// TestVerify runs every case twice, through a real HTTP server and by direct
// call, for both header sets.
func TestVerify(t *testing.T) {
	cases := []struct {
		name     string
		sign     func(*signParams)       // signing parameters
		mutate   func(*http.Request)     // after signing, before sending
		now      time.Time               // verifier clock; zero means t0
		config   func(*Verifier)         // verifier changes
		wantCode string                  // "" means success
		wantMsg  string                  // exact message, when set
		check    func(*testing.T, error) // extra checks on the error
	}{
		{name: "ok"},
		{name: "ok unsigned header changed",
			mutate: func(r *http.Request) { r.Header.Set("User-Agent", "someone-else/2.0") }},
		{name: "ok unsigned header added",
			mutate: func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }},
		{name: "ok signed 14 minutes ago", now: t0.Add(14 * time.Minute)},
		{name: "ok signed 14 minutes ahead", now: t0.Add(-14 * time.Minute)},
		{name: "ok signed exactly 15 minutes ago", now: t0.Add(15 * time.Minute)},
		{name: "ok signed exactly 15 minutes ahead", now: t0.Add(-15 * time.Minute)},
		{name: "ok custom skew", now: t0.Add(4 * time.Minute),
			config: func(v *Verifier) { v.MaxSkew = 5 * time.Minute }},
		{name: "ok content sha256 signed",
			sign: func(p *signParams) { p.contentSHA256 = sha256Hex([]byte(testBody)) }},
		{name: "ok query string",
			sign: func(p *signParams) { p.path = "/?b=2&a=1&a=0&c=x%20y&d=%E1%88%B4" }},
		{name: "ok path not normalized by the Go signer",
			sign: func(p *signParams) { p.path = "//a/./b/../c%20d/" }},

		{name: "wrong secret",
			sign:     func(p *signParams) { p.secret = "not-the-secret" },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "unknown access key",
			sign:     func(p *signParams) { p.accessKey = "AKIAUNKNOWN000000000" },
			wantCode: awserr.UnrecognizedClient, wantMsg: "The security token included in the request is invalid."},
		{name: "tampered body same length",
			mutate:   func(r *http.Request) { setBody(r, strings.Replace(testBody, "alias/app", "alias/xyz", 1)) },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "tampered body longer",
			mutate:   func(r *http.Request) { setBody(r, testBody+" ") },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "tampered signed header",
			mutate:   func(r *http.Request) { r.Header.Set("X-Amz-Target", "TrentService.ScheduleKeyDeletion") },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "signed header duplicated",
			mutate:   func(r *http.Request) { r.Header.Add("X-Amz-Target", testTarget) },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "signed header removed",
			mutate:   func(r *http.Request) { r.Header.Del("Content-Type") },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "tampered path",
			mutate:   func(r *http.Request) { r.URL.Path = "/other" },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "tampered query",
			sign:     func(p *signParams) { p.path = "/?a=1" },
			mutate:   func(r *http.Request) { r.URL.RawQuery = "a=2" },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "tampered signature",
			mutate: func(r *http.Request) {
				editAuthorization(r, func(s string) string {
					i := strings.Index(s, "Signature=") + len("Signature=")
					c := byte('0')
					if s[i] == '0' {
						c = '1'
					}
					return s[:i] + string(c) + s[i+1:]
				})
			},
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "signed 16 minutes ago", now: t0.Add(16 * time.Minute),
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Signature expired: 20250101T001000Z is now earlier than 20250101T001100Z (20250101T002600Z - 15 min.)"},
		{name: "signed 16 minutes ahead", now: t0.Add(-16 * time.Minute),
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Signature not yet current: 20250101T001000Z is still later than 20250101T000900Z (20241231T235400Z + 15 min.)"},
		{name: "custom skew exceeded", now: t0.Add(6 * time.Minute),
			config:   func(v *Verifier) { v.MaxSkew = 5 * time.Minute },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Signature expired: 20250101T001000Z is now earlier than 20250101T001100Z (20250101T001600Z - 5 min.)"},
		{name: "wrong region",
			sign:     func(p *signParams) { p.region = "us-east-1" },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Credential should be scoped to a valid region. Region 'us-east-1' is not served; this kmsd serves ap-northeast-1, eu-west-3."},
		{name: "wrong service",
			sign:     func(p *signParams) { p.service = "s3" },
			wantCode: awserr.InvalidSignature, wantMsg: "Credential should be scoped to correct service: 'kms'. "},
		{name: "wrong terminator",
			mutate:   func(r *http.Request) { editAuthorization(r, replaceIn("/aws4_request", "/aws4_requests")) },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_requests'. "},
		{name: "scope date differs from X-Amz-Date",
			mutate:   func(r *http.Request) { editAuthorization(r, replaceIn("/20250101/", "/20241231/")) },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20241231' != '20250101', from '20250101T001000Z'."},
		{name: "X-Amz-Date changed after signing",
			mutate:   func(r *http.Request) { r.Header.Set("X-Amz-Date", "20250101T001001Z") },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "host not signed",
			mutate:   func(r *http.Request) { editAuthorization(r, replaceIn(";host;", ";")) },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."},
		{name: "x-amz-date not signed",
			mutate:   func(r *http.Request) { editAuthorization(r, replaceIn(";x-amz-date", "")) },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."},
		{name: "security token without SessionLookup",
			sign:     func(p *signParams) { p.sessionToken = "FwoGZXIvYXdzEXAMPLETOKEN" },
			wantCode: awserr.UnrecognizedClient, wantMsg: "The security token included in the request is invalid."},
		{name: "ok session credentials",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken = testSessionKey, testSessionSecret, testSessionToken
			},
			config: withSessions},
		{name: "ok session token in the query",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.path = testSessionKey, testSessionSecret, "/?X-Amz-Security-Token="+testSessionToken
			},
			config: withSessions},
		{name: "session token of another access key",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken = testAccessKey, testSecret, testSessionToken
			},
			config:   withSessions,
			wantCode: awserr.UnrecognizedClient, wantMsg: "The security token included in the request is invalid."},
		{name: "wrong session token",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken = testSessionKey, testSessionSecret, testSessionToken+"x"
			},
			config:   withSessions,
			wantCode: awserr.UnrecognizedClient, wantMsg: "The security token included in the request is invalid."},
		{name: "session credentials without their token",
			sign:     func(p *signParams) { p.accessKey, p.secret = testSessionKey, testSessionSecret },
			config:   withSessions,
			wantCode: awserr.UnrecognizedClient, wantMsg: "The security token included in the request is invalid."},
		{name: "expired session",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken = testSessionKey, testSessionSecret, testExpiredToken
			},
			config:   withSessions,
			wantCode: awserr.ExpiredToken, wantMsg: "The security token included in the request is expired"},
		{name: "session token replaced after signing",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken = testSessionKey, testSessionSecret, testSessionToken
			},
			mutate:   func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", testSessionToken2) },
			config:   withSessions,
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "two session tokens",
			sign: func(p *signParams) {
				p.accessKey, p.secret, p.sessionToken, p.path = testSessionKey, testSessionSecret, testSessionToken, "/?X-Amz-Security-Token="+testExpiredToken
			},
			config:   withSessions,
			wantCode: awserr.IncompleteSignature},
		{name: "content sha256 wrong",
			sign:     func(p *signParams) { p.contentSHA256 = sha256Hex([]byte("something else")) },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "The provided 'x-amz-content-sha256' header does not match what was computed."},
		{name: "unsigned payload refused",
			sign:     func(p *signParams) { p.contentSHA256 = unsignedPayload },
			wantCode: awserr.InvalidSignature,
			wantMsg:  "The request body must be signed: 'x-amz-content-sha256: UNSIGNED-PAYLOAD' is not accepted."},
		{name: "content sha256 changed after signing",
			sign:     func(p *signParams) { p.contentSHA256 = unsignedPayload },
			mutate:   func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(testBody))) },
			wantCode: awserr.InvalidSignature, wantMsg: msgMismatch},
		{name: "no authorization",
			mutate:   func(r *http.Request) { r.Header.Del("Authorization") },
			wantCode: awserr.MissingAuthenticationTok, wantMsg: "Missing Authentication Token"},
		{name: "empty authorization",
			mutate:   func(r *http.Request) { r.Header.Set("Authorization", "") },
			wantCode: awserr.MissingAuthenticationTok, wantMsg: "Missing Authentication Token"},
		{name: "two authorization headers",
			mutate:   func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) },
			wantCode: awserr.IncompleteSignature, wantMsg: "Request must contain exactly one Authorization header."},
		{name: "no date header",
			mutate:   func(r *http.Request) { r.Header.Del("X-Amz-Date") },
			wantCode: awserr.IncompleteSignature,
			check: func(t *testing.T, err error) {
				msg := err.(*awserr.Error).Message
				if !strings.HasPrefix(msg, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=") {
					t.Errorf("message = %q", msg)
				}
			}},
		{name: "X-Amz-Date not ISO 8601 basic",
			mutate:   func(r *http.Request) { r.Header.Set("X-Amz-Date", "2025-01-01T00:10:00Z") },
			wantCode: awserr.IncompleteSignature,
			wantMsg:  "Date must be in ISO-8601 'basic format'. Got '2025-01-01T00:10:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"},
		{name: "two X-Amz-Date headers",
			mutate:   func(r *http.Request) { r.Header.Add("X-Amz-Date", r.Header.Get("X-Amz-Date")) },
			wantCode: awserr.IncompleteSignature, wantMsg: "Request must contain at most one 'X-Amz-Date' header."},
		{name: "uppercase signed header names",
			mutate:   func(r *http.Request) { editAuthorization(r, replaceIn(";host;", ";Host;")) },
			wantCode: awserr.IncompleteSignature},
		{name: "lookup fails",
			config: func(v *Verifier) {
				v.Lookup = func(context.Context, string) ([]byte, error) { return nil, errStoreDown }
			},
			wantCode: awserr.InternalFailure,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, errStoreDown) {
					t.Errorf("error %v does not wrap the lookup's cause", err)
				}
			}},
		{name: "lookup fails with its own AWS error",
			config: func(v *Verifier) {
				v.Lookup = func(context.Context, string) ([]byte, error) {
					return nil, awserr.New(awserr.DependencyTimeout, "store timed out")
				}
			},
			wantCode: awserr.DependencyTimeout},
		{name: "misconfigured verifier",
			config:   func(v *Verifier) { v.Regions = nil },
			wantCode: awserr.InternalFailure},
	}

	vs := newVerifyServer(t)
	for _, set := range []headerSet{goSDK, botocore} {
		for _, tc := range cases {
			for _, mode := range []string{"server", "direct"} {
				t.Run(set.String()+"/"+mode+"/"+tc.name, func(t *testing.T) {
					p := signParams{set: set}
					if tc.sign != nil {
						tc.sign(&p)
					}
					r := newSignedRequest(t, vs.srv.URL, p)
					if tc.mutate != nil {
						tc.mutate(r)
					}
					now := tc.now
					if now.IsZero() {
						now = t0
					}
					v := newTestVerifier(now)
					if tc.config != nil {
						tc.config(v)
					}

					var res Result
					var err error
					if mode == "server" {
						res, err = vs.verify(t, v, r)
					} else {
						res, err = verifyDirect(t, v, r)
					}

					if tc.wantCode == "" {
						if err != nil {
							t.Fatalf("Verify: %v", err)
						}
						want := Result{AccessKeyID: testAccessKey, Region: testRegion, Partition: "aws", Service: "kms", SigningTime: t0}
						if p.sessionToken != "" || strings.Contains(p.path, "X-Amz-Security-Token") {
							want.AccessKeyID, want.SessionToken = testSessionKey, testSessionToken
						}
						if res != want {
							t.Errorf("Result = %+v, want %+v", res, want)
						}
						return
					}
					if err == nil {
						t.Fatalf("Verify succeeded, want %s", tc.wantCode)
					}
					var ae *awserr.Error
					if !errors.As(err, &ae) {
						t.Fatalf("error %v (%T) is not an *awserr.Error", err, err)
					}
					if ae.Code != tc.wantCode {
						t.Errorf("code = %s (%v), want %s", ae.Code, err, tc.wantCode)
					}
					if tc.wantMsg != "" && ae.Message != tc.wantMsg {
						t.Errorf("message = %q\nwant      %q", ae.Message, tc.wantMsg)
					}
					if tc.check != nil {
						tc.check(t, err)
					}
					checkNoSecret(t, err)
				})
			}
		}
	}
}

var errStoreDown = errors.New("store unavailable")

// checkNoSecret fails if an error message contains the secret or a signing
// key derived from it for any day near the test dates.
func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, testSecret) {
		t.Errorf("error message contains the secret: %q", msg)
	}
	for _, day := range []string{"20241231", "20250101"} {
		k := deriveSigningKey([]byte(testSecret), day, testRegion, "kms")
		if strings.Contains(msg, hex.EncodeToString(k)) {
			t.Errorf("error message contains a signing key: %q", msg)
		}
	}
}

// TestVerifyDirectOnly covers requests that cannot cross a real HTTP
// connection unchanged.
func TestVerifyDirectOnly(t *testing.T) {
	t.Run("non-canonical header keys", func(t *testing.T) {
		r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{})
		for _, name := range []string{"X-Amz-Target", "X-Amz-Date", "Content-Type"} {
			vals := r.Header[name]
			delete(r.Header, name)
			r.Header[strings.ToLower(name)] = vals
		}
		if _, err := verifyDirect(t, newTestVerifier(t0), r); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("content-length header wins over r.ContentLength", func(t *testing.T) {
		r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{})
		r.Header.Set("Content-Length", "1") // what the client sent is what counts
		_, err := verifyDirect(t, newTestVerifier(t0), r)
		if awserr.CodeOf(err) != awserr.InvalidSignature {
			t.Fatalf("got %v, want InvalidSignatureException", err)
		}
	})
	t.Run("host taken from r.Host", func(t *testing.T) {
		r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{})
		r.Host = "127.0.0.1:4600"
		_, err := verifyDirect(t, newTestVerifier(t0), r)
		if awserr.CodeOf(err) != awserr.InvalidSignature {
			t.Fatalf("got %v, want InvalidSignatureException", err)
		}
	})
	t.Run("host falls back to r.URL.Host", func(t *testing.T) {
		r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{})
		r.Host = ""
		if _, err := verifyDirect(t, newTestVerifier(t0), r); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("request without URL", func(t *testing.T) {
		_, err := newTestVerifier(t0).Verify(context.Background(), &http.Request{Header: http.Header{}}, nil)
		if awserr.CodeOf(err) != awserr.InternalFailure {
			t.Fatalf("got %v, want InternalFailure", err)
		}
	})
	t.Run("nil clock means time.Now", func(t *testing.T) {
		r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{at: time.Now()})
		v := newTestVerifier(t0)
		v.Now = nil
		if _, err := verifyDirect(t, v, r); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

// TestVerifyDateHeader checks a request dated by the HTTP Date header
// instead of X-Amz-Date, signed by refSign (no SDK does this).
func TestVerifyDateHeader(t *testing.T) {
	const date = "Wed, 01 Jan 2025 00:10:00 GMT"
	body := []byte(testBody)
	build := func(signedHeaders string, headers [][2]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://kms.example:8443/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
		r.Header.Set("Date", date)
		sig := refSign("POST", "/", "", headers, sha256Hex(body), "20250101T001000Z",
			"20250101/"+testRegion+"/kms/aws4_request", testSecret, "20250101")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/20250101/"+testRegion+
			"/kms/aws4_request, SignedHeaders="+signedHeaders+", Signature="+sig)
		return r
	}
	headers := [][2]string{
		{"content-type", "application/x-amz-json-1.1"},
		{"date", date},
		{"host", "kms.example:8443"},
	}

	v := newTestVerifier(t0)
	res, err := v.Verify(context.Background(), build("content-type;date;host", headers), body)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.SigningTime.Equal(t0) {
		t.Errorf("SigningTime = %v, want %v", res.SigningTime, t0)
	}

	_, err = v.Verify(context.Background(), build("content-type;host", headers[:1:1]), body)
	var ae *awserr.Error
	if !errors.As(err, &ae) || ae.Code != awserr.InvalidSignature ||
		ae.Message != "'Date' must be a 'SignedHeader' in the AWS Authorization." {
		t.Errorf("date not signed: got %v", err)
	}

	r := build("content-type;date;host", headers)
	r.Header.Set("Date", "yesterday")
	_, err = v.Verify(context.Background(), r, body)
	if awserr.CodeOf(err) != awserr.IncompleteSignature {
		t.Errorf("bad Date: got %v, want IncompleteSignatureException", err)
	}
}

// refSign is a deliberately plain SigV4 signer written from the AWS
// documentation, separately from the verifier's code, for requests no SDK
// produces. headers are (lowercase name, canonical value) pairs, sorted.
func refSign(method, uri, query string, headers [][2]string, payloadHash, amzDate, scope, secret, day string) string {
	var canon, names []string
	for _, h := range headers {
		canon = append(canon, h[0]+":"+h[1]+"\n")
		names = append(names, h[0])
	}
	canonicalRequest := method + "\n" + uri + "\n" + query + "\n" + strings.Join(canon, "") + "\n" +
		strings.Join(names, ";") + "\n" + payloadHash
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonicalRequest))
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	region := strings.Split(scope, "/")[1]
	service := strings.Split(scope, "/")[2]
	k := mac(mac(mac(mac([]byte("AWS4"+secret), day), region), service), "aws4_request")
	return hex.EncodeToString(mac(k, toSign))
}

// TestVerifyConcurrent shares one Verifier between goroutines (run with
// -race).
func TestVerifyConcurrent(t *testing.T) {
	v := newTestVerifier(t0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := signParams{set: headerSet(i % 2)}
			if i%4 == 3 {
				p.secret = "wrong"
			}
			for range 50 {
				r := newSignedRequest(t, "http://127.0.0.1:4599", p)
				_, err := verifyDirect(t, v, r)
				if (err == nil) != (p.secret == "") {
					t.Errorf("goroutine %d: unexpected result %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkVerify(b *testing.B) {
	for _, set := range []headerSet{goSDK, botocore} {
		b.Run(set.String(), func(b *testing.B) {
			r := newSignedRequest(b, "http://127.0.0.1:4599", signParams{set: set})
			body := []byte(testBody)
			v := newTestVerifier(t0)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestServedRegions: a request signed for any Region the verifier serves is
// accepted and acts in that Region; any other Region is refused, and the
// message names the served ones.
func TestServedRegions(t *testing.T) {
	v := newTestVerifier(t0)
	for _, region := range v.Regions {
		r := newSignedRequest(t, "http://kms.example", signParams{set: goSDK, region: region})
		res, err := verifyDirect(t, v, r)
		if err != nil {
			t.Fatalf("signed for %s: %v", region, err)
		}
		if res.Region != region {
			t.Errorf("signed for %s: Result.Region %s", region, res.Region)
		}
	}
	r := newSignedRequest(t, "http://kms.example", signParams{set: goSDK, region: "sa-east-1"})
	_, err := verifyDirect(t, v, r)
	if awserr.CodeOf(err) != awserr.InvalidSignature || !strings.Contains(err.Error(), "serves ap-northeast-1, eu-west-3") {
		t.Fatalf("signed for sa-east-1: %v, want InvalidSignatureException naming the served Regions", err)
	}
}

// TestVerifyUnsignedAmzHeaders checks that every X-Amz-* header must be
// signed. The requests are hand-signed by refSign with a valid signature
// over the headers named, so the only thing wrong with each is what it left
// out: before the rule, a request signed over content-type;host;x-amz-date
// verified whatever X-Amz-Target it carried, and could be replayed as
// another operation.
func TestVerifyUnsignedAmzHeaders(t *testing.T) {
	const (
		amzDate = "20250101T001000Z"
		host    = "kms.example:8443"
	)
	body := []byte(testBody)
	scope := "20250101/" + testRegion + "/kms/aws4_request"
	// build signs the headers in signed (lowercase name → value, all sent)
	// and then adds the unsigned ones.
	build := func(signed map[string]string, unsigned map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://"+host+"/", bytes.NewReader(body))
		var pairs [][2]string
		for name, value := range signed {
			pairs = append(pairs, [2]string{name, value})
			if name != "host" {
				r.Header.Set(name, value)
			}
		}
		slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		var names []string
		for _, p := range pairs {
			names = append(names, p[0])
		}
		sig := refSign("POST", "/", "", pairs, sha256Hex(body), amzDate, scope, testSecret, "20250101")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/"+scope+
			", SignedHeaders="+strings.Join(names, ";")+", Signature="+sig)
		for name, value := range unsigned {
			r.Header.Set(name, value)
		}
		return r
	}
	base := func(extra ...string) map[string]string {
		m := map[string]string{
			"content-type": "application/x-amz-json-1.1",
			"host":         host,
			"x-amz-date":   amzDate,
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	const createKey = "TrentService.CreateKey"
	cases := []struct {
		name     string
		signed   map[string]string
		unsigned map[string]string
		wantMsg  string // "" means the request verifies
	}{
		{name: "target signed", signed: base("x-amz-target", testTarget)},
		{name: "other unsigned headers are allowed", signed: base("x-amz-target", testTarget),
			unsigned: map[string]string{"User-Agent": "x/1", "X-Amzn-Trace-Id": "Root=1-abc", "X-Forwarded-For": "203.0.113.9"}},
		{name: "target not signed", signed: base(),
			unsigned: map[string]string{"X-Amz-Target": createKey},
			wantMsg:  "There were headers present in the request which were not signed. HeadersNotSigned: x-amz-target"},
		{name: "target not signed, lowercase key", signed: base(),
			unsigned: map[string]string{"x-amz-target": createKey},
			wantMsg:  "There were headers present in the request which were not signed. HeadersNotSigned: x-amz-target"},
		{name: "content sha256 not signed", signed: base("x-amz-target", testTarget),
			unsigned: map[string]string{"X-Amz-Content-Sha256": sha256Hex(body)},
			wantMsg:  "There were headers present in the request which were not signed. HeadersNotSigned: x-amz-content-sha256"},
		{name: "several not signed, listed sorted", signed: base(),
			unsigned: map[string]string{"X-Amz-Target": createKey, "X-Amz-Security-Token": "FwoGZXIvYXdzEXAMPLETOKEN", "X-Amz-User-Agent": "x"},
			wantMsg:  "There were headers present in the request which were not signed. HeadersNotSigned: x-amz-security-token, x-amz-target, x-amz-user-agent"},
	}
	v := newTestVerifier(t0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), build(tc.signed, tc.unsigned), body)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var ae *awserr.Error
			if !errors.As(err, &ae) || ae.Code != awserr.InvalidSignature || ae.Message != tc.wantMsg {
				t.Fatalf("got %v, want InvalidSignatureException %q", err, tc.wantMsg)
			}
		})
	}
}
