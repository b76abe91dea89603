package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func testSigner() Signer {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	return NewSigner(ed25519.NewKeyFromSeed(seed))
}

// fakeClock is an injected clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 5, 20, 20, 46, 16, 123456789, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testRecord is an Encrypt record like the server will write.
func testRecord(i int) *Record {
	return &Record{
		UserIdentity: UserIdentity{
			Type:        "IAMUser",
			PrincipalID: "AIDAEXAMPLE",
			ARN:         "arn:aws:iam::111122223333:user/alice",
			AccountID:   "111122223333",
			AccessKeyID: "AKIAEXAMPLE",
			UserName:    "alice",
		},
		EventName:       "Encrypt",
		AWSRegion:       "us-east-1",
		SourceIPAddress: "127.0.0.1",
		UserAgent:       "aws-cli/2.15.0",
		RequestParameters: map[string]any{
			"keyId":               "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
			"encryptionContext":   map[string]string{"Department": "Engineering"},
		},
		RequestID: fmt.Sprintf("req-%d", i),
		ReadOnly:  true,
		Resources: []Resource{{
			ARN:       "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			AccountID: "111122223333",
		}},
		RecipientAccountID: "111122223333",
	}
}

// openLog opens a log in dir with test defaults (no periodic digests
// unless asked for) and closes it at the end of the test if still open.
func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	opts.Dir = dir
	if opts.Signer == nil {
		opts.Signer = testSigner()
	}
	if opts.DigestEvery == 0 {
		opts.DigestEvery = -1
	}
	if opts.DigestInterval == 0 {
		opts.DigestInterval = -1
	}
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func appendN(t testing.TB, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// lines returns the lines of a file, each with its newline.
func lines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func logFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := LogFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mustVerify(t testing.TB, dir string) *Report {
	t.Helper()
	rep, err := Verify(dir, testSigner().PublicKey())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// copyDir copies the log files of src to a new directory, as they would
// be found after a power cut.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, p := range logFiles(t, src) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// newTextLogger logs to w (a bytes.Buffer the test reads once the log is
// closed).
func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
