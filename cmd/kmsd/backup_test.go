package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
	"github.com/kmsd/kmsd/internal/store/snapshot"
)

// backupIAM declares alice, who may use keys only through grants.
const backupIAM = `accounts:
  - id: "111122223333"
    users:
      - name: alice
`

const aliceARN = "arn:aws:iam::111122223333:user/alice"

// backupFixture is what a test made through the service before a backup,
// to check on the restored store.
type backupFixture struct {
	adminAKID, adminSecret string
	aliceAKID, aliceSecret string
	keys                   []string // every key id
	sym, rsaEnc, hmac      string
	ext2, ext3             string
	// ciphertexts decrypt to plaintext "secret N" (N the index) under
	// encCtx-like contexts given with each.
	ciphertexts []sealed
	signatures  []signed
	macs        []mac
	// ext3's import parameters, taken before the backup and used after.
	ext3Token, ext3Public []byte
	// imported is every raw key material imported: none may appear in a
	// snapshot.
	imported [][]byte
	// before is what the read operations answered before the backup.
	before map[string]string
	// grants is what alice could and could not do before the backup.
	grants map[string]string
}

type sealed struct {
	blob    []byte
	context map[string]string
	plain   string
	alg     types.EncryptionAlgorithmSpec
	keyID   string
}

type signed struct {
	keyID string
	alg   types.SigningAlgorithmSpec
	msg   []byte
	sig   []byte
}

type mac struct {
	keyID string
	msg   []byte
	mac   []byte
}

// must returns v once t checked that err is nil: must(f())(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// errCode is the AWS error code of err, or "ok".
func errCode(err error) string {
	if err == nil {
		return "ok"
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

// wrapForImport encrypts material to the wrapping key of
// GetParametersForImport (RSAES_OAEP_SHA_256), as a client does.
func wrapForImport(t *testing.T, public, material []byte) []byte {
	t.Helper()
	pub := must(x509.ParsePKIXPublicKey(public))(t)
	return must(rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), material, nil))(t)
}

