package sigv4

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/awserr"
)

// TestRealKMSClient points the unmodified aws-sdk-go-v2 KMS client at a test
// server that verifies with this package, and checks that good credentials
// pass and that each rejection reaches the client with its AWS error code.
// The verifier uses the real clock here, because the SDK signs with it.
func TestRealKMSClient(t *testing.T) {
	var (
		mu            sync.Mutex
		signedHeaders string
		lastResult    Result
	)
	v := &Verifier{
		Service: "kms",
		Regions: []string{testRegion},
		Lookup:  staticLookup(map[string]string{testAccessKey: testSecret}),
		Now:     time.Now,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := v.Verify(r.Context(), r, body)
		mu.Lock()
		if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "SignedHeaders="); ok {
			signedHeaders, _, _ = strings.Cut(rest, ",")
		}
		lastResult = res
		mu.Unlock()

		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if err != nil {
			var ae *awserr.Error
			if !errors.As(err, &ae) {
				ae = awserr.New(awserr.InternalFailure, "unexpected")
			}
			w.WriteHeader(awserr.HTTPStatus(ae.Code))
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.Code, "message": ae.Message})
			return
		}
		_, _ = io.WriteString(w, `{"Keys":[],"Truncated":false}`)
	}))
	defer srv.Close()

	client := func(accessKey, secret, region string) *kms.Client {
		return kms.New(kms.Options{
			Region:           region,
			BaseEndpoint:     aws.String(srv.URL),
			Credentials:      credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
			HTTPClient:       srv.Client(),
			RetryMaxAttempts: 1,
		})
	}

	cases := []struct {
		name                      string
		accessKey, secret, region string
		wantCode                  string
	}{
		{"ok", testAccessKey, testSecret, testRegion, ""},
		{"wrong secret", testAccessKey, "wrong", testRegion, awserr.InvalidSignature},
		{"unknown key", "AKIAUNKNOWN000000000", testSecret, testRegion, awserr.UnrecognizedClient},
		{"wrong region", testAccessKey, testSecret, "us-east-1", awserr.InvalidSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client(tc.accessKey, tc.secret, tc.region).ListKeys(context.Background(), &kms.ListKeysInput{})
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("ListKeys: %v", err)
				}
				mu.Lock()
				defer mu.Unlock()
				if lastResult.AccessKeyID != testAccessKey || lastResult.Region != testRegion {
					t.Errorf("Result = %+v", lastResult)
				}
				// Document what the real client signs.
				for _, h := range []string{"content-type", "host", "x-amz-date", "x-amz-target", "amz-sdk-invocation-id", "amz-sdk-request"} {
					if !strings.Contains(";"+signedHeaders+";", ";"+h+";") {
						t.Errorf("SignedHeaders %q lacks %s", signedHeaders, h)
					}
				}
				return
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("ListKeys: got %v, want an API error %s", err, tc.wantCode)
			}
			if apiErr.ErrorCode() != tc.wantCode {
				t.Errorf("error code = %s (%v), want %s", apiErr.ErrorCode(), err, tc.wantCode)
			}
		})
	}
}
