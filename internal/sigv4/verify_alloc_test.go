package sigv4

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/kmsd/kmsd/internal/testalloc"
)

// TestVerifyAllocs holds the allocation budgets of SigV4 verification,
// which every request pays before anything else, and of its canonical
// request alone. Figures of Go 1.26, a request signed as aws-sdk-go-v2
// signs KMS calls (seven signed headers); BenchmarkVerify and
// BenchmarkCanonicalRequest measure the time.
func TestVerifyAllocs(t *testing.T) {
	r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{set: goSDK})
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	v := newTestVerifier(t0)
	ctx := context.Background()
	// 57 today: the signing key derived again on every request 28 (four
	// HMAC-SHA256 at 6 allocations each: a new HMAC, its SHA-256 states,
	// the sum; and 4 for the key buffer and the date, region and service
	// as byte slices), the HMAC of the string to
	// sign 6, the canonical request and string to sign 12 (below), the
	// rest 11 (the Authorization header and date parsed, the other
	// header lookups, the secret lookup).
	testalloc.Budget(t, "Verify", 60, func() {
		if _, err := v.Verify(ctx, r, body); err != nil {
			t.Fatal(err)
		}
	})

	hdr := newHeaderReader(r)
	auth, err := parseAuthorization(r.Header.Get("Authorization"), true)
	if err != nil {
		t.Fatal(err)
	}
	// 12 today: the canonical MIME form net/textproto allocates for each
	// lowercase signed-header name looked up (6: all but host), host's
	// one-value slice 1, the canonical request's buffer 1, the payload
	// hash's hex 1, the list of candidate URIs 1, the credential scope 1,
	// the string to sign 1.
	testalloc.Budget(t, "canonical request and string to sign", 14, func() {
		suffix, err := canonicalSuffix(r, hdr, auth, body)
		if err != nil {
			t.Fatal(err)
		}
		for _, uri := range canonicalURIs(r.URL.EscapedPath()) {
			_ = stringToSign(r.Method, uri, suffix, "20250101T001000Z", auth.scope())
		}
	})
}

// BenchmarkCanonicalRequest measures the canonical request and string to
// sign of a request signed as aws-sdk-go-v2 signs it, without the
// signing key's derivation and the HMAC (BenchmarkVerify has everything).
func BenchmarkCanonicalRequest(b *testing.B) {
	r := newSignedRequest(b, "http://127.0.0.1:4599", signParams{set: goSDK})
	body := []byte(testBody)
	hdr := newHeaderReader(r)
	auth, err := parseAuthorization(r.Header.Get("Authorization"), true)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		suffix, err := canonicalSuffix(r, hdr, auth, body)
		if err != nil {
			b.Fatal(err)
		}
		for _, uri := range canonicalURIs(r.URL.EscapedPath()) {
			_ = stringToSign(r.Method, uri, suffix, "20250101T001000Z", auth.scope())
		}
	}
}

// BenchmarkDeriveSigningKey measures what Verify spends deriving the
// signing key from the secret (four HMAC-SHA256), which it does on every
// request: the cost a per-key, per-day cache would save.
func BenchmarkDeriveSigningKey(b *testing.B) {
	secret := []byte(testSecret)
	b.ReportAllocs()
	for b.Loop() {
		clear(deriveSigningKey(secret, "20250101", testRegion, "kms"))
	}
}
