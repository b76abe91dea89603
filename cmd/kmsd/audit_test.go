package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
)

// writeAuditLog makes a data folder with a root key, an audit signing key
// and a log of n records, closed unless keepOpen (then the caller closes
// it with the returned Log).
func writeAuditLog(t *testing.T, n int, keepOpen bool) (dataDir string, l *audit.Log) {
	t.Helper()
	dataDir = t.TempDir()
	ctx := context.Background()
	ks, err := keystore.OpenFile(filepath.Join(dataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := audit.LoadOrCreateSigningKey(ctx, filepath.Join(dataDir, audit.SigningKeyFile), ks)
	if err != nil {
		t.Fatal(err)
	}
	l, err = audit.Open(ctx, audit.Options{Dir: filepath.Join(dataDir, audit.DirName), Signer: signer, DigestEvery: 2, DigestInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(ctx) })
	for i := range n {
		r := &audit.Record{EventName: "Encrypt", RequestID: "req", UserIdentity: audit.UserIdentity{Type: "IAMUser"}}
		r.RequestParameters = map[string]any{"keyId": "alias/test", "n": i}
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if !keepOpen {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, l
}

func runAudit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = auditMain(context.Background(), args, &out, &errOut, os.Getenv)
	return out.String(), errOut.String(), err
}

func TestAuditVerifyOK(t *testing.T) {
	dataDir, _ := writeAuditLog(t, 5, false)
	out, _, err := runAudit(t, "verify", "--data-dir", dataDir)
	// The folder has no store, so no anchor to check, and verify says so.
	if err != nil || out != "note: no store in "+dataDir+": the log's anchor was not checked\nOK: 5 records, 3 digests, chain intact through sequence 5\n" {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// The same with explicit paths, and with the files as arguments.
	files, _ := audit.LogFiles(filepath.Join(dataDir, audit.DirName))
	pub := filepath.Join(dataDir, audit.PublicKeyFile)
	for _, args := range [][]string{
		{"verify", "--dir", filepath.Join(dataDir, audit.DirName), "--public-key", pub},
		append([]string{"verify", "--public-key", pub}, files...),
	} {
		if out, _, err := runAudit(t, args...); err != nil || !strings.Contains(out, "\nOK: 5 records") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	// KMSD_DATA_DIR is the default data folder, as for kmsd serve.
	t.Setenv("KMSD_DATA_DIR", dataDir)
	if out, _, err := runAudit(t, "verify"); err != nil || !strings.Contains(out, "\nOK: 5 records") {
		t.Errorf("verify with KMSD_DATA_DIR: %v\n%s", err, out)
	}
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	dataDir, _ := writeAuditLog(t, 5, false)
	files, _ := audit.LogFiles(filepath.Join(dataDir, audit.DirName))
	b, _ := os.ReadFile(files[0])
	// Record 2 is line 2; change its request id.
	i := bytes.Index(b, []byte(`"sequence":2,`))
	j := bytes.Index(b[i:], []byte(`"requestID":"req"`)) + i
	b[j+len(`"requestID":"r`)] = 'x'
	os.WriteFile(files[0], b, 0o600)

	out, _, err := runAudit(t, "verify", "--data-dir", dataDir)
	if err == nil {
		t.Fatalf("verify passed a tampered log:\n%s", out)
	}
	if want := "\nFAILED: " + files[0] + ":2 (sequence 2): record 2 was altered"; !strings.Contains(out, want) {
		t.Errorf("output:\n%s\nwant it to start with %q", out, want)
	}
}

func TestAuditVerifyOpenLog(t *testing.T) {
	dataDir, l := writeAuditLog(t, 5, true)
	out, _, err := runAudit(t, "verify", "--data-dir", dataDir)
	if err == nil || !strings.Contains(out, "FAILED: ") || !strings.Contains(out, "records 5–5") && !strings.Contains(out, "record 5") {
		t.Fatalf("verify of an open log: %v\n%s", err, out)
	}
	out, _, err = runAudit(t, "verify", "--data-dir", dataDir, "--allow-open")
	if err != nil || !strings.Contains(out, "\nOK: 5 records, 2 digests, chain intact through sequence 5\nwarning: ") {
		t.Fatalf("verify --allow-open: %v\n%s", err, out)
	}
	l.Close(context.Background())
	if _, _, err := runAudit(t, "verify", "--data-dir", dataDir); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

func TestAuditUsageErrors(t *testing.T) {
	dataDir, _ := writeAuditLog(t, 1, false)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no audit command"},
		{[]string{"frobnicate"}, "unknown audit command"},
		{[]string{"verify", "--data-dir", t.TempDir()}, "reading public key"},
		{[]string{"verify", "--data-dir", dataDir, "--dir", t.TempDir()}, "failed verification"},
		{[]string{"verify", "--data-dir", dataDir, "--dir", "x", "file"}, "not both"},
		{[]string{"verify", "--bogus"}, "flag provided but not defined"},
	} {
		_, _, err := runAudit(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if out, _, err := runAudit(t, "help"); err != nil || !strings.Contains(out, "verify") {
		t.Errorf("help: %v %s", err, out)
	}
}

// TestAuditVerifyFolderThatNeverServed: a data folder whose kmsd started
// and stopped without serving a request holds one record, that of the
// admin access key the first start made, and verifies. A folder whose log
// has no file at all while its anchor in the store says it never had a
// record (a first start interrupted between opening the log and making the
// admin key) answers OK with a note (datafolder's "a node that never
// served" covers that rule). Once the log has records, a log with no file
// left fails: its anchor says what was lost.
func TestAuditVerifyFolderThatNeverServed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	_, stop := start(t, dir)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "OK: 1 record") {
		t.Fatalf("verify of a folder that never served: %v\n%s", err, out)
	}

	served, _, _ := populated(t)
	removeFiles(t, served, audit.DirName)
	if err := os.Mkdir(filepath.Join(served, audit.DirName), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", served)
	if err == nil || !strings.Contains(out, "FAILED: ") || strings.Contains(out, "OK:") {
		t.Fatalf("verify of a folder whose anchored log is gone: %v\n%s", err, out)
	}
}
