// Package e2e runs kmsd end to end with the real AWS clients: the AWS CLI v2
// (/usr/bin/aws, Debian's awscli package) and, when installed, boto3
// (/usr/bin/python3 with python3-boto3). The scenario itself is the bash
// script awscli.sh, which can also be run by hand:
//
//	go build -o /tmp/kmsd ./cmd/kmsd && bash test/e2e/awscli.sh /tmp/kmsd
//
// Without the clients the test is skipped, except under CI=true, where it
// fails so that a CI image missing them does not pass silently.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	awsCLI       = "/usr/bin/aws"
	installCLI   = "install awscli: apt-get install -y awscli"
	scriptBudget = 8 * time.Minute // the scenario takes 1–4 minutes (each CLI call starts Python)
)

func TestAWSCLI(t *testing.T) { runScenario(t, "awscli.sh", nil) }

// TestAWSCLIPKCS11Root runs the whole awscli.sh scenario again with the
// root of trust in a SoftHSM2 token (keystore.type pkcs11).
func TestAWSCLIPKCS11Root(t *testing.T) {
	runScenario(t, "awscli.sh", []string{"E2E_ROOT=pkcs11"}, "/usr/lib/softhsm/libsofthsm2.so", "/usr/bin/softhsm2-util")
}

// runScenario runs one scenario script (KMSD_BINARY WORK_DIR) with the AWS
// CLI and the extra environment env, streaming its output into the test
// log. It needs the AWS CLI and whatever files need lists: skipped without
// them, failed under CI=true. The script must exit 0 and end with
// "N passed, 0 failed".
func runScenario(t *testing.T, name string, env []string, need ...string) {
	for _, path := range append([]string{awsCLI}, need...) {
		if _, err := os.Stat(path); err != nil {
			msg := installCLI + " (and softhsm2, openssl, opensc for the custom key store scenario): " + err.Error()
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	script, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := buildKmsd(t, tmp)

	limit := budget(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, bin, tmp)
	cmd.Env = append(os.Environ(), env...) // CI decides whether a missing boto3 fails or skips
	// On timeout, SIGTERM (not SIGKILL) the script so that its trap stops
	// kmsd; WaitDelay kills it if it does not exit soon after.
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
	t.Logf("%s ran for %s", name, time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s: %v", name, limit, err)
	}
	if err != nil {
		t.Fatalf("%s failed: %v (its output is above)", name, err)
	}
	if !strings.HasSuffix(out.last, " passed, 0 failed") {
		t.Fatalf("%s exited 0 but its last line is %q, want \"N passed, 0 failed\"", name, out.last)
	}
}

// buildKmsd builds ./cmd/kmsd into dir and returns the binary's path.
func buildKmsd(t *testing.T, dir string) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		t.Fatalf("go env GOMOD printed %q: not inside the module", gomod)
	}
	bin := filepath.Join(dir, "kmsd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kmsd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kmsd: %v\n%s", err, out)
	}
	return bin
}

// budget is how long the script may run: scriptBudget, or less when the
// test binary's own -timeout comes first.
func budget(t *testing.T) time.Duration {
	d := scriptBudget
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 30*time.Second; left < d {
			d = left
		}
	}
	return d
}

// lineLogger writes the script's output to the test log line by line, so
// that `go test -v` shows the progress as it happens.
type lineLogger struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	last string // the last complete non-empty line
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.emit(string(l.buf.Next(i + 1)))
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.emit(l.buf.String())
		l.buf.Reset()
	}
}

func (l *lineLogger) emit(line string) {
	line = strings.TrimRight(line, "\r\n")
	l.t.Log(line)
	if strings.TrimSpace(line) != "" {
		l.last = line
	}
}
