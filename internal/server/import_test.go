package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/keys"
	"github.com/kmsd/kmsd/internal/kmstest"
)

// importOpenSSL returns the path of the openssl command; without it the test
// skips, or fails under CI=true.
func importOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is required under CI=true (apt-get install openssl)")
		}
		t.Skip("openssl not installed: skipping the import test with OpenSSL")
	}
	return path
}

func runOpenSSL(t *testing.T, openssl string, args ...string) {
	t.Helper()
	out, err := exec.Command(openssl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// wrapWithOpenSSL wraps material for import with the public key pub (DER)
// exactly as the AWS documentation describes for each algorithm.
func wrapWithOpenSSL(t *testing.T, openssl string, alg types.AlgorithmSpec, pub, material []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	write := func(name string, b []byte) {
		if err := os.WriteFile(file(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(file(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write("pub.der", pub)
	write("material.bin", material)
	md := "sha256"
	if alg == types.AlgorithmSpecRsaesOaepSha1 || alg == types.AlgorithmSpecRsaAesKeyWrapSha1 {
		md = "sha1"
	}
	oaep := func(in, out string) {
		runOpenSSL(t, openssl, "pkeyutl", "-encrypt", "-in", file(in), "-out", file(out),
			"-inkey", file("pub.der"), "-keyform", "DER", "-pubin",
			"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md)
	}
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaesOaepSha256:
		oaep("material.bin", "encrypted.bin")
		return read("encrypted.bin")
	default:
		runOpenSSL(t, openssl, "rand", "-out", file("aes.bin"), "32")
		runOpenSSL(t, openssl, "enc", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(read("aes.bin")),
			"-iv", "A65959A6", "-in", file("material.bin"), "-out", file("wrapped.bin"))
		oaep("aes.bin", "aes-encrypted.bin")
		return append(read("aes-encrypted.bin"), read("wrapped.bin")...)
	}
}

func keyState(t *testing.T, c *awskms.Client, id *string) types.KeyState {
	t.Helper()
	d, err := c.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	return d.KeyMetadata.KeyState
}

func createExternalKey(t *testing.T, c *awskms.Client) *types.KeyMetadata {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata
}

// TestImportWithOpenSSL imports key material wrapped by OpenSSL with every
// wrapping algorithm (and every wrapping key size), then checks that kmsd
// encrypts and decrypts with exactly that material: a ciphertext sealed
// locally with the material decrypts in kmsd.
func TestImportWithOpenSSL(t *testing.T) {
	openssl := importOpenSSL(t)
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	cases := []struct {
		alg  types.AlgorithmSpec
		spec types.WrappingKeySpec
	}{
		{types.AlgorithmSpecRsaesOaepSha1, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecRsaAesKeyWrapSha1, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa3072},
		{types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa4096},
	}
	for _, tc := range cases {
		t.Run(string(tc.alg)+"/"+string(tc.spec), func(t *testing.T) {
			md := createExternalKey(t, c)
			if md.KeyState != types.KeyStatePendingImport || md.Origin != types.OriginTypeExternal || aws.ToString(md.CurrentKeyMaterialId) != "" {
				t.Fatalf("new EXTERNAL key: state %s, origin %s, material %q", md.KeyState, md.Origin, aws.ToString(md.CurrentKeyMaterialId))
			}
			params, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{
				KeyId: md.KeyId, WrappingAlgorithm: tc.alg, WrappingKeySpec: tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(params.KeyId) != aws.ToString(md.Arn) {
				t.Errorf("KeyId = %s, want %s", aws.ToString(params.KeyId), aws.ToString(md.Arn))
			}
			if want := env.Clock.Now().Add(24 * time.Hour); params.ParametersValidTo == nil || params.ParametersValidTo.Sub(want).Abs() > time.Second {
				t.Errorf("ParametersValidTo = %v, want %v", params.ParametersValidTo, want)
			}
			pub, err := x509.ParsePKIXPublicKey(params.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			bits := map[types.WrappingKeySpec]int{types.WrappingKeySpecRsa2048: 2048, types.WrappingKeySpecRsa3072: 3072, types.WrappingKeySpecRsa4096: 4096}[tc.spec]
			if rk, ok := pub.(*rsa.PublicKey); !ok || rk.N.BitLen() != bits {
				t.Fatalf("wrapping public key %T is not RSA %d", pub, bits)
			}
			material := make([]byte, 32)
			rand.Read(material)
			enc := wrapWithOpenSSL(t, openssl, tc.alg, params.PublicKey, material)
			imp, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: md.KeyId, ImportToken: params.ImportToken,
				EncryptedKeyMaterial: enc, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
			if err != nil {
				t.Fatal(err)
			}
			mid := aws.ToString(imp.KeyMaterialId)
			d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			if d.KeyMetadata.KeyState != types.KeyStateEnabled || aws.ToString(d.KeyMetadata.CurrentKeyMaterialId) != mid ||
				d.KeyMetadata.ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire {
				t.Fatalf("after import: state %s, material %s (want %s), expiration %s", d.KeyMetadata.KeyState,
					aws.ToString(d.KeyMetadata.CurrentKeyMaterialId), mid, d.KeyMetadata.ExpirationModel)
			}
			ct, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("hello")})
			if err != nil {
				t.Fatal(err)
			}
			pt, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
			if err != nil || string(pt.Plaintext) != "hello" || aws.ToString(pt.KeyMaterialId) != mid {
				t.Fatalf("decrypt: %q, %v", pt.Plaintext, err)
			}
			// The key uses exactly the imported material.
			local, err := keys.Seal(rand.Reader, material, keys.Header{KeyID: aws.ToString(md.KeyId), MaterialID: mid}, []byte("sealed locally"), nil)
			if err != nil {
				t.Fatal(err)
			}
			pt, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: local})
			if err != nil || string(pt.Plaintext) != "sealed locally" {
				t.Fatalf("kmsd did not decrypt a ciphertext sealed with the imported material: %q, %v", pt.Plaintext, err)
			}
		})
	}
}

// oaepWrap wraps material for RSAES_OAEP_SHA_256 in Go, for the error cases.
func oaepWrap(t *testing.T, pubDER, material []byte) []byte {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(pubDER)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), material, nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestImportErrorsLeaveKeyUnchanged: wrong, foreign and expired tokens, bad
// wrapping, wrong length and different material, each with AWS's exception
// and no change to the key; then delete, re-import, and expiry.
func TestImportErrorsLeaveKeyUnchanged(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	md := createExternalKey(t, c)
	id := md.KeyId
	other := createExternalKey(t, c)
	params := func(keyID *string) *awskms.GetParametersForImportOutput {
		t.Helper()
		p, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: keyID,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	material := make([]byte, 32)
	rand.Read(material)
	p := params(id)
	imp := func(token, enc []byte) error {
		_, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: token, EncryptedKeyMaterial: enc,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		return err
	}
	unchanged := func(want types.KeyState) {
		t.Helper()
		if got := keyState(t, c, id); got != want {
			t.Fatalf("key state = %s, want %s", got, want)
		}
	}

	_, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: id, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: id})
	wantCode(t, err, "UnsupportedOperationException")

	junk := make([]byte, 32)
	rand.Read(junk)
	wantCode(t, imp(junk, oaepWrap(t, p.PublicKey, material)), "InvalidImportTokenException")
	po := params(other.KeyId)
	wantCode(t, imp(po.ImportToken, oaepWrap(t, po.PublicKey, material)), "InvalidImportTokenException")
	wantCode(t, imp(p.ImportToken, make([]byte, 256)), "InvalidCiphertextException")
	wantCode(t, imp(p.ImportToken, oaepWrap(t, po.PublicKey, material)), "InvalidCiphertextException")
	wantCode(t, imp(p.ImportToken, oaepWrap(t, p.PublicKey, material[:16])), "IncorrectKeyMaterialException")
	// ExpirationModel and ValidTo must agree.
	_, err = c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: oaepWrap(t, p.PublicKey, material)})
	wantCode(t, err, "ValidationException")
	unchanged(types.KeyStatePendingImport)

	// The token expires after 24 hours.
	env.Clock.Advance(24*time.Hour + time.Second)
	wantCode(t, imp(p.ImportToken, oaepWrap(t, p.PublicKey, material)), "ExpiredImportTokenException")
	unchanged(types.KeyStatePendingImport)

	// A good import, with expiring material.
	p = params(id)
	validTo := env.Clock.Now().Add(48 * time.Hour).Truncate(time.Second)
	out, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: oaepWrap(t, p.PublicKey, material), ValidTo: &validTo})
	if err != nil {
		t.Fatal(err)
	}
	mid := aws.ToString(out.KeyMaterialId)
	d, err := c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyMetadata.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires || d.KeyMetadata.ValidTo == nil || !d.KeyMetadata.ValidTo.Equal(validTo) {
		t.Errorf("expiration %s, ValidTo %v; want KEY_MATERIAL_EXPIRES at %v", d.KeyMetadata.ExpirationModel, d.KeyMetadata.ValidTo, validTo)
	}
	ct, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: id, Plaintext: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}

	// Different material is refused, and the key keeps working.
	different := make([]byte, 32)
	rand.Read(different)
	wantCode(t, imp(p.ImportToken, oaepWrap(t, p.PublicKey, different)), "IncorrectKeyMaterialException")
	unchanged(types.KeyStateEnabled)

	// Delete: PendingImport, ciphertexts fail; re-import of other material
	// is refused; the same material brings them back.
	del, err := c.DeleteImportedKeyMaterial(ctx, &awskms.DeleteImportedKeyMaterialInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(del.KeyMaterialId) != mid {
		t.Errorf("deleted material %s, want %s", aws.ToString(del.KeyMaterialId), mid)
	}
	unchanged(types.KeyStatePendingImport)
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.DeleteImportedKeyMaterial(ctx, &awskms.DeleteImportedKeyMaterialInput{KeyId: id})
	wantCode(t, err, "KMSInvalidStateException")
	wantCode(t, imp(p.ImportToken, oaepWrap(t, p.PublicKey, different)), "IncorrectKeyMaterialException")
	unchanged(types.KeyStatePendingImport)
	if err := imp(p.ImportToken, oaepWrap(t, p.PublicKey, material)); err != nil {
		t.Fatal(err)
	}
	unchanged(types.KeyStateEnabled)
	pt, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	if err != nil || !bytes.Equal(pt.Plaintext, []byte("secret")) {
		t.Fatalf("decrypt after re-import: %q, %v", pt.Plaintext, err)
	}

	// Expiry: the reaper deletes expired material.
	validTo = env.Clock.Now().Add(2 * time.Hour)
	if _, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: oaepWrap(t, p.PublicKey, material), ValidTo: &validTo}); err != nil {
		t.Fatal(err)
	}
	if n, err := env.Service.ExpireImportedMaterial(ctx); n != 0 || err != nil {
		t.Fatalf("expired %d keys early (%v)", n, err)
	}
	env.Clock.Advance(2*time.Hour + time.Second)
	if n, err := env.Service.ExpireImportedMaterial(ctx); n != 1 || err != nil {
		t.Fatalf("expired %d keys (%v), want 1", n, err)
	}
	unchanged(types.KeyStatePendingImport)
	_, err = c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	wantCode(t, err, "KMSInvalidStateException")

	// A key pending deletion whose material expires stays pending
	// deletion; cancelled, it returns to PendingImport.
	validTo = env.Clock.Now().Add(2 * time.Hour)
	p = params(id)
	if _, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: oaepWrap(t, p.PublicKey, material), ValidTo: &validTo}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	env.Clock.Advance(3 * time.Hour)
	if n, err := env.Service.ExpireImportedMaterial(ctx); n != 1 || err != nil {
		t.Fatalf("expired %d keys (%v), want 1", n, err)
	}
	unchanged(types.KeyStatePendingDeletion)
	if _, err := c.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	unchanged(types.KeyStatePendingImport)

	// Import operations need an EXTERNAL key.
	plain := createKey(t, c, "not external")
	_, err = c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: plain.KeyId,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.DeleteImportedKeyMaterial(ctx, &awskms.DeleteImportedKeyMaterialInput{KeyId: plain.KeyId})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecMlDsa44, KeyUsage: types.KeyUsageTypeSignVerify})
	wantCode(t, err, "UnsupportedOperationException")
}

