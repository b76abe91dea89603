//go:build cgo

package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/keystore/pkcs11"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/softhsmtest"
)

const softHSMModule = softhsmtest.Module

// softHSMToken creates a fresh SoftHSM token (SOFTHSM2_CONF points at its
// directory for the rest of the test) and returns its label and user PIN.
func softHSMToken(t *testing.T) (label, pin string) {
	t.Helper()
	softhsmtest.Token(t, "kmsd-serve-test")
	return "kmsd-serve-test", softhsmtest.PIN
}

// TestServePKCS11 runs kmsd serve with a SoftHSM root of trust: a key
// created and used before a restart decrypts after it, with the access key
// from the first start (whose secret the HSM key wrapped).
func TestServePKCS11(t *testing.T) {
	token, pin := softHSMToken(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "kmsd.yaml")
	yaml := "keystore:\n  type: pkcs11\n  pkcs11:\n    module: " + softHSMModule + "\n    token_label: " + token +
		"\n    key_label: kmsd-root\n    pin_env: KMSD_TEST_HSM_PIN\n    sessions: 4\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgFile, "--data-dir", data, "--listen", "127.0.0.1:0"}
	getenv := func(k string) string {
		if k == "KMSD_TEST_HSM_PIN" {
			return pin
		}
		return ""
	}

	banner, logs, stop := startServe(t, args, getenv)
	endpoint := endpointRE.FindStringSubmatch(banner)[1]
	akid := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
	secret := regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
	client := func(endpoint string) *awskms.Client {
		return awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	}
	ctx := context.Background()
	c := client(endpoint)
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("hsm-rooted")})
	if err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("protected by a key inside the HSM")
	encCtx := map[string]string{"app": "pkcs11-test"}
	enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: plaintext, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	log := logs.String()
	for _, want := range []string{"pkcs11", "kmsd-root"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not name %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, pin) || strings.Contains(banner, pin) {
		t.Error("the PIN was logged or printed")
	}
	if _, err := os.Stat(filepath.Join(data, rootmgr.RootKeyFile)); err == nil {
		t.Error("a root key file was created although the root of trust is the HSM")
	}

	banner, _, stop = startServe(t, args, getenv)
	defer stop()
	if strings.Contains(banner, "AWS_SECRET_ACCESS_KEY") {
		t.Error("second start printed a new secret")
	}
	c = client(endpointRE.FindStringSubmatch(banner)[1])
	dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if string(dec.Plaintext) != string(plaintext) {
		t.Fatalf("decrypt after restart: %q", dec.Plaintext)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServePKCS11BadPIN: a wrong PIN stops kmsd serve with an error that
// does not show the PIN.
func TestServePKCS11BadPIN(t *testing.T) {
	token, _ := softHSMToken(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "kmsd.yaml")
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("11112222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := "keystore:\n  type: pkcs11\n  pkcs11:\n    module: " + softHSMModule + "\n    token_label: " + token +
		"\n    key_label: kmsd-root\n    pin_file: pin\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr lockedbuf.Buffer
	err := run(context.Background(), []string{"serve", "--config", cfgFile, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"},
		&lockedbuf.Buffer{}, &stderr, func(string) string { return "" })
	if err == nil {
		t.Fatal("serve started with a wrong PIN")
	}
	if !strings.Contains(err.Error(), "PIN") || strings.Contains(err.Error()+stderr.String(), "11112222") {
		t.Fatalf("wrong PIN: %v", err)
	}
}

// TestServePKCS11NeverCreatesARootForAStoreInUse: on a store in use, a
// PKCS#11 key_label the token lacks (a mistyped label, another token) is
// refused at start, and no key is generated in the token: a new root
// could unwrap nothing the store holds. Only the first start of an empty
// data folder generates the root key.
func TestServePKCS11NeverCreatesARootForAStoreInUse(t *testing.T) {
	token, pin := softHSMToken(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	getenv := func(k string) string {
		if k == "KMSD_TEST_HSM_PIN" {
			return pin
		}
		return ""
	}
	config := func(label string) string {
		f := filepath.Join(dir, label+".yaml")
		yaml := "keystore:\n  type: pkcs11\n  pkcs11:\n    module: " + softHSMModule + "\n    token_label: " + token +
			"\n    key_label: " + label + "\n    pin_env: KMSD_TEST_HSM_PIN\n"
		if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	_, _, stop := startServe(t, []string{"--config", config("kmsd-root"), "--data-dir", data, "--listen", "127.0.0.1:0"}, getenv)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var stderr lockedbuf.Buffer
	err := run(context.Background(), []string{"serve", "--config", config("kmsd-other"), "--data-dir", data, "--listen", "127.0.0.1:0"},
		&lockedbuf.Buffer{}, &stderr, getenv)
	if err == nil || !strings.Contains(err.Error(), `no secret key labelled "kmsd-other"`) || !strings.Contains(err.Error(), "only on the first start") {
		t.Fatalf("serve with a key label the token lacks, on a store in use: %v", err)
	}
	tok, err := pkcs11.OpenToken(context.Background(), pkcs11.TokenConfig{Module: softHSMModule, TokenLabel: token, PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for label, want := range map[string]bool{"kmsd-root": true, "kmsd-other": false} {
		if has, err := tok.HasKey(context.Background(), label); err != nil || has != want {
			t.Errorf("token holds %s: %v (%v), want %v", label, has, err, want)
		}
	}
}
