package server_test

// Interoperability with OpenSSL, an implementation independent of Go's:
// kmsd signatures verify with `openssl dgst -verify` / `openssl pkeyutl
// -verify` against the GetPublicKey DER, data encrypted by `openssl pkeyutl
// -encrypt` (RSA-OAEP, SHA-1 and SHA-256) decrypts in kmsd, DeriveSharedSecret
// equals `openssl pkeyutl -derive`, and OpenSSL reads GenerateDataKeyPair's
// keys. (The HMAC check, `openssl mac`, needs the key material and lives in
// package kms.)
//
// OpenSSL 3.0 (Debian 12) has no ML-DSA, ML-KEM or Ed25519ph: those checks
// run only with an OpenSSL that lists the algorithm, and otherwise rely on
// the Wycheproof and RFC 8032 vectors of package keys.
//
// Without an openssl binary the tests skip, except under CI=true, where they
// fail.

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// openSSL runs the openssl binary in a temporary folder.
type openSSL struct {
	t   *testing.T
	dir string
}

func needOpenSSL(t *testing.T) *openSSL {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found (apt-get install -y openssl)")
		}
		t.Skip("openssl not found (apt-get install -y openssl); set CI=true to make this a failure")
	}
	return &openSSL{t: t, dir: t.TempDir()}
}

// file writes b to a file of the temporary folder and returns its path.
func (o *openSSL) file(name string, b []byte) string {
	o.t.Helper()
	p := filepath.Join(o.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		o.t.Fatal(err)
	}
	return p
}

func (o *openSSL) read(name string) []byte {
	o.t.Helper()
	b, err := os.ReadFile(filepath.Join(o.dir, name))
	if err != nil {
		o.t.Fatal(err)
	}
	return b
}