func randomMaterial(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// populateForBackup makes keys of every kind through the service of env
// (over HTTP, with the AWS SDK), with aliases, a custom policy, tags,
// grants, an automatic and an on-demand rotation, imported material
// (current, pending and awaited), a key pending deletion, and
// ciphertexts, signatures and MACs under them.
func populateForBackup(t *testing.T, env *kmstest.Env) *backupFixture {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	f := &backupFixture{adminAKID: env.AccessKeyID, adminSecret: env.Secret}
	f.aliceAKID, f.aliceSecret = env.AccessKey(t, kmstest.Account, "alice", "", "")
	alice := env.NewClient(f.aliceAKID, f.aliceSecret)

	create := func(in *awskms.CreateKeyInput) string {
		t.Helper()
		out := must(c.CreateKey(ctx, in))(t)
		f.keys = append(f.keys, *out.KeyMetadata.KeyId)
		return *out.KeyMetadata.KeyId
	}
	encrypt := func(keyID string, ec map[string]string, alg types.EncryptionAlgorithmSpec) {
		t.Helper()
		plain := fmt.Sprintf("secret %d", len(f.ciphertexts))
		out := must(c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &keyID, Plaintext: []byte(plain), EncryptionContext: ec, EncryptionAlgorithm: alg}))(t)
		f.ciphertexts = append(f.ciphertexts, sealed{blob: out.CiphertextBlob, context: ec, plain: plain, alg: alg, keyID: keyID})
	}

	// Symmetric, with a custom policy, tags, and an automatic then an
	// on-demand rotation, a ciphertext under each of its materials.
	f.sym = create(&awskms.CreateKeyInput{Description: aws.String("symmetric"),
		Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("crypto")}}})
	dept := map[string]string{"dept": "x"}
	encrypt(f.sym, dept, "")
	must(c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: &f.sym, RotationPeriodInDays: aws.Int32(90)}))(t)
	env.Clock.Advance(91 * 24 * time.Hour)
	if n, err := env.Service.RotateDueKeys(ctx); n != 1 || err != nil {
		t.Fatalf("RotateDueKeys = %d, %v; want the symmetric key rotated", n, err)
	}
	encrypt(f.sym, dept, "")
	must(c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: &f.sym}))(t)
	encrypt(f.sym, map[string]string{"dept": "x", "more": "y"}, "")
	policy := `{"Version":"2012-10-17","Id":"custom","Statement":[{"Sid":"Root","Effect":"Allow",` +
		`"Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"NoDeleteByAlice","Effect":"Deny","Principal":{"AWS":"` + aliceARN + `"},"Action":"kms:ScheduleKeyDeletion","Resource":"*"}]}`
	must(c.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: &f.sym, PolicyName: aws.String("default"), Policy: &policy}))(t)
	must(c.TagResource(ctx, &awskms.TagResourceInput{KeyId: &f.sym, Tags: []types.Tag{{TagKey: aws.String("env"), TagValue: aws.String("prod")}}}))(t)

	// Asymmetric and HMAC keys of every family.
	f.rsaEnc = create(&awskms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeEncryptDecrypt})
	encrypt(f.rsaEnc, nil, types.EncryptionAlgorithmSpecRsaesOaepSha256)
	for _, k := range []struct {
		spec types.KeySpec
		alg  types.SigningAlgorithmSpec
		raw  bool
	}{
		{types.KeySpecRsa3072, types.SigningAlgorithmSpecRsassaPssSha256, true},
		{types.KeySpecEccNistP256, types.SigningAlgorithmSpecEcdsaSha256, true},
		{types.KeySpecEccSecgP256k1, types.SigningAlgorithmSpecEcdsaSha256, true},
		{types.KeySpecEccNistEdwards25519, types.SigningAlgorithmSpec("ED25519_SHA_512"), true},
		{types.KeySpecMlDsa44, types.SigningAlgorithmSpecMlDsaShake256, true},
	} {
		id := create(&awskms.CreateKeyInput{KeySpec: k.spec, KeyUsage: types.KeyUsageTypeSignVerify})
		msg := []byte("signed by " + string(k.spec))
		out := must(c.Sign(ctx, &awskms.SignInput{KeyId: &id, Message: msg, MessageType: types.MessageTypeRaw, SigningAlgorithm: k.alg}))(t)
		f.signatures = append(f.signatures, signed{keyID: id, alg: k.alg, msg: msg, sig: out.Signature})
	}
	create(&awskms.CreateKeyInput{KeySpec: types.KeySpecEccNistP384, KeyUsage: types.KeyUsageType("KEY_AGREEMENT")})
	create(&awskms.CreateKeyInput{KeySpec: types.KeySpecMlKem768, KeyUsage: types.KeyUsageType("ENCAPSULATE_DECAPSULATE")})
	f.hmac = create(&awskms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	macOut := must(c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: &f.hmac, Message: []byte("mac me"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256}))(t)
	f.macs = append(f.macs, mac{keyID: f.hmac, msg: []byte("mac me"), mac: macOut.Mac})

	// Imported material: ext1 current and expiring, ext2 with a new
	// material pending rotation, ext3 awaiting its first import.
	importInto := func(keyID string, in awskms.ImportKeyMaterialInput) {
		t.Helper()
		p := must(c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: &keyID,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048}))(t)
		material := randomMaterial(t)
		f.imported = append(f.imported, material)
		in.KeyId, in.ImportToken, in.EncryptedKeyMaterial = &keyID, p.ImportToken, wrapForImport(t, p.PublicKey, material)
		must(c.ImportKeyMaterial(ctx, &in))(t)
	}
	ext1 := create(&awskms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("imported, expires")})
	importInto(ext1, awskms.ImportKeyMaterialInput{ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
		ValidTo: aws.Time(env.Clock.Now().Add(30 * 24 * time.Hour))})
	encrypt(ext1, nil, "")
	f.ext2 = create(&awskms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("imported, new material pending")})
	importInto(f.ext2, awskms.ImportKeyMaterialInput{ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	encrypt(f.ext2, nil, "")
	importInto(f.ext2, awskms.ImportKeyMaterialInput{ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		ImportType: types.ImportType("NEW_KEY_MATERIAL")})
	f.ext3 = create(&awskms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("awaiting material")})
	p := must(c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: &f.ext3,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048}))(t)
	f.ext3Token, f.ext3Public = p.ImportToken, p.PublicKey

	// A key pending deletion.
	doomed := create(&awskms.CreateKeyInput{Description: aws.String("doomed")})
	must(c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: &doomed, PendingWindowInDays: aws.Int32(7)}))(t)

	// Aliases and grants.
	for name, key := range map[string]string{"alias/sym": f.sym, "alias/hmac": f.hmac, "alias/ext": ext1} {
		must(c.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(key)}))(t)
	}
	must(c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: &f.sym, GranteePrincipal: aws.String(aliceARN), Name: aws.String("dept-x"),
		Operations:  []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: dept}, RetiringPrincipal: aws.String(aliceARN)}))(t)
	signer := f.signatures[0].keyID
	must(c.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: &signer, GranteePrincipal: aws.String(aliceARN),
		Operations: []types.GrantOperation{types.GrantOperationSign, types.GrantOperationVerify}}))(t)

	f.before = readAll(t, c, f.keys)
	f.grants = aliceCan(t, alice, f)
	for what, want := range map[string]string{"decrypt with dept=x": "ok", "encrypt with dept=x": "ok", "encrypt with dept=y": "AccessDeniedException",
		"sign": "ok", "generate a MAC": "AccessDeniedException", "decrypt ext": "AccessDeniedException"} {
		if f.grants[what] != want {
			t.Fatalf("before the backup, alice may %s: %s, want %s", what, f.grants[what], want)
		}
	}
	return f
}

