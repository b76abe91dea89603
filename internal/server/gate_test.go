package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// TestGate checks that a closed gate answers every API request with its
// error before anything else runs (before the body is read or the
// signature checked: the secret lookup fails the test if called), that
// /readyz reports it and /healthz does not, and that an open gate lets
// requests through to authentication.
func TestGate(t *testing.T) {
	var open atomic.Bool
	sealed := awserr.New(awserr.DependencyTimeout, "kmsd is sealed: run kmsd unseal on the server; retry later")
	h := server.New(server.Config{
		Gate: func() error {
			if open.Load() {
				return nil
			}
			return sealed
		},
		Verifier: &sigv4.Verifier{Service: "kms", Regions: []string{"us-east-1"}, Now: time.Now,
			Lookup: func(context.Context, string) ([]byte, error) {
				if !open.Load() {
					t.Error("secret looked up while the gate is closed")
				}
				return nil, sigv4.ErrUnknownAccessKey
			}},
		Ready: func(context.Context) error { return nil },
	})
	signed := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00")
		return r
	}
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		body   string // substring of the body
	}{
		{"signed request", signed, 503, `"__type":"DependencyTimeoutException"`},
		{"unsigned request", func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		}, 503, "kmsd is sealed"},
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, 503, "DependencyTimeoutException"},
		{"healthz", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/healthz", nil) }, 200, "ok"},
		{"readyz", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/readyz", nil) }, 503, "not ready: kmsd is sealed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("HTTP %d %q, want %d with %q", w.Code, w.Body.String(), tc.status, tc.body)
			}
			if w.Code == 503 && strings.HasPrefix(w.Body.String(), "{") {
				var body struct{ Type, Message string }
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Header().Get("x-amzn-RequestId") == "" {
					t.Fatalf("error body %q: %v", w.Body.String(), err)
				}
			}
		})
	}

	open.Store(true)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if w.Code != 200 {
		t.Fatalf("readyz with the gate open: HTTP %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, signed())
	if w.Code != 400 || strings.Contains(w.Body.String(), "DependencyTimeout") {
		t.Fatalf("signed request with the gate open: HTTP %d %s", w.Code, w.Body.String())
	}
}