// pubPEM writes a DER public key as PEM.
func (o *openSSL) pubPEM(name string, der []byte) string {
	return o.file(name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// run runs openssl and returns its output and whether it exited 0.
func (o *openSSL) run(args ...string) (string, bool) {
	cmd := exec.Command("openssl", args...)
	cmd.Dir = o.dir
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// must runs openssl and fails the test unless it succeeds.
func (o *openSSL) must(args ...string) string {
	o.t.Helper()
	out, ok := o.run(args...)
	if !ok {
		o.t.Fatalf("openssl %s: %s", strings.Join(args, " "), out)
	}
	return out
}

// has reports whether `openssl list -<kind>` names alg.
func (o *openSSL) has(kind, alg string) bool {
	out, ok := o.run("list", "-"+kind)
	return ok && strings.Contains(strings.ToUpper(out), strings.ToUpper(alg))
}

// opensslVerifyArgs returns the openssl command verifying a signature of
// alg over the message or digest file in, with the public key pub.
func opensslVerifyArgs(alg string, mt types.MessageType, pub, in, sig string) []string {
	if alg == "ED25519_SHA_512" || alg == "ML_DSA_SHAKE_256" {
		return []string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", in, "-sigfile", sig}
	}
	md := map[string]string{"256": "sha256", "384": "sha384", "512": "sha512"}[alg[len(alg)-3:]]
	pss := strings.HasPrefix(alg, "RSASSA_PSS")
	if mt == types.MessageTypeDigest {
		args := []string{"pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", in, "-sigfile", sig, "-pkeyopt", "digest:" + md}
		if pss {
			args = append(args, "-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest")
		}
		return args
	}
	args := []string{"dgst", "-" + md, "-verify", pub, "-signature", sig}
	if pss {
		args = append(args, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest")
	}
	return append(args, in)
}

func TestOpenSSLVerifiesSignatures(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	env := keysOfEveryKind(t)
	ctx := context.Background()
	c := env.Client
	msg := []byte("kmsd and OpenSSL agree on this message\n")
	for _, k := range everyKind {
		if k.signing == nil {
			continue
		}
		t.Run(string(k.spec), func(t *testing.T) {
			o := &openSSL{t: t, dir: t.TempDir()}
			md := env.key(k.spec, k.usage)
			pk, err := c.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(string(k.spec), "ML_DSA") && !o.has("signature-algorithms", "ML-DSA") {
				t.Skipf("%s lacks ML-DSA; the Wycheproof vectors of package keys cover it", o.must("version"))
			}
			pub := o.pubPEM("pub.pem", pk.PublicKey)
			o.must("pkey", "-pubin", "-in", pub, "-noout")
			var rawPub []byte
			if strings.HasPrefix(string(k.spec), "ML_DSA") {
				rawPub = pk.PublicKey[len(pk.PublicKey)-map[types.KeySpec]int{"ML_DSA_44": 1312, "ML_DSA_65": 1952, "ML_DSA_87": 2592}[k.spec]:]
			}
			for _, alg := range k.signing {
				if alg == "ED25519_PH_SHA_512" {
					// OpenSSL 3.0 has no Ed25519ph (and its pkeyutl has no
					// option for it before 3.2): RFC 8032's vector in package
					// keys covers it.
					continue
				}
				for mt, m := range messageTypes(alg, rawPub, msg) {
					if mt == types.MessageTypeExternalMu {
						m = msg // a μ signature is a RAW signature of msg
					}
					s, err := c.Sign(ctx, &awskms.SignInput{KeyId: md.KeyId, Message: m, MessageType: mt, SigningAlgorithm: types.SigningAlgorithmSpec(alg)})
					if err != nil {
						t.Fatalf("Sign(%s, %s): %v", alg, mt, err)
					}
					in := o.file("in.bin", m)
					sig := o.file("sig.bin", s.Signature)
					o.must(opensslVerifyArgs(alg, mt, pub, in, sig)...)
					// And OpenSSL really checks: a changed message fails.
					bad := bytes.Clone(m)
					bad[0] ^= 0x80
					in = o.file("in.bin", bad)
					if out, ok := o.run(opensslVerifyArgs(alg, mt, pub, in, sig)...); ok {
						t.Fatalf("%s %s: OpenSSL accepted a signature of another message: %s", alg, mt, out)
					}
				}
			}
		})
	}
}

func TestOpenSSLEncryptsToKmsd(t *testing.T) {
	t.Parallel()
	o := needOpenSSL(t)
	env := keysOfEveryKind(t)
	ctx := context.Background()
	for _, spec := range []types.KeySpec{"RSA_2048", "RSA_3072", "RSA_4096"} {
		md := env.key(spec, "ENCRYPT_DECRYPT")
		pk, err := env.Client.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pub := o.pubPEM("rsa.pem", pk.PublicKey)
		for alg, hash := range map[types.EncryptionAlgorithmSpec]string{"RSAES_OAEP_SHA_1": "sha1", "RSAES_OAEP_SHA_256": "sha256"} {
			pt := []byte("encrypted by OpenSSL with " + string(alg))
			o.file("pt.bin", pt)
			o.must("pkeyutl", "-encrypt", "-pubin", "-inkey", pub, "-in", "pt.bin", "-out", "ct.bin",
				"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+hash, "-pkeyopt", "rsa_mgf1_md:"+hash)
			dec, err := env.Client.Decrypt(ctx, &awskms.DecryptInput{KeyId: md.KeyId, CiphertextBlob: o.read("ct.bin"), EncryptionAlgorithm: alg})
			if err != nil || !bytes.Equal(dec.Plaintext, pt) {
				t.Fatalf("%s %s: kmsd cannot decrypt OpenSSL's ciphertext: %v", spec, alg, err)
			}
		}
	}
}

func TestOpenSSLDerivesSameSecret(t *testing.T) {
	t.Parallel()
	o := needOpenSSL(t)
	env := keysOfEveryKind(t)
	ctx := context.Background()
	for spec, curve := range map[types.KeySpec]string{"ECC_NIST_P256": "P-256", "ECC_NIST_P384": "P-384", "ECC_NIST_P521": "P-521"} {
		md := env.key(spec, "KEY_AGREEMENT")
		pk, err := env.Client.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		kmsdPub := o.pubPEM("kmsd.pem", pk.PublicKey)
		o.must("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:"+curve, "-out", "peer.pem")
		o.must("pkey", "-in", "peer.pem", "-pubout", "-outform", "DER", "-out", "peer.der")
		o.must("pkeyutl", "-derive", "-inkey", "peer.pem", "-peerkey", kmsdPub, "-out", "secret.bin")
		out, err := env.Client.DeriveSharedSecret(ctx, &awskms.DeriveSharedSecretInput{KeyId: md.KeyId, KeyAgreementAlgorithm: "ECDH", PublicKey: o.read("peer.der")})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.SharedSecret, o.read("secret.bin")) {
			t.Fatalf("%s: kmsd's shared secret differs from OpenSSL's", spec)
		}
	}
}

func TestOpenSSLDecapsulates(t *testing.T) {
	t.Parallel()
	o := needOpenSSL(t)
	if !o.has("kem-algorithms", "ML-KEM") {
		t.Skipf("%s lacks ML-KEM; the Wycheproof vectors of package keys cover it", o.must("version"))
	}
	env := keysOfEveryKind(t)
	ctx := context.Background()
	for _, spec := range []types.KeySpec{"ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"} {
		md := env.key(spec, "ENCAPSULATE_DECAPSULATE")
		pk, err := env.Client.GetPublicKey(ctx, &awskms.GetPublicKeyInput{KeyId: md.KeyId})
		if err != nil {
			t.Fatal(err)
		}
		pub := o.pubPEM("kem.pem", pk.PublicKey)
		o.must("pkeyutl", "-encap", "-pubin", "-inkey", pub, "-out", "ct.bin", "-secret", "ss.bin")
		out, err := env.Client.Decapsulate(ctx, &awskms.DecapsulateInput{KeyId: md.KeyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: o.read("ct.bin")})
		if err != nil || !bytes.Equal(out.SharedSecret, o.read("ss.bin")) {
			t.Fatalf("%s: kmsd's decapsulated secret differs from OpenSSL's (%v)", spec, err)
		}
	}
}

// TestOpenSSLReadsDataKeyPairs: OpenSSL parses the PKCS #8 private key of
// every data key pair whose algorithm it knows, and derives from it the
// public key kmsd returned.
func TestOpenSSLReadsDataKeyPairs(t *testing.T) {
	t.Parallel()
	o := needOpenSSL(t)
	env := keysOfEveryKind(t)
	ctx := context.Background()
	sym := createKey(t, env.Client, "data key pairs for OpenSSL")
	specs := []types.DataKeyPairSpec{"RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"}
	if o.has("kem-algorithms", "ML-KEM") {
		specs = append(specs, "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
	}
	for _, spec := range specs {
		out, err := env.Client.GenerateDataKeyPair(ctx, &awskms.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: spec})
		if err != nil {
			t.Fatal(err)
		}
		priv := o.file("priv.der", out.PrivateKeyPlaintext)
		o.must("pkey", "-inform", "DER", "-in", priv, "-pubout", "-outform", "DER", "-out", "pub.der")
		if !bytes.Equal(o.read("pub.der"), out.PublicKey) {
			t.Fatalf("%s: OpenSSL derives another public key from the private key", spec)
		}
	}
}
