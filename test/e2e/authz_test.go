package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAWSCLIAuthorization runs authz.sh: the AWS CLI as a non-admin user
// whose access comes from a key policy, with an access key made by
// `kmsd iam create-access-key` while kmsd runs, grants, key policies and a
// SIGHUP reload of the declared principals. Like TestAWSCLI it needs the AWS
// CLI: skipped without it, failed under CI=true.
func TestAWSCLIAuthorization(t *testing.T) {
	if _, err := os.Stat(awsCLI); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(installCLI)
		}
		t.Skip(installCLI)
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	script, err := filepath.Abs("authz.sh")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := buildKmsd(t, tmp)

	limit := budget(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, bin, tmp)
	cmd.Env = os.Environ()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out

	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	out.flush()
	t.Logf("authz.sh ran for %s", time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		t.Fatalf("authz.sh did not finish within %s: %v", limit, err)
	}
	if err != nil {
		t.Fatalf("authz.sh failed: %v (its output is above)", err)
	}
	if !strings.HasSuffix(out.last, " passed, 0 failed") {
		t.Fatalf("authz.sh exited 0 but its last line is %q, want \"N passed, 0 failed\"", out.last)
	}
}
