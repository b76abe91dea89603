package loadgen

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// signedHeaders are the headers aws-sdk-go-v2's KMS client signs, in
// canonical (sorted) order. Signing the same set as a real client makes the
// server's verification cost what it is in production.
var signedHeaders = []string{
	"amz-sdk-invocation-id",
	"amz-sdk-request",
	"content-length",
	"content-type",
	"host",
	"x-amz-date",
	"x-amz-target",
}

var signedHeaderList = strings.Join(signedHeaders, ";")

// Signer signs KMS requests with AWS Signature Version 4 (header form,
// AWS4-HMAC-SHA256), as aws-sdk-go-v2 does: it signs signedHeaders and the
// SHA-256 of the body, and, like the SDK, derives the signing key once per
// day rather than per request. It is safe for concurrent use.
type Signer struct {
	accessKeyID string
	secret      string
	region      string
	service     string

	mu      sync.Mutex
	day     string // the scope date of key
	key     []byte // the signing key of day
	scopeOf string // day/region/service/aws4_request
}

// NewSigner returns a Signer for the service ("kms") in region with the
// given access key.
func NewSigner(accessKeyID, secret, region, service string) *Signer {
	return &Signer{accessKeyID: accessKeyID, secret: secret, region: region, service: service}
}

// signingKey returns the signing key and credential scope of the day of t.
func (s *Signer) signingKey(day string) ([]byte, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.day != day {
		k := hmacSHA256([]byte("AWS4"+s.secret), day)
		k = hmacSHA256(k, s.region)
		k = hmacSHA256(k, s.service)
		s.key = hmacSHA256(k, "aws4_request")
		s.day = day
		s.scopeOf = day + "/" + s.region + "/" + s.service + "/aws4_request"
	}
	return s.key, s.scopeOf
}

// Sign sets X-Amz-Date and Authorization on r, whose body is body. r must
// already carry the other signed headers (Content-Type, X-Amz-Target,
// Amz-Sdk-Invocation-Id, Amz-Sdk-Request); Content-Length is r's
// ContentLength and host is r.Host, or r.URL.Host when r.Host is empty.
func (s *Signer) Sign(r *http.Request, body []byte, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	r.Header.Set("X-Amz-Date", amzDate)
	key, scope := s.signingKey(amzDate[:8])

	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	sum := sha256.Sum256(body)

	// The canonical request, hashed as it is written.
	h := sha256.New()
	var b []byte
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n', '\n') // empty query
	for _, name := range signedHeaders {
		var v string
		switch name {
		case "host":
			v = host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			v = r.Header.Get(name)
		}
		b = append(b, name...)
		b = append(b, ':')
		b = append(b, strings.TrimSpace(v)...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, signedHeaderList...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, sum[:])
	h.Write(b)

	sts := make([]byte, 0, 128)
	sts = append(sts, "AWS4-HMAC-SHA256\n"...)
	sts = append(sts, amzDate...)
	sts = append(sts, '\n')
	sts = append(sts, scope...)
	sts = append(sts, '\n')
	sts = hex.AppendEncode(sts, h.Sum(nil))

	m := hmac.New(sha256.New, key)
	m.Write(sts)
	sig := hex.EncodeToString(m.Sum(nil))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+s.accessKeyID+"/"+scope+
		", SignedHeaders="+signedHeaderList+", Signature="+sig)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