// aliceCan records what alice's grants let her do, and what they do not.
func aliceCan(t *testing.T, alice *awskms.Client, f *backupFixture) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	_, err := alice.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: f.ciphertexts[0].blob, EncryptionContext: f.ciphertexts[0].context})
	got["decrypt with dept=x"] = errCode(err)
	_, err = alice.Encrypt(ctx, &awskms.EncryptInput{KeyId: &f.sym, Plaintext: []byte("a"), EncryptionContext: map[string]string{"dept": "x"}})
	got["encrypt with dept=x"] = errCode(err)
	_, err = alice.Encrypt(ctx, &awskms.EncryptInput{KeyId: &f.sym, Plaintext: []byte("a"), EncryptionContext: map[string]string{"dept": "y"}})
	got["encrypt with dept=y"] = errCode(err)
	s := f.signatures[0]
	_, err = alice.Sign(ctx, &awskms.SignInput{KeyId: &s.keyID, Message: s.msg, MessageType: types.MessageTypeRaw, SigningAlgorithm: s.alg})
	got["sign"] = errCode(err)
	_, err = alice.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: &f.hmac, Message: []byte("m"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	got["generate a MAC"] = errCode(err)
	ext := f.ciphertexts[len(f.ciphertexts)-2] // under ext1
	_, err = alice.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ext.blob})
	got["decrypt ext"] = errCode(err)
	return got
}

// readAll records, as JSON, what the read operations answer for keys:
// DescribeKey, GetKeyPolicy, ListGrants, ListResourceTags,
// ListKeyRotations, GetKeyRotationStatus, GetPublicKey, and ListAliases
// and ListKeys.
func readAll(t *testing.T, c *awskms.Client, keys []string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	record := func(what string, v any, err error) {
		if err != nil {
			out[what] = "error " + errCode(err)
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[what] = string(b)
	}
	for _, id := range keys {
		d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &id})
		record("DescribeKey "+id, d.KeyMetadata, err)
		p, err := c.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: &id, PolicyName: aws.String("default")})
		record("GetKeyPolicy "+id, p.Policy, err)
		g, err := c.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: &id})
		record("ListGrants "+id, g.Grants, err)
		tags, err := c.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: &id})
		record("ListResourceTags "+id, tags.Tags, err)
		r, err := c.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: &id})
		if err == nil {
			record("ListKeyRotations "+id, r.Rotations, err)
		} else {
			record("ListKeyRotations "+id, nil, err)
		}
		rs, err := c.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: &id})
		if err == nil {
			record("GetKeyRotationStatus "+id, rs, err)
		} else {
			record("GetKeyRotationStatus "+id, nil, err)
		}
		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: &id})
		if err == nil {
			record("GetPublicKey "+id, pk, err)
		} else {
			record("GetPublicKey "+id, nil, err)
		}
	}
	a, err := c.ListAliases(ctx, &awskms.ListAliasesInput{})
	record("ListAliases", a.Aliases, err)
	k, err := c.ListKeys(ctx, &awskms.ListKeysInput{})
	record("ListKeys", k.Keys, err)
	return out
}

// storeArgs are the flags that name the store of cfg.
func storeArgs(cfg backend.Config) []string {
	if cfg.Type == backend.Postgres {
		return []string{"--store", backend.Postgres, "--store-dsn", cfg.DSN}
	}
	return nil
}

