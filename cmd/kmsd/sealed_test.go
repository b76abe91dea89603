package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/shamir"
	"github.com/kmsd/kmsd/internal/unseal"
)

var (
	shareRE  = regexp.MustCompile(`kmsd-share-\d+-[0-9a-f]+`)
	akidRE   = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`)
	secretRE = regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`)
)

// sealedServe is a kmsd serve started on a sealed data folder.
type sealedServe struct {
	t        *testing.T
	data     string
	endpoint string
	stdout   *lockedbuf.Buffer
	stderr   *lockedbuf.Buffer
	stop     func() error
}

// startSealed runs kmsd serve on a sealed data folder until the test ends,
// and waits for it to report that it is sealed.
func startSealed(t *testing.T, data string) *sealedServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sealedServe{t: t, data: data, stdout: &lockedbuf.Buffer{}, stderr: &lockedbuf.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data-dir", data, "--listen", "127.0.0.1:0"}, s.stdout, s.stderr, func(string) string { return "" })
	}()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stdout.String(), "SEALED") {
		select {
		case err := <-done:
			t.Fatalf("kmsd serve exited: %v\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not sealed after 20s; stdout:\n%s\nstderr:\n%s", s.stdout.String(), s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.endpoint = endpointRE.FindStringSubmatch(s.stdout.String())[1]
	return s
}

// waitServing waits for the banner kmsd prints once unsealed.
func (s *sealedServe) waitServing() string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stdout.String(), "create-key") {
		if time.Now().After(deadline) {
			s.t.Fatalf("no banner after unseal; stderr:\n%s", s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.stdout.String()
}

func (s *sealedServe) get(path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.endpoint + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *sealedServe) client(akid, secret string) *awskms.Client {
	return awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
}

// checkSealed checks what a sealed kmsd answers: health yes, ready no,
// every KMS call DependencyTimeoutException (503, retried by the SDKs),
// whatever the credentials.
func (s *sealedServe) checkSealed(akid, secret string) {
	s.t.Helper()
	if code, _ := s.get("/healthz"); code != 200 {
		s.t.Errorf("sealed /healthz: HTTP %d", code)
	}
	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "sealed") {
		s.t.Errorf("sealed /readyz: HTTP %d %q", code, body)
	}
	for _, c := range []*awskms.Client{s.client(akid, secret), s.client("AKIANOBODY", "wrong")} {
		_, err := c.ListKeys(context.Background(), &awskms.ListKeysInput{})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "DependencyTimeoutException" || !strings.Contains(ae.ErrorMessage(), "kmsd unseal") {
			s.t.Fatalf("KMS call while sealed: %v", err)
		}
	}
}

// runUnseal runs kmsd unseal with args and returns its output and error.
func runUnseal(t *testing.T, data string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"unseal", "--data-dir", data}, args...), &out, &errOut, func(string) string { return "" })
	return out.String() + errOut.String(), err
}

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// initShares runs kmsd init --shares n --threshold k on data and returns
// the share files it printed.
func initShares(t *testing.T, data string, n, k string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"init", "--data-dir", data, "--shares", n, "--threshold", k}, &out, &errOut, func(string) string { return "" }); err != nil {
		t.Fatalf("kmsd init: %v\n%s", err, errOut.String())
	}
	texts := shareRE.FindAllString(out.String(), -1)
	if len(texts) == 0 || !strings.Contains(out.String(), "shown only this once") {
		t.Fatalf("kmsd init printed no shares:\n%s", out.String())
	}
	secrets := t.TempDir()
	var files []string
	for i, s := range texts {
		files = append(files, writeSecret(t, secrets, "share"+string(rune('1'+i)), s+"\n"))
	}
	return files
}

