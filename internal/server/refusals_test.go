package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/lockedbuf"
)

// logLines returns the JSON log lines of logs with message msg.
func logLines(t *testing.T, logs *lockedbuf.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestAuthenticationFailuresAreLogged is issue 17's seventh item: refused
// authentications (unknown access key, wrong secret, another Region, a
// stale date) are logged at the default level with the access key id and
// the source address, the wrong Region with the Regions kmsd serves, and
// never with a secret. They used to be logged at debug level only.
func TestAuthenticationFailuresAreLogged(t *testing.T) {
	var logs lockedbuf.Buffer
	env := kmstest.StartWithLogger(t, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx := context.Background()
	client := func(akid, secret, region string) *awskms.Client {
		return awskms.New(awskms.Options{Region: region, BaseEndpoint: aws.String(env.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	}
	const unknown = "AKIAUNKNOWNUNKNOWN00"
	if _, err := client(unknown, "x", kmstest.Region).ListKeys(ctx, &awskms.ListKeysInput{}); err == nil {
		t.Fatal("unknown access key accepted")
	}
	wrongSecret := "wrong" + env.Secret[5:]
	if _, err := client(env.AccessKeyID, wrongSecret, kmstest.Region).ListKeys(ctx, &awskms.ListKeysInput{}); err == nil {
		t.Fatal("wrong secret accepted")
	}
	if _, err := client(env.AccessKeyID, env.Secret, "cn-north-1").ListKeys(ctx, &awskms.ListKeysInput{}); err == nil {
		t.Fatal("another Region accepted")
	}
	// A request signed an hour ago.
	body := []byte(`{}`)
	r, _ := http.NewRequest(http.MethodPost, env.URL+"/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}, r, hex.EncodeToString(sum[:]), "kms", kmstest.Region, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// An authenticated request is not a refusal.
	if _, err := env.Client.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}

	lines := logLines(t, &logs, "authentication failed")
	if len(lines) != 4 {
		t.Fatalf("%d refusals logged, want 4:\n%s", len(lines), logs.String())
	}
	for i, want := range []struct{ reason, akid, message string }{
		{"UnrecognizedClientException", unknown, "security token"},
		{"InvalidSignatureException", env.AccessKeyID, "signature we calculated does not match"},
		{"InvalidSignatureException", env.AccessKeyID, "signed for Region cn-north-1, but this kmsd serves "},
		{"InvalidSignatureException", env.AccessKeyID, "Signature expired"},
	} {
		l := lines[i]
		if l["level"] != "WARN" || l["reason"] != want.reason || l["access_key"] != want.akid || l["source"] != "127.0.0.1" || !strings.Contains(l["message"].(string), want.message) {
			t.Errorf("refusal %d logged as %v, want %+v from 127.0.0.1", i, l, want)
		}
	}
	if served, _ := json.Marshal(lines[2]["regions_served"]); !strings.Contains(string(served), `"us-east-1"`) || !strings.Contains(string(served), `"eu-west-1"`) || lines[2]["credential_region"] != "cn-north-1" {
		t.Errorf("the wrong-Region refusal does not name the Regions served: %v", lines[2])
	}
	for name, secret := range map[string]string{"secret": env.Secret, "wrong secret": wrongSecret, "signature": signatureOf(r)} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
}

// signatureOf is the Signature of a signed request's Authorization header.
func signatureOf(r *http.Request) string {
	a := r.Header.Get("Authorization")
	return a[strings.Index(a, "Signature=")+len("Signature="):]
}