// runKmsd runs kmsd with args and returns its standard output and error.
func runKmsd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut, noEnv)
	return out.String(), errOut.String(), err
}

// copyRootKey copies the root key of data folder from into a new data
// folder to (mode 0700), as an operator restoring does.
func copyRootKey(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	b := must(os.ReadFile(filepath.Join(from, rootmgr.RootKeyFile)))(t)
	if err := os.WriteFile(filepath.Join(to, rootmgr.RootKeyFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRestore backs up a store populated through the service (while
// it serves), restores the snapshot into a new SQLite data folder and,
// with a PostgreSQL test server, into a PostgreSQL database, and checks on
// kmsd serve over each restored store that every ciphertext decrypts,
// every signature and MAC verifies, the grants allow what they allowed,
// the read operations answer as before, and the import parameters and the
// pending material taken before the backup still work.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	env := kmstest.StartWithIAM(t, backupIAM, dir)
	f := populateForBackup(t, env)
	src := backendtest.Config(t, env.DataDir)
	// The last uses of keys reach the store in the background; written
	// now, both backups below hold the same ones.
	if err := env.Service.FlushKeyUsage(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A backup to a file, while the service runs.
	snapFile := filepath.Join(dir, "kmsd.snapshot")
	out, _, err := runKmsd(t, append([]string{"backup", "--data-dir", env.DataDir, "-o", snapFile}, storeArgs(src)...)...)
	if err != nil {
		t.Fatalf("kmsd backup: %v", err)
	}
	rootID := must(keystore.OpenFile(filepath.Join(env.DataDir, rootmgr.RootKeyFile)))(t).ID()
	for _, want := range []string{"NOT in the snapshot", "root keys: " + rootID, fmt.Sprintf("%d keys", len(f.keys))} {
		if !strings.Contains(out, want) {
			t.Errorf("kmsd backup output lacks %q:\n%s", want, out)
		}
	}
	if src.DSN != "" && strings.Contains(out, src.DSN) {
		t.Errorf("kmsd backup printed the DSN:\n%s", out)
	}
	fi := must(os.Stat(snapFile))(t)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot file mode %o, want 600", fi.Mode().Perm())
	}
	data := must(os.ReadFile(snapFile))(t)
	if sum := fmt.Sprintf("%x", sha256.Sum256(data)); !strings.Contains(out, sum) {
		t.Errorf("kmsd backup output lacks the file's SHA-256 %s:\n%s", sum, out)
	}
	// No plaintext secret: neither imported material nor alice's secret.
	for i, secret := range append(slices.Clone(f.imported), []byte(f.aliceSecret), []byte(f.adminSecret)) {
		if bytes.Contains(data, secret) || bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(secret))) {
			t.Errorf("the snapshot holds plaintext secret %d", i)
		}
	}

	// A backup to standard output: the same records, the report on
	// standard error.
	stdout, stderr, err := runKmsd(t, append([]string{"backup", "--data-dir", env.DataDir, "-o", "-"}, storeArgs(src)...)...)
	if err != nil {
		t.Fatalf("kmsd backup -o -: %v", err)
	}
	fromFile := must(snapshot.Decode(bytes.NewReader(data)))(t)
	fromStdout := must(snapshot.Decode(strings.NewReader(stdout)))(t)
	if fromFile.Counts() != fromStdout.Counts() || !strings.Contains(stderr, "NOT in the snapshot") {
		t.Errorf("kmsd backup -o -: counts %+v (file: %+v); report:\n%s", fromStdout.Counts(), fromFile.Counts(), stderr)
	}

	t.Run("sqlite", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "data")
		copyRootKey(t, env.DataDir, target)
		checkRestored(t, f, snapFile, rootID, target, backend.Config{Type: backend.SQLite, DataDir: target})
	})
	t.Run("postgres", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "data")
		copyRootKey(t, env.DataDir, target)
		checkRestored(t, f, snapFile, rootID, target, backend.Config{Type: backend.Postgres, DataDir: target, DSN: pgtest.DSN(t)})
	})
}