// importWithOpenSSL imports material into a new EXTERNAL key of spec with
// RSA_AES_KEY_WRAP_SHA_256, wrapped by OpenSSL.
func importWithOpenSSL(t *testing.T, env *kmstest.Env, openssl string, spec types.KeySpec, usage types.KeyUsageType, material []byte) *string {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	out, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: spec, KeyUsage: usage})
	if err != nil {
		t.Fatal(err)
	}
	id := out.KeyMetadata.KeyId
	if out.KeyMetadata.KeyState != types.KeyStatePendingImport {
		t.Fatalf("new EXTERNAL %s key is %s", spec, out.KeyMetadata.KeyState)
	}
	p, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: id,
		WrappingAlgorithm: types.AlgorithmSpecRsaAesKeyWrapSha256, WrappingKeySpec: types.WrappingKeySpecRsa3072})
	if err != nil {
		t.Fatal(err)
	}
	enc := wrapWithOpenSSL(t, openssl, types.AlgorithmSpecRsaAesKeyWrapSha256, p.PublicKey, material)
	if _, err := c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: enc, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		t.Fatalf("import %s material: %v", spec, err)
	}
	if st := keyState(t, c, id); st != types.KeyStateEnabled {
		t.Fatalf("%s key after import is %s", spec, st)
	}
	return id
}

