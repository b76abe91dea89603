package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
)

const (
	testAKID   = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

var dataDirRE = regexp.MustCompile(`data in (\S+)\)`)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestDevModeTemporaryFolder: kmsd serve --dev with the admin access key
// in the environment keeps its data in a new temporary folder, which is
// gone once it stops; the banner says it is not for production, names
// the access key and never shows its secret.
func TestDevModeTemporaryFolder(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	env := envOf(map[string]string{"KMSD_DEV_ACCESS_KEY_ID": testAKID, "KMSD_DEV_SECRET_ACCESS_KEY": testSecret})
	banner, logs, stop := startServe(t, []string{"--dev", "--listen", "127.0.0.1:0"}, env)
	defer stop()
	for _, want := range []string{"DEV MODE", "NOT FOR PRODUCTION", "DELETED when kmsd stops", "export AWS_ACCESS_KEY_ID=" + testAKID + "\n", "KMSD_DEV_SECRET_ACCESS_KEY"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, testSecret) || strings.Contains(logs.String(), testSecret) {
		t.Fatal("the secret was printed or logged")
	}
	data := dataDirRE.FindStringSubmatch(banner)[1]
	if !strings.HasPrefix(data, os.Getenv("TMPDIR")) {
		t.Errorf("data folder %s is not a temporary one", data)
	}
	if _, err := rootClient(banner, testAKID, testSecret).CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
		t.Fatalf("CreateKey with the given access key: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the temporary data folder is still there: %v", err)
	}
}

// TestDevModeNamedFolder: with --data-dir, dev mode keeps its data there;
// a second start with the same access key changes nothing and serves the
// same keys; without given credentials the first start prints fresh ones.
func TestDevModeNamedFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	banner, _, stop := startServe(t, []string{"--dev", "--data-dir", dir, "--listen", "127.0.0.1:0"}, envOf(nil))
	if !strings.Contains(banner, "NOT FOR PRODUCTION") || !strings.Contains(banner, "export AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("dev banner without given credentials:\n%s", banner)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The given access key is added next to the printed one, then kept.
	env := envOf(map[string]string{"KMSD_DEV_SECRET_ACCESS_KEY": testSecret})
	var keyID string
	for i := range 2 {
		banner, _, stop = startServe(t, []string{"--dev", "--data-dir", dir, "--dev-access-key-id", testAKID, "--listen", "127.0.0.1:0"}, env)
		c := rootClient(banner, testAKID, testSecret)
		if i == 0 {
			out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{})
			if err != nil {
				t.Fatal(err)
			}
			keyID = *out.KeyMetadata.KeyId
		} else if _, err := c.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: &keyID}); err != nil {
			t.Fatalf("second start: %v", err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the named data folder is gone: %v", err)
	}
}

// TestAdminCredentialsFile: outside dev mode the admin access key comes
// from a private file, applied at the first start and unchanged after;
// a readable file, a malformed key and a changed secret are refused.
func TestAdminCredentialsFile(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "data")
	creds := filepath.Join(tmp, "admin.credentials")
	write := func(content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(creds, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(creds, mode); err != nil {
			t.Fatal(err)
		}
	}
	good := "[default]\naws_access_key_id = " + testAKID + "\naws_secret_access_key = " + testSecret + "\n"
	args := []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-credentials-file", creds}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"group readable", good, 0o640, "chmod 600"},
		{"world readable", good, 0o604, "chmod 600"},
		{"bad id", strings.Replace(good, testAKID, "AKIA-NOT-AN-ID", 1), 0o600, "is not AKIA"},
		{"bad secret", strings.Replace(good, testSecret, "short", 1), 0o600, "40 characters"},
		{"no secret", "[default]\naws_access_key_id = " + testAKID + "\n", 0o600, "are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.content, tc.mode)
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"serve"}, args...), &bytes.Buffer{}, &stderr, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(stderr.String(), testSecret) {
				t.Fatal("the secret was shown")
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("a refused start made the data folder: %v", err)
			}
		})
	}
	write(good, 0o600)
	for i := range 2 {
		banner, logs, stop := startServe(t, args, envOf(nil))
		if strings.Contains(banner, "AWS_SECRET_ACCESS_KEY=") || strings.Contains(banner+logs.String(), testSecret) {
			t.Fatalf("start %d showed a secret:\n%s", i+1, banner)
		}
		if _, err := rootClient(banner, testAKID, testSecret).ListKeys(context.Background(), &awskms.ListKeysInput{}); err != nil {
			t.Fatalf("start %d: ListKeys with the preset key: %v", i+1, err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(good, "wJal", "xJal", 1), 0o600)
	err := run(context.Background(), append([]string{"serve"}, args...), &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "another secret") {
		t.Fatalf("a changed secret: %v", err)
	}
}
