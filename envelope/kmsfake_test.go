package envelope

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// fakeKMS answers like KMS, or as configured to misbehave, and records the
// requests.
type fakeKMS struct {
	arn       string // the key ARN it reports
	keyLen    int    // length of the data keys it returns
	answerFor string // KeyId it reports on Decrypt; "" means the requested one
	requests  []any
}

func (f *fakeKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	f.requests = append(f.requests, in)
	return &kms.GenerateDataKeyOutput{KeyId: aws.String(f.arn), Plaintext: bytes.Repeat([]byte{7}, f.keyLen), CiphertextBlob: []byte("blob")}, nil
}

func (f *fakeKMS) Encrypt(_ context.Context, in *kms.EncryptInput, _ ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	f.requests = append(f.requests, in)
	return &kms.EncryptOutput{KeyId: aws.String(f.arn), CiphertextBlob: []byte("blob2")}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.requests = append(f.requests, in)
	id := f.answerFor
	if id == "" {
		id = aws.ToString(in.KeyId)
	}
	return &kms.DecryptOutput{KeyId: aws.String(id), Plaintext: bytes.Repeat([]byte{7}, f.keyLen)}, nil
}

func (k *kmsKeyring) withClient(c KMSClient) *kmsKeyring {
	cp := *k
	cp.client = c
	return &cp
}

// TestKMSKeyringRequests checks what the KMS keyring sends and which
// answers it refuses, as the specification's AWS KMS keyring requires.
func TestKMSKeyringRequests(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/k1"
	ctx := context.Background()
	ec := map[string]string{"a": "b"}
	f := &fakeKMS{arn: arn, keyLen: 32}
	kr, err := NewKMSKeyring(f, "alias/k1", WithGrantTokens("g1", "g2"))
	if err != nil {
		t.Fatal(err)
	}
	m := &EncryptionMaterials{Suite: SuiteCommitKey, EncryptionContext: ec}
	if err := kr.OnEncrypt(ctx, m); err != nil {
		t.Fatal(err)
	}
	g := f.requests[0].(*kms.GenerateDataKeyInput)
	if aws.ToString(g.KeyId) != "alias/k1" || aws.ToInt32(g.NumberOfBytes) != 32 || !maps.Equal(g.EncryptionContext, ec) || !slices.Equal(g.GrantTokens, []string{"g1", "g2"}) {
		t.Fatalf("GenerateDataKey request %+v", g)
	}
	if len(m.EncryptedDataKeys) != 1 || string(m.EncryptedDataKeys[0].ProviderInfo) != arn || m.EncryptedDataKeys[0].ProviderID != "aws-kms" {
		t.Fatalf("encrypted data keys %+v", m.EncryptedDataKeys)
	}
	// With a data key already present the keyring encrypts it.
	if err := kr.OnEncrypt(ctx, m); err != nil {
		t.Fatal(err)
	}
	e := f.requests[1].(*kms.EncryptInput)
	if !bytes.Equal(e.Plaintext, m.DataKey) || len(m.EncryptedDataKeys) != 2 || !slices.Equal(e.GrantTokens, []string{"g1", "g2"}) {
		t.Fatalf("Encrypt request %+v", e)
	}

	strict, _ := NewKMSKeyring(f, arn, WithGrantTokens("g1"))
	dm := &DecryptionMaterials{Suite: SuiteCommitKey, EncryptionContext: ec}
	edks := []EncryptedDataKey{{ProviderID: "other", ProviderInfo: []byte(arn)}, m.EncryptedDataKeys[0]}
	if err := strict.OnDecrypt(ctx, dm, edks); err != nil || len(dm.DataKey) != 32 {
		t.Fatalf("decrypt: %v", err)
	}
	d := f.requests[2].(*kms.DecryptInput)
	if aws.ToString(d.KeyId) != arn || string(d.CiphertextBlob) != "blob" || !maps.Equal(d.EncryptionContext, ec) || !slices.Equal(d.GrantTokens, []string{"g1"}) {
		t.Fatalf("Decrypt request %+v", d)
	}
	if err := strict.OnDecrypt(ctx, dm, edks); err == nil {
		t.Fatal("decrypt into materials that already have a data key")
	}

	// Answers that must be refused.
	for name, bad := range map[string]*fakeKMS{
		"short data key": {arn: arn, keyLen: 16},
		"alias as KeyId": {arn: "arn:aws:kms:us-east-1:111122223333:alias/k1", keyLen: 32},
	} {
		if err := kr.(*kmsKeyring).withClient(bad).OnEncrypt(ctx, &EncryptionMaterials{Suite: SuiteCommitKey}); err == nil {
			t.Errorf("encrypt, %s: accepted", name)
		}
	}
	for name, bad := range map[string]*fakeKMS{
		"short data key": {keyLen: 16},
		"other key":      {keyLen: 32, answerFor: "arn:aws:kms:us-east-1:111122223333:key/other"},
	} {
		dm := &DecryptionMaterials{Suite: SuiteCommitKey}
		err := strict.(*kmsKeyring).withClient(bad).OnDecrypt(ctx, dm, edks)
		if !errors.Is(err, ErrNoDataKey) || dm.DataKey != nil {
			t.Errorf("decrypt, %s: %v", name, err)
		}
		disc, _ := NewKMSDiscoveryKeyring(bad, nil)
		if err := disc.OnDecrypt(ctx, dm, edks); !errors.Is(err, ErrNoDataKey) || !strings.Contains(err.Error(), "KMS Decrypt") {
			t.Errorf("discovery decrypt, %s: %v", name, err)
		}
	}
	if _, err := NewKMSDiscoveryKeyring(f, &DiscoveryFilter{Partition: "aws"}); err == nil {
		t.Error("discovery filter without accounts accepted")
	}
}