// TestImportAsymmetricAndHMACWithOpenSSL imports an OpenSSL-generated EC
// and RSA private key (PKCS #8 DER) and an HMAC key; kmsd's signatures
// verify with OpenSSL against the public half of the imported key, and its
// MACs equal OpenSSL's.
func TestImportAsymmetricAndHMACWithOpenSSL(t *testing.T) {
	openssl := importOpenSSL(t)
	env := kmstest.Start(t)
	ctx := context.Background()
	c := env.Client
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	read := func(name string) []byte {
		b, err := os.ReadFile(file(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	msg := []byte("message signed by an imported key")
	if err := os.WriteFile(file("msg.bin"), msg, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		spec    types.KeySpec
		genArgs []string
		alg     types.SigningAlgorithmSpec
		digest  string
		verify  []string
	}{
		{types.KeySpecEccNistP256, []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
			types.SigningAlgorithmSpecEcdsaSha256, "-sha256", nil},
		{types.KeySpecRsa2048, []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
			types.SigningAlgorithmSpecRsassaPssSha256, "-sha256",
			[]string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"}},
	} {
		name := string(tc.spec)
		runOpenSSL(t, openssl, append([]string{"genpkey", "-out", file(name + ".pem")}, tc.genArgs...)...)
		runOpenSSL(t, openssl, "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", file(name+".pem"), "-out", file(name+".der"))
		runOpenSSL(t, openssl, "pkey", "-in", file(name+".pem"), "-pubout", "-outform", "DER", "-out", file(name+".pub.der"))
		runOpenSSL(t, openssl, "pkey", "-in", file(name+".pem"), "-pubout", "-out", file(name+".pub.pem"))
		id := importWithOpenSSL(t, env, openssl, tc.spec, types.KeyUsageTypeSignVerify, read(name+".der"))

		pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: id})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pk.PublicKey, read(name+".pub.der")) {
			t.Errorf("%s: GetPublicKey differs from the imported key's public half", name)
		}
		sig, err := c.Sign(ctx, &awskms.SignInput{KeyId: id, Message: msg, SigningAlgorithm: tc.alg})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file(name+".sig"), sig.Signature, 0o600); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"dgst", tc.digest, "-verify", file(name + ".pub.pem"), "-signature", file(name + ".sig")}, tc.verify...)
		runOpenSSL(t, openssl, append(args, file("msg.bin"))...)

		// Material that is not a private key of the spec is refused.
		bad := importParamsFor(t, c, id)
		_, err = c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: bad.ImportToken,
			EncryptedKeyMaterial: wrapWithOpenSSL(t, openssl, types.AlgorithmSpecRsaAesKeyWrapSha256, bad.PublicKey, []byte("not a key")),
			ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		wantCode(t, err, "IncorrectKeyMaterialException")
	}

	// HMAC: kmsd's MAC equals OpenSSL's with the imported key.
	hk := make([]byte, 32)
	rand.Read(hk)
	id := importWithOpenSSL(t, env, openssl, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, hk)
	mac, err := c.GenerateMac(ctx, &awskms.GenerateMacInput{KeyId: id, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	if err != nil {
		t.Fatal(err)
	}
	runOpenSSL(t, openssl, "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:"+hex.EncodeToString(hk), "-binary", "-out", file("mac.bin"), file("msg.bin"))
	if !bytes.Equal(mac.Mac, read("mac.bin")) {
		t.Errorf("kmsd MAC %x, OpenSSL MAC %x", mac.Mac, read("mac.bin"))
	}
	bad := importParamsFor(t, c, id)
	_, err = c.ImportKeyMaterial(ctx, &awskms.ImportKeyMaterialInput{KeyId: id, ImportToken: bad.ImportToken,
		EncryptedKeyMaterial: wrapWithOpenSSL(t, openssl, types.AlgorithmSpecRsaAesKeyWrapSha256, bad.PublicKey, hk[:20]),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	wantCode(t, err, "IncorrectKeyMaterialException")
}

func importParamsFor(t *testing.T, c *awskms.Client, id *string) *awskms.GetParametersForImportOutput {
	t.Helper()
	p, err := c.GetParametersForImport(context.Background(), &awskms.GetParametersForImportInput{KeyId: id,
		WrappingAlgorithm: types.AlgorithmSpecRsaAesKeyWrapSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
