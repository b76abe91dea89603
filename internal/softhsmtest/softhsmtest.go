// Package softhsmtest makes fresh SoftHSM2 tokens for tests: each in a
// token directory of its own, named by a private SOFTHSM2_CONF, so tests
// never touch (or depend on) the machine's tokens.
//
// Without SoftHSM a test skips, or fails when CI=true: CI installs it
// (apt-get install -y softhsm2), so a skip there would hide a gap.
package softhsmtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Module is the path of Debian's SoftHSM2 PKCS#11 library.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Test token credentials. They protect nothing but throwaway tokens.
const (
	PIN   = "40417293"
	SOPIN = "87654321"
)

const installMsg = "install softhsm2: apt-get install -y softhsm2"

// Available reports why SoftHSM cannot be used here, or nil.
func Available() error {
	if _, err := os.Stat(Module); err != nil {
		return fmt.Errorf("%s (%w)", installMsg, err)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return fmt.Errorf("%s (%w)", installMsg, err)
	}
	return nil
}

// Require skips tb (fails it under CI=true) when SoftHSM is missing.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
}

// Token creates a token directory under a test temporary folder, points
// SOFTHSM2_CONF at it for the rest of the test and initializes one token
// per label, with user PIN PIN. It returns the configuration file's path.
func Token(tb testing.TB, labels ...string) string {
	tb.Helper()
	Require(tb)
	conf, err := Init(tb.TempDir(), labels...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	return conf
}

// Init writes a SoftHSM2 configuration in dir whose token directory is
// dir/tokens, and initializes one token per label in it. It returns the
// configuration file's path; the caller sets SOFTHSM2_CONF to it (before
// the module is first loaded: SoftHSM reads it once).
func Init(dir string, labels ...string) (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return "", err
	}
	for _, label := range labels {
		cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SOPIN, "--pin", PIN)
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("softhsm2-util --init-token --label %s: %v: %s", label, err, out)
		}
	}
	return conf, nil
}

// TrustAnchorPEM returns a fresh self-signed CA certificate, PEM, standing
// in for the trust anchor (customerCA.crt) of the HSM cluster a custom key
// store names.
func TrustAnchorPEM(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kmsd test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