// TestSealedShares is the Shamir life cycle through the real commands:
// init 2-of-3, a sealed start, unseal share by share (a foreign, a repeated
// share), use, restart sealed, K-1 shares, a wrong combination, kmsd root
// rotate on the sealed folder, and the old ciphertext after all of it.
func TestSealedShares(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	shares := initShares(t, data, "3", "2")
	if len(shares) != 3 {
		t.Fatalf("%d shares, want 3", len(shares))
	}
	if _, err := os.Stat(filepath.Join(data, rootmgr.RootKeyFile)); err == nil {
		t.Fatal("kmsd init left a plaintext root.key")
	}
	fi, err := os.Stat(filepath.Join(data, rootmgr.SealedRootFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sealed root: %v %v", fi, err)
	}
	// A second init refuses.
	if err := run(context.Background(), []string{"init", "--data-dir", data, "--shares", "3", "--threshold", "2"}, io.Discard, io.Discard, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "already sealed") {
		t.Fatalf("second init: %v", err)
	}
	other := initShares(t, filepath.Join(t.TempDir(), "other"), "3", "2")

	s := startSealed(t, data)
	s.checkSealed("AKIANOBODY", "x")
	if out, err := runUnseal(t, data, "--status"); err != nil || !strings.Contains(out, "sealed") || !strings.Contains(out, "0 of 2") {
		t.Fatalf("unseal --status: %v %s", err, out)
	}
	if out, err := runUnseal(t, data, "--share-file", shares[0]); err != nil || !strings.Contains(out, "1 of 2 shares given") {
		t.Fatalf("first share: %v %s", err, out)
	}
	if out, err := runUnseal(t, data, "--share-file", other[1]); err == nil || !strings.Contains(out+err.Error(), "another sealed root") {
		t.Fatalf("foreign share: %v %s", err, out)
	}
	if _, err := runUnseal(t, data, "--share-file", shares[0]); err == nil || !strings.Contains(err.Error(), "already given") {
		t.Fatalf("repeated share: %v", err)
	}
	if _, err := runUnseal(t, data, "--passphrase-file", shares[0]); err == nil || !strings.Contains(err.Error(), "not a passphrase") {
		t.Fatalf("passphrase for a shares seal: %v", err)
	}
	s.checkSealed("AKIANOBODY", "x")
	if out, err := runUnseal(t, data, "--share-file", shares[2]); err != nil || !strings.Contains(out, "unsealed") {
		t.Fatalf("second share: %v %s\n%s", err, out, s.stderr.String())
	}
	banner := s.waitServing()
	akid, secret := akidRE.FindStringSubmatch(banner)[1], secretRE.FindStringSubmatch(banner)[1]
	if _, err := os.Stat(filepath.Join(data, unseal.SocketFile)); err == nil {
		t.Error("the unseal socket is still there after unseal")
	}
	if code, _ := s.get("/readyz"); code != 200 {
		t.Errorf("unsealed /readyz: HTTP %d", code)
	}
	ctx := context.Background()
	c := s.client(akid, secret)
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("sealed root secret")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "sealed root secret" {
		t.Fatalf("decrypt: %v %v", dec, err)
	}
	if out, err := runUnseal(t, data, "--status"); err == nil {
		t.Fatalf("unseal of an unsealed kmsd: %s", out)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// Restarted: sealed again. K-1 shares leave it sealed; a wrong
	// combination (a share with the right set and a valid checksum but a
	// wrong value) is refused and discards the shares given.
	s = startSealed(t, data)
	s.checkSealed(akid, secret)
	if _, err := runUnseal(t, data, "--share-file", shares[1]); err != nil {
		t.Fatal(err)
	}
	s.checkSealed(akid, secret)
	text, _ := os.ReadFile(shares[2])
	bad, err := shamir.Parse(string(text))
	if err != nil {
		t.Fatal(err)
	}
	bad.Value[0] ^= 1
	badFile := writeSecret(t, t.TempDir(), "bad", bad.Encode())
	if _, err := runUnseal(t, data, "--share-file", badFile); err == nil || !strings.Contains(err.Error(), "discarded") {
		t.Fatalf("wrong combination: %v", err)
	}
	s.checkSealed(akid, secret)
	if out, _ := runUnseal(t, data, "--status"); !strings.Contains(out, "0 of 2") {
		t.Fatalf("after a wrong combination: %s", out)
	}
	for _, f := range shares[1:] {
		if out, err := runUnseal(t, data, "--share-file", f); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	s.waitServing()
	c = s.client(akid, secret)
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "sealed root secret" {
		t.Fatalf("decrypt after restart: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// kmsd root on the sealed folder: status needs no shares, rotate needs
	// them and seals the new root under the same seal key.
	var out bytes.Buffer
	if err := run(ctx, []string{"root", "status", "--data-dir", data}, &out, io.Discard, func(string) string { return "" }); err != nil || !strings.Contains(out.String(), "current root") {
		t.Fatalf("root status on a sealed folder: %v %s", err, out.String())
	}
	if err := run(ctx, []string{"root", "rotate", "--data-dir", data}, io.Discard, io.Discard, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--share-file") {
		t.Fatalf("root rotate without shares: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"root", "rotate", "--data-dir", data, "--share-file", shares[0], "--share-file", shares[2]}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatalf("root rotate: %v\n%s", err, out.String())
	}
	m := mustManifest(t, data)
	if !strings.HasSuffix(m.Current.File, ".key.sealed") || len(m.Kept) != 1 || m.Kept[0].File != rootmgr.SealedRootFile {
		t.Fatalf("manifest after rotate: %+v", m)
	}
	if matches, _ := filepath.Glob(filepath.Join(data, "root-*.key")); len(matches) != 0 {
		t.Fatalf("rotate made a plaintext root: %v", matches)
	}
	s = startSealed(t, data)
	for _, f := range shares[:2] {
		if out, err := runUnseal(t, data, "--share-file", f); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	s.waitServing()
	c = s.client(akid, secret)
	if dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "sealed root secret" {
		t.Fatalf("decrypt after rotation: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSealedPassphrase is the passphrase life cycle: init, a wrong
// passphrase refused, unseal, use, restart, unseal, the old ciphertext.
func TestSealedPassphrase(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	secrets := t.TempDir()
	pass := writeSecret(t, secrets, "pass", "correct horse battery staple\n")
	wrong := writeSecret(t, secrets, "wrong", "correct horse battery stapler\n")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"init", "--data-dir", data, "--passphrase-file", pass}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Argon2id") || strings.Contains(out.String(), "staple") {
		t.Fatalf("init output: %s", out.String())
	}

	s := startSealed(t, data)
	s.checkSealed("AKIANOBODY", "x")
	if _, err := runUnseal(t, data, "--passphrase-file", wrong); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := runUnseal(t, data, "--share-file", pass); err == nil || !strings.Contains(err.Error(), "passphrase, not shares") {
		t.Fatalf("share for a passphrase seal: %v", err)
	}
	s.checkSealed("AKIANOBODY", "x")
	if out, err := runUnseal(t, data, "--passphrase-file", pass); err != nil || !strings.Contains(out, "unsealed") {
		t.Fatalf("unseal: %v %s", err, out)
	}
	banner := s.waitServing()
	akid, secret := akidRE.FindStringSubmatch(banner)[1], secretRE.FindStringSubmatch(banner)[1]
	ctx := context.Background()
	c := s.client(akid, secret)
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("passphrase secret")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"correct horse", "staple"} {
		if strings.Contains(s.stderr.String()+s.stdout.String(), leak) {
			t.Errorf("kmsd serve printed the passphrase")
		}
	}

	s = startSealed(t, data)
	s.checkSealed(akid, secret)
	if out, err := runUnseal(t, data, "--passphrase-file", pass); err != nil {
		t.Fatalf("unseal after restart: %v %s", err, out)
	}
	s.waitServing()
	if dec, err := s.client(akid, secret).Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "passphrase secret" {
		t.Fatalf("decrypt after restart: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestInitSealExisting seals the plaintext root of a data folder in use:
// the keys and access key made before still work after unseal.
func TestInitSealExisting(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	banner, stop := start(t, data)
	akid, secret := akidRE.FindStringSubmatch(banner)[1], secretRE.FindStringSubmatch(banner)[1]
	ctx := context.Background()
	c := rootClient(banner, akid, secret)
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("before the seal")})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pass := writeSecret(t, t.TempDir(), "pass", "a long enough passphrase")
	if err := run(ctx, []string{"init", "--data-dir", data, "--passphrase-file", pass}, io.Discard, io.Discard, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "--seal-existing") {
		t.Fatalf("init over a plaintext root: %v", err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"init", "--data-dir", data, "--passphrase-file", pass, "--seal-existing"}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, rootmgr.RootKeyFile)); err == nil {
		t.Fatal("root.key is still there")
	}
	s := startSealed(t, data)
	s.checkSealed(akid, secret)
	if out, err := runUnseal(t, data, "--passphrase-file", pass); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	s.waitServing()
	if dec, err := s.client(akid, secret).Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "before the seal" {
		t.Fatalf("decrypt after sealing: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestInitRefuses(t *testing.T) {
	dir := t.TempDir()
	pass := writeSecret(t, dir, "pass", "a long enough passphrase")
	short := writeSecret(t, dir, "short", "too short")
	open := writeSecret(t, dir, "open", "a long enough passphrase")
	os.Chmod(open, 0o644)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no mode", nil, "--passphrase or --shares"},
		{"both modes", []string{"--passphrase-file", pass, "--shares", "3", "--threshold", "2"}, "not both"},
		{"threshold 1", []string{"--shares", "3", "--threshold", "1"}, "threshold"},
		{"threshold above shares", []string{"--shares", "2", "--threshold", "3"}, "threshold"},
		{"too many shares", []string{"--shares", "256", "--threshold", "3"}, "255"},
		{"short passphrase", []string{"--passphrase-file", short}, "at least 12"},
		{"readable passphrase file", []string{"--passphrase-file", open}, "chmod 600"},
		{"missing passphrase file", []string{"--passphrase-file", filepath.Join(dir, "nope")}, "no such file"},
		{"passphrase without a terminal", []string{"--passphrase"}, "--passphrase-file"},
		{"seal-existing without a root", []string{"--passphrase-file", pass, "--seal-existing"}, "no root key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"init", "--data-dir", data}, c.args...)
			err := run(context.Background(), args, io.Discard, io.Discard, func(string) string { return "" })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(data, rootmgr.SealedRootFile)); err == nil {
				t.Fatal("a sealed root was created")
			}
		})
	}
}

// TestUnsealWithoutSealedServer: kmsd unseal with nothing to unseal says
// so.
func TestUnsealWithoutSealedServer(t *testing.T) {
	data := t.TempDir()
	if _, err := runUnseal(t, data, "--status"); err == nil || !strings.Contains(err.Error(), "no sealed kmsd") {
		t.Fatalf("got %v", err)
	}
}

// TestIAMOnSealedFolder: kmsd iam cannot wrap access key secrets under a
// sealed root, and says so.
func TestIAMOnSealedFolder(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	_, stop := start(t, data)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	pass := writeSecret(t, t.TempDir(), "pass", "a long enough passphrase")
	if err := run(context.Background(), []string{"init", "--seal-existing", "--data-dir", data, "--passphrase-file", pass}, io.Discard, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"iam", "list-access-keys", "--data-dir", data}, io.Discard, io.Discard, func(string) string { return "" })
	if !errors.Is(err, rootmgr.ErrSealed) || !strings.Contains(err.Error(), "kmsd unseal") {
		t.Fatalf("kmsd iam on a sealed folder: %v", err)
	}
}
