package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/kms"
)

// TestImportLocalKMS converts the checked-in local-kms seed file, starts
// kmsd with the result and checks every key: ids, aliases, the current
// backing key imported, a pending import, and RSA and ECC private keys
// whose public halves verify kmsd's signatures. A second start changes
// nothing.
func TestImportLocalKMS(t *testing.T) {
	const src = "testdata/local-kms-seed.yaml"
	tmp := t.TempDir()
	out := filepath.Join(tmp, "seed.yaml")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"import", "local-kms", "-o", out, src}, &stdout, &stderr, envOf(nil)); err != nil {
		t.Fatalf("import: %v\n%s", err, stderr.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("converted seed: %v, mode %v", err, fi.Mode())
	}
	for _, want := range []string{"2 backing keys (rotations): only the last", "NextKeyRotation dropped", "created in PendingImport"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("notes lack %q:\n%s", want, stderr.String())
		}
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	backing := regexp.MustCompile(`(?m)^\s+- ([0-9a-f]{64})$`).FindAllStringSubmatch(string(raw), -1)
	pems := regexp.MustCompile(`(?s)-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----`).FindAllString(string(raw), -1)
	if len(backing) != 3 || len(pems) != 2 {
		t.Fatalf("testdata: %d backing keys, %d PEM keys", len(backing), len(pems))
	}
	unindent := func(s string) []byte { return []byte(regexp.MustCompile(`(?m)^\s+`).ReplaceAllString(s, "")) }
	rsaPub, ecPub := publicKeyOf(t, unindent(pems[0])), publicKeyOf(t, unindent(pems[1]))

	data := filepath.Join(tmp, "data")
	env := envOf(map[string]string{"KMSD_DEV_ACCESS_KEY_ID": testAKID, "KMSD_DEV_SECRET_ACCESS_KEY": testSecret})
	args := []string{"--dev", "--data-dir", data, "--listen", "127.0.0.1:0", "--seed", out}
	banner, _, stop := startServe(t, args, env)
	c := rootClient(banner, testAKID, testSecret)
	ctx := context.Background()
	describe := func(id string) *types.KeyMetadata {
		t.Helper()
		d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatalf("DescribeKey %s: %v", id, err)
		}
		return d.KeyMetadata
	}
	// The rotated key holds its last backing key; alias/imported, given
	// as an ARN in local-kms, names the second key.
	for _, tc := range []struct{ name, id, hexKey string }{
		{"alias/app", "963d0e9f-31f0-4627-9441-1ca4c8494219", backing[1][1]},
		{"alias/imported", "abbf36e6-8648-4939-8f32-b4a47fd2e172", backing[2][1]},
	} {
		m := describe(tc.name)
		material, _ := hex.DecodeString(tc.hexKey)
		if *m.KeyId != tc.id || m.Origin != types.OriginTypeExternal || *m.CurrentKeyMaterialId != kms.ImportedKeyMaterialID(*m.Arn, material) {
			t.Errorf("%s: %s origin %s material %s", tc.name, *m.KeyId, m.Origin, aws.ToString(m.CurrentKeyMaterialId))
		}
	}
	if m := describe("b1c01439-ec38-4020-b7cd-d5ee612a863b"); m.KeyState != types.KeyStatePendingImport {
		t.Errorf("EXTERNAL key without backing key: %s", m.KeyState)
	}
	msg := []byte("from local-kms")
	digest := sha256.Sum256(msg)
	sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: aws.String("37358463-6cc4-4a02-82ad-80a909330012"), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPkcs1V15Sha256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(rsaPub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig.Signature); err != nil {
		t.Errorf("RSA key: %v", err)
	}
	sig, err = c.Sign(ctx, &awskms.SignInput{KeyId: aws.String("alias/signing"), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(ecPub.(*ecdsa.PublicKey), digest[:], sig.Signature) {
		t.Error("ECC key: the signature does not verify")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	banner, _, stop = startServe(t, args, env)
	defer stop()
	if got := seedLineRE.FindString(banner); !strings.Contains(got, "0 keys created, 0 key materials imported, 0 aliases and 0 grants created, 0 changes to existing keys; 5 keys already as declared") {
		t.Errorf("second start: %q", got)
	}
}

func publicKeyOf(t *testing.T, p []byte) crypto.PublicKey {
	t.Helper()
	block, _ := pem.Decode(p)
	if block == nil {
		t.Fatalf("no PEM in %q", p)
	}
	var key crypto.Signer
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key = k.(crypto.Signer)
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	return key.Public()
}

// TestImportLocalKMSErrors: a file kmsd cannot convert is refused with
// the key or alias named.
func TestImportLocalKMSErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"bad key id", "Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {KeyId: nope}\n        BackingKeys: [" + strings.Repeat("00", 32) + "]\n", `key "nope": KeyId is not a UUID`},
		{"short backing key", "Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {KeyId: 963d0e9f-31f0-4627-9441-1ca4c8494219}\n        BackingKeys: [abcd]\n", "not 64 hex digits"},
		{"alias to nothing", "Aliases:\n  - {AliasName: alias/x, TargetKeyId: 963d0e9f-31f0-4627-9441-1ca4c8494219}\n", "which the file does not declare"},
		{"not a private key", "Keys:\n  Asymmetric:\n    Rsa:\n      - Metadata: {KeyId: 963d0e9f-31f0-4627-9441-1ca4c8494219}\n        PrivateKeyPem: nothing\n", "no PEM block"},
		{"not YAML", "Keys: [", "local-kms seed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(f, []byte(tc.src), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), []string{"import", "local-kms", f}, &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestServeLocalKMSSeed: kmsd serve --seed takes a local-kms seed file as
// it is (converted as kmsd import local-kms does), once it is private.
func TestServeLocalKMSSeed(t *testing.T) {
	raw, err := os.ReadFile("testdata/local-kms-seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	file, data := filepath.Join(tmp, "seed.yaml"), filepath.Join(tmp, "data")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0", "--seed", file}
	if err := run(context.Background(), append([]string{"serve"}, args...), &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a readable local-kms seed with key material: %v", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	banner, logs, stop := startServe(t, args, envOf(nil))
	defer stop()
	if got := seedLineRE.FindString(banner); !strings.HasPrefix(got, "seed: 5 keys created, 4 key materials imported, 3 aliases") {
		t.Errorf("seed line %q", got)
	}
	if !strings.Contains(logs.String(), "only the last, current one is imported") {
		t.Errorf("the conversion notes are not logged:\n%s", logs.String())
	}
}