// checkRestored restores snapFile into the store dst (data folder target,
// holding the source's root key, rootID) and checks it through kmsd serve.
func checkRestored(t *testing.T, f *backupFixture, snapFile, rootID, target string, dst backend.Config) {
	ctx := context.Background()
	out, _, err := runKmsd(t, append([]string{"restore", "--data-dir", target, snapFile}, storeArgs(dst)...)...)
	if err != nil {
		t.Fatalf("kmsd restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("%d keys", len(f.keys))) || !strings.Contains(out, "root keys: "+rootID) {
		t.Errorf("kmsd restore output:\n%s", out)
	}
	if dst.DSN != "" && strings.Contains(out, dst.DSN) {
		t.Errorf("kmsd restore printed the DSN:\n%s", out)
	}
	// A second restore into the same store is refused.
	if _, _, err := runKmsd(t, append([]string{"restore", "--data-dir", target, snapFile}, storeArgs(dst)...)...); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second restore into the restored store: %v, want it refused as not empty", err)
	}

	cfgFile := filepath.Join(t.TempDir(), "kmsd.yaml")
	yaml := "data_dir: " + target + "\niam:\n" + indent(backupIAM)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	banner, stop := serveUntil(t, append([]string{"--config", cfgFile, "--listen", "127.0.0.1:0"}, storeArgs(dst)...), noEnv)
	defer stop()
	if strings.Contains(banner, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("kmsd serve on the restored store made a new admin key:\n%s", banner)
	}
	c := rootClient(banner, f.adminAKID, f.adminSecret)
	alice := rootClient(banner, f.aliceAKID, f.aliceSecret)

	after := readAll(t, c, f.keys)
	for what, want := range f.before {
		if after[what] != want {
			t.Errorf("%s after the restore:\n got %s\nwant %s", what, after[what], want)
		}
	}
	for i, ct := range f.ciphertexts {
		dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.blob, EncryptionContext: ct.context, KeyId: &ct.keyID, EncryptionAlgorithm: ct.alg})
		if err != nil || string(dec.Plaintext) != ct.plain {
			t.Errorf("ciphertext %d after the restore: %v", i, err)
		}
	}
	for _, s := range f.signatures {
		v, err := c.Verify(ctx, &awskms.VerifyInput{KeyId: &s.keyID, Message: s.msg, MessageType: types.MessageTypeRaw, Signature: s.sig, SigningAlgorithm: s.alg})
		if err != nil || !v.SignatureValid {
			t.Errorf("signature by %s (%s) after the restore: %v", s.keyID, s.alg, err)
		}
	}
	for _, m := range f.macs {
		v, err := c.VerifyMac(ctx, &awskms.VerifyMacInput{KeyId: &m.keyID, Message: m.msg, Mac: m.mac, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		if err != nil || !v.MacValid {
			t.Errorf("MAC after the restore: %v", err)
		}
	}
	if got := aliceCan(t, alice, f); !equalMaps(got, f.grants) {
		t.Errorf("alice's grants after the restore allow %v, before %v", got, f.grants)
	}

	// The pending material of ext2 is still pending: an on-demand
	// rotation makes it current, and the ciphertext of its first
	// material still decrypts.
	if _, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: &f.ext2}); err != nil {
		t.Errorf("RotateKeyOnDemand of the key with pending material: %v", err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &f.ext2, Plaintext: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	for _, blob := range [][]byte{enc.CiphertextBlob, f.ciphertexts[len(f.ciphertexts)-1].blob} {
		if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob}); err != nil {
			t.Errorf("decrypt under ext2 after its rotation: %v", err)
		}
	}
	// The import parameters given before the backup still import.
	if _, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: &f.ext3, ImportToken: f.ext3Token,
		EncryptedKeyMaterial: wrapForImport(t, f.ext3Public, randomMaterial(t)), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		t.Errorf("ImportKeyMaterial with the parameters of before the backup: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func indent(s string) string {
	return regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimRight(s, "\n"), "  ") + "\n"
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// backupOf makes a small store in a new data folder through kmsd serve and
// returns the folder and a snapshot file of it.
func backupOf(t *testing.T) (data, snapFile string) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	banner, stop := serveUntil(t, []string{"--data-dir", data, "--listen", "127.0.0.1:0"}, noEnv)
	akid := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
	secret := regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
	c := rootClient(banner, akid, secret)
	for range 3 {
		if _, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	snapFile = filepath.Join(t.TempDir(), "snap")
	if _, _, err := runKmsd(t, "backup", "--data-dir", data, "-o", snapFile); err != nil {
		t.Fatal(err)
	}
	return data, snapFile
}

