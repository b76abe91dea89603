package sigv4

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestSigningKeyCache checks that a cached signing key is used only with
// the secret it was derived from: a secret that changes, or an access key
// that goes away, takes effect on the next request.
func TestSigningKeyCache(t *testing.T) {
	const newSecret = "a-different-secret-access-key-0000000000"
	tests := []struct {
		name      string
		signWith  string // secret the client signs with
		lookupHas string // secret the lookup returns ("": unknown key)
		wantCode  string // "" for success
	}{
		{"same secret, cached", testSecret, testSecret, ""},
		{"secret changed, old signature", testSecret, newSecret, awserr.InvalidSignature},
		{"secret changed, new signature", newSecret, newSecret, ""},
		{"access key removed", testSecret, "", awserr.UnrecognizedClient},
	}
	var mu sync.Mutex
	current := testSecret
	v := newTestVerifier(t0)
	v.Keys = NewSigningKeyCache(4)
	v.Lookup = func(_ context.Context, id string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if id != testAccessKey || current == "" {
			return nil, fmt.Errorf("access key %q: %w", id, ErrUnknownAccessKey)
		}
		return []byte(current), nil
	}
	// Warm the cache with the first secret.
	if _, err := verifyDirect(t, v, newSignedRequest(t, "http://127.0.0.1:4599", signParams{set: goSDK})); err != nil {
		t.Fatalf("warming the cache: %v", err)
	}
	if v.Keys.Len() != 1 {
		t.Fatalf("cache holds %d keys, want 1", v.Keys.Len())
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			current = tc.lookupHas
			mu.Unlock()
			r := newSignedRequest(t, "http://127.0.0.1:4599", signParams{set: goSDK, secret: tc.signWith})
			_, err := verifyDirect(t, v, r)
			if got := awserr.CodeOf(err); got != tc.wantCode {
				t.Fatalf("code %q (%v), want %q", got, err, tc.wantCode)
			}
		})
	}
}

// TestSigningKeyCacheBound checks that the cache never holds more keys
// than its size, and that keys of other scopes still verify.
func TestSigningKeyCacheBound(t *testing.T) {
	c := NewSigningKeyCache(3)
	secret := []byte(testSecret)
	for i := range 10 {
		var got [32]byte
		id := fmt.Sprintf("AKIA%012d", i)
		c.signingKey(&got, secret, id, "20250101", testRegion, "kms")
		want := deriveSigningKey(secret, "20250101", testRegion, "kms")
		if string(got[:]) != string(want) {
			t.Fatalf("key %d differs from the derived one", i)
		}
		if n := c.Len(); n > 3 {
			t.Fatalf("cache holds %d keys, bound 3", n)
		}
	}
	// A cached key is returned for its own scope only.
	var a, b [32]byte
	c.signingKey(&a, secret, "AKIAX", "20250101", testRegion, "kms")
	c.signingKey(&b, secret, "AKIAX", "20250102", testRegion, "kms")
	if a == b {
		t.Fatal("two days share a signing key")
	}
}

// TestSigningKeyCacheNil checks that a nil cache derives every time.
func TestSigningKeyCacheNil(t *testing.T) {
	var c *SigningKeyCache
	var got [32]byte
	c.signingKey(&got, []byte(testSecret), testAccessKey, "20250101", testRegion, "kms")
	if want := deriveSigningKey([]byte(testSecret), "20250101", testRegion, "kms"); string(got[:]) != string(want) {
		t.Fatal("nil cache: wrong key")
	}
}
