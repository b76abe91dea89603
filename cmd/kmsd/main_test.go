package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"
)

var endpointRE = regexp.MustCompile(`at (http://127\.0\.0\.1:\d+) `)

// startServe runs "kmsd serve" with args until stop is called, and
// returns the banner and the log written so far.
func startServe(t *testing.T, args []string, getenv func(string) string) (banner string, logs *lockedbuf.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), &stdout, &stderr, getenv) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "create-key") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("kmsd serve exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner after 20s; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	return stdout.String(), &stderr, func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
}

// start runs "kmsd serve" on dir until the returned stop is called, and
// returns what it printed once the banner is out.
func start(t *testing.T, dir string) (banner string, stop func() error) {
	t.Helper()
	banner, _, stop = startServe(t, []string{"--data-dir", dir, "--listen", "127.0.0.1:0"}, func(string) string { return "" })
	return banner, stop
}

func TestServeFirstAndSecondStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	banner, stop := start(t, dir)
	for _, want := range []string{"export AWS_ACCESS_KEY_ID=AKIA", "export AWS_SECRET_ACCESS_KEY=", "export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:", "export AWS_REGION=us-east-1\n", "export AWS_DEFAULT_REGION=us-east-1\n", "aws kms create-key --endpoint-url"} {
		if !strings.Contains(banner, want) {
			t.Errorf("first banner lacks %q:\n%s", want, banner)
		}
	}
	if !endpointRE.MatchString(banner) {
		t.Errorf("banner does not name a loopback endpoint:\n%s", banner)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for name, want := range map[string]os.FileMode{".": 0o700, "root.key": 0o600, dbFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}

	// A second start reuses the folder and never shows the secret again.
	banner, stop = start(t, dir)
	if strings.Contains(banner, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("second start printed a secret:\n%s", banner)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestServeRefusesOpenDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("serve on a 0755 data folder: %v", err)
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run(context.Background(), []string{"frob"}, &bytes.Buffer{}, &bytes.Buffer{}, os.Getenv); err == nil {
		t.Fatal("unknown command accepted")
	}
}
