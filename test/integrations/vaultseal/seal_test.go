// Package vaultseal runs the auto-unseal library of Vault and OpenBao
// (hashicorp/go-kms-wrapping's awskms wrapper, built on the AWS SDK for Go
// v1) against a running kmsd, configured as docs/integrations.md says:
// the endpoint from AWS_KMS_ENDPOINT, the key alias/vault-unseal, the
// credentials and the CA bundle from the environment.
//
// It is a module of its own so that kmsd's own dependencies stay lean;
// test/integrations runs it against a kmsd it started.
package vaultseal

import (
	"bytes"
	"context"
	"os"
	"testing"

	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/wrappers/awskms/v2"
)

func TestSealRoundTrip(t *testing.T) {
	if os.Getenv("AWS_KMS_ENDPOINT") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AWS_KMS_ENDPOINT is not set: run this through test/integrations")
		}
		t.Skip("AWS_KMS_ENDPOINT is not set: run this through test/integrations")
	}
	ctx := context.Background()
	w := awskms.NewWrapper()
	info, err := w.SetConfig(ctx, wrapping.WithKeyId("alias/vault-unseal"), wrapping.WithConfigMap(map[string]string{"region": "us-east-1"}))
	if err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	t.Logf("seal configured: %v", info.Metadata)
	// What Vault seals: its root key, a 32-byte secret.
	secret := bytes.Repeat([]byte{0x5a}, 32)
	blob, err := w.Encrypt(ctx, secret)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if blob.KeyInfo == nil || blob.KeyInfo.KeyId == "" {
		t.Fatalf("no key id in the sealed blob: %+v", blob.KeyInfo)
	}
	got, err := w.Decrypt(ctx, blob)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatal("the unsealed secret differs")
	}
	// A tampered blob is refused by kmsd (the data key's ciphertext).
	blob.KeyInfo.WrappedKey[len(blob.KeyInfo.WrappedKey)-1] ^= 1
	if _, err := w.Decrypt(ctx, blob); err == nil {
		t.Fatal("a tampered sealed key was accepted")
	}
}
