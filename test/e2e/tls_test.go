package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestAWSCLIOverTLS starts the built kmsd with --dev-tls and runs the AWS CLI
// over HTTPS, trusting kmsd's development CA with --ca-bundle; without it the
// CLI must refuse the certificate.
func TestAWSCLIOverTLS(t *testing.T) {
	if _, err := os.Stat(e2etest.AWSCLI); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(e2etest.InstallCLI)
		}
		t.Skip(e2etest.InstallCLI)
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	tmp := t.TempDir()
	bin := e2etest.BuildKmsd(t, tmp)
	data := filepath.Join(tmp, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kmsd := exec.CommandContext(ctx, bin, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--dev-tls")
	stdout, err := kmsd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	kmsd.Stderr = os.Stderr
	if err := kmsd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { kmsd.Process.Kill(); kmsd.Wait() }()

	vars := map[string]string{}
	exportRE := regexp.MustCompile(`^export (AWS_[A-Z_]+)=(.*)$`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), "aws kms create-key") {
		if m := exportRE.FindStringSubmatch(sc.Text()); m != nil {
			vars[m[1]] = m[2]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	endpoint, ca := vars["AWS_ENDPOINT_URL_KMS"], vars["AWS_CA_BUNDLE"]
	if !strings.HasPrefix(endpoint, "https://127.0.0.1:") || ca == "" || vars["AWS_SECRET_ACCESS_KEY"] == "" {
		t.Fatalf("banner of kmsd --dev-tls lacks an https endpoint, CA bundle or credentials: %v", vars)
	}
	aws := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, e2etest.AWSCLI, append([]string{"--endpoint-url", endpoint, "--output", "json"}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + tmp, "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
			"AWS_DEFAULT_REGION=us-east-1", "AWS_ACCESS_KEY_ID=" + vars["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY=" + vars["AWS_SECRET_ACCESS_KEY"]}
		return cmd.CombinedOutput()
	}
	out, err := aws("--ca-bundle", ca, "kms", "create-key", "--description", "over TLS")
	if err != nil {
		t.Fatalf("create-key over HTTPS: %v\n%s", err, out)
	}
	var ck struct{ KeyMetadata struct{ KeyId string } }
	if err := json.Unmarshal(out, &ck); err != nil || ck.KeyMetadata.KeyId == "" {
		t.Fatalf("create-key output %s: %v", out, err)
	}
	out, err = aws("--ca-bundle", ca, "kms", "generate-random", "--number-of-bytes", "16")
	if err != nil {
		t.Fatalf("generate-random over HTTPS: %v\n%s", err, out)
	}
	// Without the CA bundle the CLI does not trust kmsd's certificate.
	out, err = aws("kms", "list-keys")
	if err == nil || !strings.Contains(string(out), "SSL") {
		t.Fatalf("list-keys without --ca-bundle: err=%v\n%s", err, out)
	}
}
