package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
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

const (
	seedSymID  = "11111111-2222-4333-8444-555555555555"
	seedHMACID = "22222222-3333-4444-8555-666666666666"
	seedAESID  = "33333333-4444-4555-8666-777777777777"
	seedRSAID  = "44444444-5555-4666-8777-888888888888"
)

// seedFixture is a seed of every kind, with the material it imports.
type seedFixture struct {
	dir, file       string
	hmacKey, aesKey []byte
	rsaKey          *rsa.PrivateKey
	ecKey           *ecdsa.PrivateKey
}

func newSeedFixture(t *testing.T) *seedFixture {
	t.Helper()
	f := &seedFixture{dir: t.TempDir(), hmacKey: make([]byte, 32), aesKey: make([]byte, 32)}
	rand.Read(f.hmacKey)
	rand.Read(f.aesKey)
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	// The RSA key in a file (PKCS #1 PEM), the EC key inline (SEC 1 PEM).
	rsaFile := filepath.Join(f.dir, "rsa.pem")
	if err := os.WriteFile(rsaFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(f.rsaKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(f.ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	if err := os.WriteFile(filepath.Join(f.dir, "policy.json"), []byte(seedPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	f.file = filepath.Join(f.dir, "seed.yaml")
	f.write(t, `keys:
  - id: `+seedSymID+`
    description: app data key
    policy_file: policy.json
    tags: {team: payments, env: test}
    aliases: [alias/app, alias/app-2]
    grants:
      - name: app-decrypt
        grantee: arn:aws:iam::111122223333:role/app
        operations: [Decrypt, Encrypt]
        encryption_context_subset: {app: payments}
  - aliases: [alias/signing]
    spec: ECC_NIST_P384
    usage: SIGN_VERIFY
  - id: `+seedHMACID+`
    spec: HMAC_256
    material: {hex: `+hex.EncodeToString(f.hmacKey)+`}
  - id: `+seedAESID+`
    aliases: [alias/imported]
    material: {base64: "`+base64.StdEncoding.EncodeToString(f.aesKey)+`"}
  - id: `+seedRSAID+`
    spec: RSA_2048
    usage: SIGN_VERIFY
    material: {file: rsa.pem}
  - aliases: [alias/ec-imported]
    spec: ECC_NIST_P256
    usage: SIGN_VERIFY
    material:
      pem: |
`+indentLines(string(ecPEM), "        ")+`  - aliases: [alias/off]
    enabled: false
`)
	return f
}

const seedPolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

func (f *seedFixture) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(f.file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

var seedLineRE = regexp.MustCompile(`seed: .*`)

// TestSeed applies a seed of every kind (fixed ids, aliases, a key policy,
// tags, a grant, imported symmetric, HMAC, RSA and ECC material, a
// disabled key), proves the imported material is the test's, and checks
// that a second start changes nothing and that every step was audited.
func TestSeed(t *testing.T) {
	f := newSeedFixture(t)
	data := filepath.Join(t.TempDir(), "data")
	env := envOf(map[string]string{"KMSD_DEV_ACCESS_KEY_ID": testAKID, "KMSD_DEV_SECRET_ACCESS_KEY": testSecret})
	args := []string{"--dev", "--data-dir", data, "--listen", "127.0.0.1:0", "--seed", f.file}
	ctx := context.Background()

	banner, logs, stop := startServe(t, args, env)
	if got := seedLineRE.FindString(banner); got != "seed: 7 keys created, 4 key materials imported, 6 aliases and 1 grants created, 0 changes to existing keys; 0 keys already as declared" {
		t.Errorf("first start: %q", got)
	}
	c := rootClient(banner, testAKID, testSecret)
	before := snapshotKeys(t, c)

	// The symmetric key: its fixed id, description, policy, tags, aliases
	// and grant.
	d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/app-2")})
	if err != nil || *d.KeyMetadata.KeyId != seedSymID || *d.KeyMetadata.Description != "app data key" {
		t.Fatalf("alias/app-2: %+v, %v", d, err)
	}
	pol, err := c.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: aws.String(seedSymID)})
	if err != nil || *pol.Policy != seedPolicy {
		t.Errorf("policy = %v, %v", pol, err)
	}
	gr, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: aws.String(seedSymID)})
	if err != nil || len(gr.Grants) != 1 || *gr.Grants[0].Name != "app-decrypt" || gr.Grants[0].Constraints.EncryptionContextSubset["app"] != "payments" {
		t.Errorf("grants = %+v, %v", gr, err)
	}

	// HMAC with known material: kmsd's MAC is the test's.
	msg := []byte("seeded message")
	mac, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: aws.String(seedHMACID), MacAlgorithm: types.MacAlgorithmSpecHmacSha256, Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, f.hmacKey)
	h.Write(msg)
	if !hmac.Equal(mac.Mac, h.Sum(nil)) {
		t.Error("the HMAC key does not hold the seed's material")
	}
	// The imported AES key holds the test's material (its material id is
	// derived from it) and works.
	d, err = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/imported")})
	if err != nil || d.KeyMetadata.Origin != types.OriginTypeExternal || *d.KeyMetadata.CurrentKeyMaterialId != kms.ImportedKeyMaterialID(*d.KeyMetadata.Arn, f.aesKey) {
		t.Fatalf("alias/imported: %+v, %v", d, err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/imported"), Plaintext: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "hi" {
		t.Fatalf("Decrypt = %v", err)
	}
	// RSA and ECC with known private keys: the test's public keys verify
	// kmsd's signatures.
	digest := sha256.Sum256(msg)
	sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: aws.String(seedRSAID), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&f.rsaKey.PublicKey, crypto.SHA256, digest[:], sig.Signature, nil); err != nil {
		t.Errorf("RSA signature does not verify with the seed's key: %v", err)
	}
	sig, err = c.Sign(ctx, &awskms.SignInput{KeyId: aws.String("alias/ec-imported"), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(&f.ecKey.PublicKey, digest[:], sig.Signature) {
		t.Error("ECDSA signature does not verify with the seed's key")
	}
	if d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/off")}); err != nil || d.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Errorf("alias/off: %+v, %v", d, err)
	}
	if d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/signing")}); err != nil || d.KeyMetadata.KeySpec != types.KeySpecEccNistP384 {
		t.Errorf("alias/signing: %+v, %v", d, err)
	}
	if strings.Contains(logs.String(), hex.EncodeToString(f.hmacKey)) || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(f.aesKey)) {
		t.Fatal("key material in the log")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A second start changes nothing.
	banner, _, stop = startServe(t, args, env)
	if got := seedLineRE.FindString(banner); got != "seed: 0 keys created, 0 key materials imported, 0 aliases and 0 grants created, 0 changes to existing keys; 7 keys already as declared" {
		t.Errorf("second start: %q", got)
	}
	if after := snapshotKeys(t, rootClient(banner, testAKID, testSecret)); after != before {
		t.Errorf("the second start changed the keys:\nbefore %s\nafter  %s", before, after)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Every step is in the audit log, as the admin user, from kmsd-seed;
	// no record holds the material.
	records := auditText(t, data)
	for _, want := range []string{`"eventName":"CreateKey"`, `"eventName":"ImportKeyMaterial"`, `"eventName":"CreateGrant"`, `"eventName":"CreateAlias"`,
		`"userAgent":"kmsd-seed"`, `"arn":"arn:aws:iam::111122223333:user/admin"`, `"keyId":"` + seedSymID + `"`} {
		if !strings.Contains(records, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	if strings.Contains(records, hex.EncodeToString(f.hmacKey)) || strings.Contains(records, base64.StdEncoding.EncodeToString(f.aesKey)) {
		t.Fatal("key material in the audit log")
	}
}

// snapshotKeys describes every key, alias and grant.
func snapshotKeys(t *testing.T, c *awskms.Client) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	keys, err := c.ListKeys(ctx, &awskms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Keys {
		d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: k.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		m := d.KeyMetadata
		b.WriteString(*k.KeyId + " " + string(m.KeySpec) + " " + string(m.KeyState) + " " + aws.ToString(m.Description) + " " + aws.ToString(m.CurrentKeyMaterialId) + ";")
		g, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: k.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		for _, gr := range g.Grants {
			b.WriteString(" grant " + *gr.GrantId)
		}
		tags, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: k.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags.Tags {
			b.WriteString(" tag " + *tg.TagKey + "=" + *tg.TagValue)
		}
	}
	al, err := c.ListAliases(ctx, &awskms.ListAliasesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range al.Aliases {
		b.WriteString(" " + *a.AliasName + "->" + aws.ToString(a.TargetKeyId))
	}
	return b.String()
}

// auditText is the whole audit log of a data folder.
func auditText(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	files, _ := filepath.Glob(filepath.Join(data, "audit", "*"))
	for _, f := range files {
		content, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(content)
	}
	if b.Len() == 0 {
		t.Fatalf("no audit log in %s", data)
	}
	return b.String()
}

// TestSeedConflicts starts kmsd with a first seed, then with a second
// one that cannot be applied: the start is refused with an error naming
// the seed item and the reason. A change that can be applied is.
func TestSeedConflicts(t *testing.T) {
	k1, k2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name, first, second string
		want                string // error; "" for a start that applies the change
		line                string // the seed line of a start that succeeds
	}{
		{"fixed id with another spec",
			"keys:\n  - id: " + seedSymID + "\n",
			"keys:\n  - id: " + seedSymID + "\n    spec: HMAC_256\n",
			"seed key " + seedSymID + ": key " + seedSymID + " exists with key spec SYMMETRIC_DEFAULT, not HMAC_256", ""},
		{"fixed id with another usage",
			"keys:\n  - id: " + seedSymID + "\n    spec: RSA_2048\n    usage: SIGN_VERIFY\n",
			"keys:\n  - id: " + seedSymID + "\n    spec: RSA_2048\n    usage: ENCRYPT_DECRYPT\n",
			"exists with key usage SIGN_VERIFY, not ENCRYPT_DECRYPT", ""},
		{"other material",
			"keys:\n  - id: " + seedHMACID + "\n    spec: HMAC_256\n    material: {hex: " + k1 + "}\n",
			"keys:\n  - id: " + seedHMACID + "\n    spec: HMAC_256\n    material: {hex: " + k2 + "}\n",
			"seed key " + seedHMACID + ": key " + seedHMACID + " holds other key material", ""},
		{"material for a key kmsd made",
			"keys:\n  - aliases: [alias/a]\n",
			"keys:\n  - aliases: [alias/a]\n    material: {hex: " + k1 + "}\n",
			"exists with origin AWS_KMS, not EXTERNAL", ""},
		{"alias names another key",
			"keys:\n  - aliases: [alias/a]\n  - id: " + seedAESID + "\n",
			"keys:\n  - id: " + seedAESID + "\n    aliases: [alias/a]\n",
			"seed key " + seedAESID + ": alias alias/a exists and names key", ""},
		{"grant with other terms",
			"keys:\n  - aliases: [alias/g]\n    grants: [{name: g1, grantee: 'arn:aws:iam::111122223333:role/r', operations: [Encrypt]}]\n",
			"keys:\n  - aliases: [alias/g]\n    grants: [{name: g1, grantee: 'arn:aws:iam::111122223333:role/r', operations: [Decrypt]}]\n",
			"seed key alias/g: grant g1: a grant of that name", ""},
		{"invalid spec",
			"keys: []\n",
			"keys:\n  - aliases: [alias/x]\n    spec: AES_512\n",
			"seed key alias/x: CreateKey: ValidationException", ""},
		{"description, tags, state and a new alias are applied",
			"keys:\n  - id: " + seedSymID + "\n    description: one\n    tags: {a: '1'}\n",
			"keys:\n  - id: " + seedSymID + "\n    description: two\n    tags: {a: '2', b: '3'}\n    enabled: false\n    aliases: [alias/new]\n",
			"", "seed: 0 keys created, 0 key materials imported, 1 aliases and 0 grants created, 1 changes to existing keys; 0 keys already as declared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			data, file := filepath.Join(tmp, "data"), filepath.Join(tmp, "seed.yaml")
			args := []string{"--data-dir", data, "--listen", "127.0.0.1:0", "--seed", file}
			if err := os.WriteFile(file, []byte(tc.first), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, stop := startServe(t, args, envOf(nil))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(tc.second), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				banner, _, stop := startServe(t, args, envOf(nil))
				defer stop()
				if got := seedLineRE.FindString(banner); got != tc.line {
					t.Fatalf("seed line %q, want %q", got, tc.line)
				}
				return
			}
			err := run(context.Background(), append([]string{"serve"}, args...), &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("second start: %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), k1) || strings.Contains(err.Error(), k2) {
				t.Fatal("the error shows key material")
			}
		})
	}
}

// TestSeedFileChecks: what is wrong in a seed file is refused before
// kmsd creates anything.
func TestSeedFileChecks(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"key id not a UUID", "keys:\n  - id: not-a-uuid\n", 0o600, `id "not-a-uuid" is not a key id in UUID form`},
		{"upper-case UUID", "keys:\n  - id: 11111111-2222-4333-8444-55555555555A\n", 0o600, "is not a key id in UUID form"},
		{"no id nor alias", "keys:\n  - description: lost\n", 0o600, "seed key #1: give it an id or an alias"},
		{"same alias twice", "keys:\n  - aliases: [alias/a]\n  - aliases: [alias/a]\n", 0o600, "alias alias/a is declared twice"},
		{"reserved alias", "keys:\n  - aliases: [alias/aws/s3]\n", 0o600, "reserved"},
		{"two material sources", "keys:\n  - aliases: [alias/a]\n    material: {hex: '00', base64: AA==}\n", 0o600, "exactly one of"},
		{"grant without a name", "keys:\n  - aliases: [alias/a]\n    grants: [{grantee: x, operations: [Encrypt]}]\n", 0o600, "every grant needs a name"},
		{"unknown member", "keys:\n  - aliases: [alias/a]\n    colour: blue\n", 0o600, "field colour not found"},
		{"material readable by others", "keys:\n  - aliases: [alias/a]\n    material: {hex: '00'}\n", 0o644, "chmod 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			data, file := filepath.Join(tmp, "data"), filepath.Join(tmp, "seed.yaml")
			if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), []string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--seed", file}, &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatal("a refused seed left a data folder")
			}
		})
	}
}