// countKeys counts the keys of the store in data folder data.
func countKeys(t *testing.T, data string) int {
	t.Helper()
	n := 0
	for _, c := range must(openTestStore(t, data).CountKeysByState(context.Background()))(t) {
		n += c
	}
	return n
}

// TestRestoreRefusesNonEmptyStore restores into a data folder whose store
// holds keys: refused, with the store as it was.
func TestRestoreRefusesNonEmptyStore(t *testing.T) {
	data, snapFile := backupOf(t)
	other, _ := backupOf(t)
	before := countKeys(t, other)
	_, _, err := runKmsd(t, "restore", "--data-dir", other, snapFile)
	if err == nil || !strings.Contains(err.Error(), "not empty: it holds keys, access keys") {
		t.Fatalf("restore into a store with keys: %v", err)
	}
	if n := countKeys(t, other); n != before {
		t.Errorf("the refused restore changed the store: %d keys, want %d", n, before)
	}
	// Into its own source, too.
	if _, _, err := runKmsd(t, "restore", snapFile, "--data-dir", data); err == nil {
		t.Error("restore into the snapshot's own store succeeded")
	}
}

// TestRestoreRefusesDamagedSnapshot restores truncated and altered
// snapshots: each is refused before anything is written; the data folder
// is not even created.
func TestRestoreRefusesDamagedSnapshot(t *testing.T) {
	_, snapFile := backupOf(t)
	good := must(os.ReadFile(snapFile))(t)
	lines := bytes.SplitAfter(good, []byte("\n"))
	altered := bytes.Clone(good)
	i := bytes.Index(altered, []byte(`"wrapped":"`)) + len(`"wrapped":"`) + 5
	// Another blob, still valid base64.
	if altered[i] == 'A' {
		altered[i] = 'B'
	} else {
		altered[i] = 'A'
	}
	for name, input := range map[string][]byte{
		"truncated at a record": bytes.Join(lines[:len(lines)-2], nil),
		"truncated mid-record":  good[:len(good)/2],
		"altered":               altered,
		"empty":                 nil,
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "snap")
			if err := os.WriteFile(file, input, 0o600); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "data")
			_, _, err := runKmsd(t, "restore", "--data-dir", target, file)
			if !errors.Is(err, snapshot.ErrFormat) {
				t.Fatalf("restore of a damaged snapshot: %v, want ErrFormat", err)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused restore left %s: %v", target, err)
			}
		})
	}
	// From standard input, the intact snapshot restores.
	target := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	if err := restoreMain(context.Background(), []string{"--data-dir", target, "-"}, bytes.NewReader(good), &out, io.Discard, noEnv); err != nil {
		t.Fatalf("restore from standard input: %v", err)
	}
	if n := countKeys(t, target); n != 3 {
		t.Errorf("restored %d keys, want 3", n)
	}
}

// TestBackupRefusals: no store to back up, no -o, and a DSN with a
// password that must appear nowhere in what kmsd prints.
func TestBackupRefusals(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	if _, _, err := runKmsd(t, "backup", "--data-dir", missing, "-o", filepath.Join(t.TempDir(), "s")); err == nil {
		t.Error("backup of a data folder without a store succeeded")
	}
	if _, err := os.Stat(filepath.Join(missing, backend.DatabaseFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup of a missing store created one: %v", err)
	}
	if _, _, err := runKmsd(t, "backup", "--data-dir", missing); err == nil {
		t.Error("backup without -o succeeded")
	}
	const password = "pw-3e1f9c-never-shown"
	dsn := "host=127.0.0.1 port=1 user=kmsd password=" + password + " dbname=kmsd connect_timeout=1 sslmode=disable"
	for _, args := range [][]string{
		{"backup", "--store", "postgres", "--store-dsn", dsn, "-o", filepath.Join(t.TempDir(), "s")},
		{"restore", "--store", "postgres", "--store-dsn", dsn, filepath.Join(t.TempDir(), "missing")},
	} {
		stdout, stderr, err := runKmsd(t, args...)
		if err == nil {
			t.Fatalf("kmsd %s against an unreachable server succeeded", args[0])
		}
		if strings.Contains(stdout+stderr+err.Error(), password) {
			t.Errorf("kmsd %s showed the DSN's password: %v\n%s%s", args[0], err, stdout, stderr)
		}
	}
}
