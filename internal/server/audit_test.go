package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// memAuditor keeps records in memory and can be made to fail, like a log
// whose disk went away.
type memAuditor struct {
	mu      sync.Mutex
	records []audit.Record
	failed  error
}

func (m *memAuditor) Append(_ context.Context, r *audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return m.failed
	}
	m.records = append(m.records, *r)
	return nil
}

func (m *memAuditor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

func (m *memAuditor) fail(err error) {
	m.mu.Lock()
	m.failed = err
	m.mu.Unlock()
}

func (m *memAuditor) json(t *testing.T) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := json.Marshal(m.records)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditRecordsEveryRequestWithoutSecrets(t *testing.T) {
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	ctx := context.Background()
	c := env.Client
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("the audit log must never hold this")
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: pt, EncryptionContext: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	dk, err := c.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: ck.KeyMetadata.KeyId, NumberOfBytes: aws.Int32(48)})
	if err != nil {
		t.Fatal(err)
	}
	c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}) // wrong context: fails
	env.NewClient("AKIAUNKNOWNUNKNOWN00", "x").ListKeys(ctx, &awskms.ListKeysInput{})

	a.mu.Lock()
	n := len(a.records)
	rs := append([]audit.Record(nil), a.records...)
	a.mu.Unlock()
	if n != 5 {
		t.Fatalf("%d records for 5 requests", n)
	}
	wantEvents := []string{"CreateKey", "Encrypt", "GenerateDataKey", "Decrypt", "ListKeys"}
	for i, r := range rs {
		if r.EventName != wantEvents[i] || r.RequestID == "" || r.AWSRegion != kmstest.Region {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if rs[1].UserIdentity.ARN != "arn:aws:iam::111122223333:user/admin" || rs[1].UserIdentity.Type != "IAMUser" ||
		len(rs[1].Resources) != 1 || rs[1].Resources[0].ARN != *ck.KeyMetadata.Arn || !rs[1].ReadOnly {
		t.Errorf("Encrypt record %+v", rs[1])
	}
	if rs[3].ErrorCode != "InvalidCiphertextException" {
		t.Errorf("failed Decrypt recorded as %q", rs[3].ErrorCode)
	}
	if rs[4].ErrorCode != "UnrecognizedClientException" || rs[4].UserIdentity.Type != "Unknown" || rs[4].UserIdentity.AccessKeyID != "AKIAUNKNOWNUNKNOWN00" {
		t.Errorf("unauthenticated request recorded as %+v", rs[4])
	}
	all := a.json(t)
	for name, secret := range map[string]string{
		"plaintext": string(pt), "plaintext (base64)": base64.StdEncoding.EncodeToString(pt),
		"data key (base64)":   base64.StdEncoding.EncodeToString(dk.Plaintext),
		"ciphertext (base64)": base64.StdEncoding.EncodeToString(enc.CiphertextBlob),
		"secret access key":   env.Secret,
	} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("audit records contain the %s", name)
		}
	}
	if !bytes.Contains(all, []byte(`"encryptionContext":{"k":"v"}`)) {
		t.Error("the encryption context is not recorded")
	}
}

func TestAuditFailsClosed(t *testing.T) {
	a := &memAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	ctx := context.Background()
	ck, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	a.fail(errors.New("disk full"))
	out, err := env.Client.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInternalException")
	if out != nil {
		t.Fatal("a result was returned although its audit record failed")
	}
	_, err = env.Client.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(8)})
	wantCode(t, err, "KMSInternalException")
}
