package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/kmstest"
)

// TestWireErrors sends raw signed requests that no SDK would send and checks
// that each gets AWS's exception with HTTP 400, a request id and a Date.
func TestWireErrors(t *testing.T) {
	env := kmstest.Start(t)
	cases := []struct {
		name, op, body, code string
	}{
		{"unknown operation", "Frobnicate", `{}`, "UnknownOperationException"},
		{"malformed JSON", "ListKeys", `{"Limit":`, "SerializationException"},
		{"not an object", "ListKeys", `[1,2]`, "SerializationException"},
		{"wrong type", "ListKeys", `{"Limit":"ten"}`, "SerializationException"},
		{"fractional integer", "ListKeys", `{"Limit":1.5}`, "SerializationException"},
		{"bad base64", "Decrypt", `{"CiphertextBlob":"%%%"}`, "SerializationException"},
		{"missing member", "DescribeKey", `{}`, "ValidationException"},
		{"oversized body", "Encrypt", `{"KeyId":"x","Plaintext":"` + strings.Repeat("A", 200<<10) + `"}`, "ValidationException"},
		{"bad enum", "CreateKey", `{"KeySpec":"AES_999"}`, "ValidationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signedRequest(t, env, tc.op, []byte(tc.body))
			w := httptest.NewRecorder()
			env.Handler.ServeHTTP(w, r)
			checkError(t, w, tc.code)
		})
	}
}

func checkError(t *testing.T, w *httptest.ResponseRecorder, code string) {
	t.Helper()
	if w.Code != http.StatusBadRequest {
		t.Fatalf("HTTP %d, want 400: %s", w.Code, w.Body.String())
	}
	var body struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if body.Type != code {
		t.Fatalf("__type = %s (%s), want %s", body.Type, body.Message, code)
	}
	if w.Header().Get("x-amzn-RequestId") == "" || w.Header().Get("Date") == "" {
		t.Fatalf("missing x-amzn-RequestId or Date header: %v", w.Header())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

func TestUnauthenticated(t *testing.T) {
	env := kmstest.Start(t)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	w := httptest.NewRecorder()
	env.Handler.ServeHTTP(w, r)
	checkError(t, w, "MissingAuthenticationTokenException")

	// A signed request whose body was changed after signing.
	r = signedRequest(t, env, "ListKeys", []byte(`{}`))
	r.Body = readCloser{strings.NewReader(`{"Limit":1}`)}
	r.ContentLength = int64(len(`{"Limit":1}`))
	w = httptest.NewRecorder()
	env.Handler.ServeHTTP(w, r)
	checkError(t, w, "InvalidSignatureException")
}

// TestTargetMustBeSigned replays a request whose signature does not cover
// X-Amz-Target with the target changed to CreateKey: the signature covers
// the body, host and date, so before X-Amz-* headers had to be signed kmsd
// created a key. It must be refused, naming the unsigned header, and create
// nothing.
func TestTargetMustBeSigned(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	before, err := env.Client.ListKeys(ctx, &awskms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}

	// Signed without X-Amz-Target (the Go signer signs every header present),
	// which is then added.
	body := []byte(`{}`)
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}
	if err := v4.NewSigner().SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "kms", kmstest.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	if authz := r.Header.Get("Authorization"); strings.Contains(authz, "x-amz-target") {
		t.Fatalf("test setup: target signed in %q", authz)
	}
	r.Header.Set("X-Amz-Target", "TrentService.CreateKey")
	w := httptest.NewRecorder()
	env.Handler.ServeHTTP(w, r)
	checkError(t, w, "InvalidSignatureException")
	if !strings.Contains(w.Body.String(), "HeadersNotSigned: x-amz-target") {
		t.Errorf("error does not name the unsigned header: %s", w.Body.String())
	}

	after, err := env.Client.ListKeys(ctx, &awskms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Keys) != len(before.Keys) {
		t.Fatalf("%d keys before, %d after: the replayed request created one", len(before.Keys), len(after.Keys))
	}
}
