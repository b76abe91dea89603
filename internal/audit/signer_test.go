package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kmsd/kmsd/internal/keystore"
)

func newKeystore(t *testing.T, dir string) *keystore.FileKeystore {
	t.Helper()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	dir := t.TempDir()
	ks := newKeystore(t, dir)
	keyPath := filepath.Join(dir, SigningKeyFile)
	ctx := context.Background()

	s1, err := LoadOrCreateSigningKey(ctx, keyPath, ks)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi.Mode(), err)
	}
	content, _ := os.ReadFile(keyPath)
	if !bytes.HasPrefix(content, []byte("kmsd audit signing key v1\n")) {
		t.Errorf("key file = %q", content)
	}
	pubPath := filepath.Join(dir, PublicKeyFile)
	if PublicKeyPath(keyPath) != pubPath {
		t.Errorf("PublicKeyPath = %s", PublicKeyPath(keyPath))
	}
	pub, err := ReadPublicKey(pubPath)
	if err != nil || !pub.Equal(s1.PublicKey()) {
		t.Fatalf("public key file: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", s1, s1, s1, s1); strings.Contains(s, "priv") || !strings.Contains(s, KeyID(pub)) {
		t.Errorf("a signer prints as %q", s)
	}

	// A second start loads the same key.
	s2, err := LoadOrCreateSigningKey(ctx, keyPath, ks)
	if err != nil || !s2.PublicKey().Equal(s1.PublicKey()) {
		t.Fatalf("reload: %v", err)
	}
	// A lost public key file is written again.
	os.Remove(pubPath)
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, ks); err != nil {
		t.Fatal(err)
	}
	if pub, err := ReadPublicKey(pubPath); err != nil || !pub.Equal(s1.PublicKey()) {
		t.Fatalf("rewritten public key: %v", err)
	}
	// Another root key cannot unwrap it.
	other := newKeystore(t, t.TempDir())
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, other); err == nil || !strings.Contains(err.Error(), "unwrap") {
		t.Errorf("load under another root key: %v", err)
	}
	// A public key file of another key is refused.
	otherDir := t.TempDir()
	if _, err := LoadOrCreateSigningKey(ctx, filepath.Join(otherDir, SigningKeyFile), ks); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(otherDir, PublicKeyFile), pubPath)
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, ks); err == nil || !strings.Contains(err.Error(), "but the signing key's is") {
		t.Errorf("mismatched public key: %v", err)
	}
	// A public key without its key is not overwritten by a new key.
	os.Remove(keyPath)
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, ks); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("public key without key: %v", err)
	}
	// A key file others can read is refused.
	os.Remove(pubPath)
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, ks); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyPath, 0o644)
	if _, err := LoadOrCreateSigningKey(ctx, keyPath, ks); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable key file: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateSigningKeyConcurrently(t *testing.T) {
	dir := t.TempDir()
	ks := newKeystore(t, dir)
	keyPath := filepath.Join(dir, SigningKeyFile)
	var wg sync.WaitGroup
	pubs := make([]string, 8)
	for i := range pubs {
		wg.Go(func() {
			s, err := LoadOrCreateSigningKey(context.Background(), keyPath, ks)
			if err != nil {
				t.Error(err)
				return
			}
			pubs[i] = KeyID(s.PublicKey())
		})
	}
	wg.Wait()
	for _, p := range pubs {
		if p != pubs[0] {
			t.Fatalf("concurrent starts made different keys: %v", pubs)
		}
	}
}

// TestDigestVerifiesWithOpenSSL checks the digest format against an
// independent Ed25519 implementation, following docs/audit-format.md: the
// signed message rebuilt from the digest's members, the public key file.
func TestDigestVerifiesWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not installed")
		}
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	signer, err := LoadOrCreateSigningKey(context.Background(), filepath.Join(dir, SigningKeyFile), newKeystore(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, DirName)
	l := openLog(t, logDir, Options{Signer: signer})
	appendN(t, l, 0, 2)
	closeLog(t, l)
	ls := lines(t, logFiles(t, logDir)[0])
	p, err := parseLine(bytes.TrimSuffix(ls[2], []byte("\n")))
	if err != nil || !p.isDigest {
		t.Fatalf("line 3: %v", err)
	}
	msg := filepath.Join(dir, "msg")
	sig := filepath.Join(dir, "sig")
	os.WriteFile(msg, p.digest.SignedMessage(), 0o600)
	raw, _ := base64.StdEncoding.DecodeString(p.digest.Signature)
	os.WriteFile(sig, raw, 0o600)
	out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, PublicKeyFile), "-rawin", "-in", msg, "-sigfile", sig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	// And the hash of a line is what sha256sum prints for it.
	h := lineHash(ls[1])
	if fmt.Sprintf("%x", h) != p.digest.Hash {
		t.Error("digest hash is not the SHA-256 of the line")
	}
}
