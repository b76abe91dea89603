package kms

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/keys"
)

// materialOf returns a copy of the unwrapped current material of a key.
func materialOf(t *testing.T, s *Service, keyID string) []byte {
	t.Helper()
	k, err := s.key(context.Background(), keyID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.material(context.Background(), k, k.CurrentMaterial)
	if err != nil {
		t.Fatal(err)
	}
	defer m.release()
	return bytes.Clone(m.key)
}

// TestHMACMatchesOpenSSL compares GenerateMac with `openssl mac` on the same
// key material. Without openssl it skips, except under CI=true.
func TestHMACMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found (apt-get install -y openssl)")
		}
		t.Skip("openssl not found; set CI=true to make this a failure")
	}
	ctx := context.Background()
	s := open(t, t.TempDir())
	msg := []byte("HMAC me, kmsd and OpenSSL\n")
	msgFile := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(msgFile, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	for spec, digest := range map[string]string{keys.SpecHMAC224: "SHA224", keys.SpecHMAC256: "SHA256", keys.SpecHMAC384: "SHA384", keys.SpecHMAC512: "SHA512"} {
		ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{KeySpec: spec, KeyUsage: UsageGenerateVerifyMac})
		if err != nil {
			t.Fatal(err)
		}
		alg := ck.KeyMetadata.MacAlgorithms[0]
		out, err := s.GenerateMac(ctx, admin, &GenerateMacInput{KeyId: ck.KeyMetadata.KeyId, Message: msg, MacAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		key := materialOf(t, s, ck.KeyMetadata.KeyId)
		cmd := exec.Command("openssl", "mac", "-digest", digest, "-macopt", "hexkey:"+hex.EncodeToString(key), "-in", msgFile, "HMAC")
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl mac: %v: %s", err, got)
		}
		if want := hex.EncodeToString(out.Mac); !strings.EqualFold(strings.TrimSpace(string(got)), want) {
			t.Fatalf("%s: openssl mac = %s, kmsd = %s", spec, got, want)
		}
	}
}

// TestNoPrivateKeyAtRest scans the data folder for the private key of an
// asymmetric key (its PKCS #8 and its bare scalar) and for an HMAC key.
func TestNoPrivateKeyAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	sk, err := s.CreateKey(ctx, admin, &CreateKeyInput{KeySpec: keys.SpecP256, KeyUsage: UsageSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	hk, err := s.CreateKey(ctx, admin, &CreateKeyInput{KeySpec: keys.SpecHMAC256, KeyUsage: UsageGenerateVerifyMac})
	if err != nil {
		t.Fatal(err)
	}
	der := materialOf(t, s, sk.KeyMetadata.KeyId)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("stored material is not PKCS #8: %v", err)
	}
	scalar, err := priv.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"PKCS #8 private key": der, "private scalar": scalar, "HMAC key": materialOf(t, s, hk.KeyMetadata.KeyId)}
	if err := s.store.Close(); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, secret := range secrets {
			if bytes.Contains(b, secret) {
				t.Errorf("%s found in plaintext in %s", name, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestParsedKeyCache checks that a private key is parsed once per cached
// material and dropped with the material when it is evicted.
func TestParsedKeyCache(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{KeySpec: keys.SpecEd25519, KeyUsage: UsageSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.key(ctx, ck.KeyMetadata.KeyId)
	if err != nil {
		t.Fatal(err)
	}
	p1, release1, err := s.privateKey(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	p2, release2, err := s.privateKey(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Fatal("the private key was parsed twice")
	}
	m := s.materials.acquire(k.ID, k.CurrentMaterial)
	m.release()
	s.materials.evictKey(k.ID)
	// Still in use by two requests: nothing is wiped under them.
	if _, err := p1.Sign(nil, keys.SigEd25519, keys.MessageRaw, []byte("m")); err != nil || m.parsed == nil {
		t.Fatalf("key wiped while in use (%v)", err)
	}
	release1()
	release2()
	if m.parsed != nil || !bytes.Equal(m.key, make([]byte, len(m.key))) {
		t.Fatal("evicted material not wiped after its last use")
	}
	// The next use unwraps and parses again.
	p3, release3, err := s.privateKey(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer release3()
	if p3 == p1 {
		t.Fatal("a wiped key was reused")
	}
}
