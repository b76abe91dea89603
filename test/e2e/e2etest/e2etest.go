// Package e2etest runs the end-to-end scenario scripts of test/e2e from Go
// tests: it builds kmsd, runs a script with a time budget, streams its
// output into the test log and checks that it ended with "N passed, 0
// failed". Scenarios that need an HSM live in a package of their own
// (test/e2e/hsm), so that each package stays well inside go test's default
// ten-minute limit.
package e2etest

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

	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// The AWS CLI every scenario drives, and how to install it.
const (
	AWSCLI       = "/usr/bin/aws"
	InstallCLI   = "install awscli: apt-get install -y awscli"
	scriptBudget = 8 * time.Minute // a scenario takes 1–4 minutes (each CLI call starts Python)
)

// Run runs one scenario script (KMSD_BINARY WORK_DIR), name being its path with the AWS
// CLI and the extra environment env, streaming its output into the test
// log. It needs the AWS CLI and whatever files need lists: skipped without
// them, failed under CI=true. The script must exit 0 and end with
// "N passed, 0 failed".
func Run(t *testing.T, name string, env []string, need ...string) {
	t.Helper()
	RunWith(t, name, []string{filepath.Join(filepath.Dir(name), "lib.sh")}, env, need...)
}

// RunWith is Run for a script that depends on the files deps (the
// scripts it sources or runs) instead of the lib.sh beside it: their
// content, with the script's, keys go test's result cache.
func RunWith(t *testing.T, name string, deps, env []string, need ...string) {
	t.Helper()
	for _, path := range append([]string{AWSCLI}, need...) {
		if _, err := os.Stat(path); err != nil {
			msg := InstallCLI + " (and softhsm2, openssl, opensc for the custom key store scenario): " + err.Error()
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
	// Opening the scripts records them in go test's result cache key: an
	// edited script runs again instead of replaying a cached pass.
	for _, f := range append([]string{name}, deps...) {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	bin := BuildKmsd(t, tmp)

	limit := Budget(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, bin, tmp)
	cmd.Env = append(os.Environ(), env...) // CI decides whether a missing boto3 fails or skips
	if os.Getenv(backendtest.Env) == backend.Postgres {
		// The scenario's kmsd keeps its state in a fresh PostgreSQL
		// database (package backendtest).
		cfg := backendtest.Config(t, filepath.Join(tmp, "store"))
		cmd.Env = append(cmd.Env, "KMSD_STORE=postgres", "KMSD_STORE_DSN="+cfg.DSN)
	}
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
	t.Logf("%s ran for %s", filepath.Base(name), time.Since(start).Round(time.Second))
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

// BuildKmsd builds ./cmd/kmsd into dir, with env (such as
// CGO_ENABLED=0) added to the go command's environment, and returns the
// binary's path.
func BuildKmsd(t *testing.T, dir string, env ...string) string {
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
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kmsd: %v\n%s", err, out)
	}
	return bin
}

// Budget is how long a script may run: scriptBudget, or less when the
// test binary's own -timeout comes first.
func Budget(t *testing.T) time.Duration {
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
