package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestServeAudits runs a mixed workload against "kmsd serve" (successes,
// client errors, a wrong secret), stops it, and checks the audit log: it
// verifies, it holds one record per request, and it holds neither the
// plaintexts nor the data keys of the workload. Then it alters one byte and
// verify names the record.
func TestServeAudits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	banner, stop := start(t, dir)
	endpoint := endpointRE.FindStringSubmatch(banner)[1]
	akid := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
	secret := regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
	client := func(secret string) *awskms.Client {
		return awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	}
	c := client(secret)
	ctx := context.Background()

	plaintext := []byte("audit-must-never-see-this-plaintext")
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("audited")})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: plaintext, EncryptionContext: map[string]string{"dept": "audit"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"dept": "audit"}}); err != nil {
		t.Fatal(err)
	}
	dk, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: ck.KeyMetadata.KeyId, KeySpec: "AES_256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err == nil {
		t.Fatal("decrypt without the context succeeded")
	}
	if _, err := client("wrong").ListKeys(ctx, &awskms.ListKeysInput{}); err == nil {
		t.Fatal("wrong secret accepted")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if err := auditMain(ctx, []string{"verify", "--data-dir", dir}, &out, &errOut, noEnv); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out.String(), errOut.String())
	}
	// Six requests and the admin access key of the first start.
	if !strings.Contains(out.String(), "OK: 7 records") {
		t.Fatalf("audit verify: %s", out.String())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "audit", "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no audit file")
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	for name, secret := range map[string][]byte{
		"plaintext": plaintext, "plaintext (base64)": []byte(base64.StdEncoding.EncodeToString(plaintext)),
		"data key (base64)":   []byte(base64.StdEncoding.EncodeToString(dk.Plaintext)),
		"ciphertext (base64)": []byte(base64.StdEncoding.EncodeToString(enc.CiphertextBlob)),
	} {
		if bytes.Contains(all, secret) {
			t.Errorf("the audit log contains the %s", name)
		}
	}
	for _, want := range []string{`"eventName":"Encrypt"`, `"errorCode":"InvalidCiphertextException"`,
		`"errorCode":"InvalidSignatureException"`, `"encryptionContext":{"dept":"audit"}`, `"ARN":"arn:aws:kms:us-east-1:111122223333:key/`} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("the audit log lacks %s", want)
		}
	}

	// One altered byte in the third record is caught and named.
	f := files[0]
	b, _ := os.ReadFile(f)
	lines := bytes.SplitAfter(b, []byte("\n"))
	i := bytes.Index(lines[2], []byte(`"eventName":"`)) + len(`"eventName":"`)
	lines[2][i] ^= 0x20
	os.WriteFile(f, bytes.Join(lines, nil), 0o600)
	out.Reset()
	err = auditMain(ctx, []string{"verify", "--data-dir", dir}, &out, &errOut, noEnv)
	if err == nil || !strings.Contains(out.String()+errOut.String()+err.Error(), "sequence 3") {
		t.Fatalf("verify of an altered log: %v\n%s%s", err, out.String(), errOut.String())
	}
}
