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
	// 52 today without a cache: the signing key derived again on every
	// request 28 (four HMAC-SHA256 at 6 allocations each: a new HMAC, its
	// SHA-256 states, the sum; and 4 for the key buffer and the date,
	// region and service as byte slices), the HMAC of the string to sign
	// 5, the canonical request and string to sign 7 (below), the rest 12
	// (the Authorization header and date parsed, the other header
	// lookups, the secret lookup).
	testalloc.Budget(t, "Verify", 55, func() {
		if _, err := v.Verify(ctx, r, body); err != nil {
			t.Fatal(err)
		}
	})
	// With a SigningKeyCache (what kmsd serve runs), the derivation is
	// gone: the secret's fingerprint is hashed on the stack.
	cached := newTestVerifier(t0)
	cached.Keys = NewSigningKeyCache(0)
	testalloc.Budget(t, "Verify, signing key cached", 27, func() {
		if _, err := cached.Verify(ctx, r, body); err != nil {
			t.Fatal(err)
		}
	})

	hdr := newHeaderReader(r)
	auth, err := parseAuthorization(r.Header.Get("Authorization"), true)
	if err != nil {
		t.Fatal(err)
	}
	// 7 today (12 before the header names the SDKs sign got constant
	// canonical forms, canonicalKey, and host stopped needing a slice):
	// the canonical request's buffer, the payload hash's hex, the list of
	// candidate URIs, the credential scope, the string to sign, the
	// SHA-256 state and its sum.
	testalloc.Budget(t, "canonical request and string to sign", 8, func() {
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
