package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/datafolder"
)

// copyFile copies the file src to dst, mode 0600.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyRefusesAnotherFoldersLog: the audit log and signing key
// pair of another data folder, put in place of a folder's own, used to
// verify OK ("the store holds no anchor for this log" was only a note),
// while kmsd serve refused it. A store that has been started on anchors
// its log: verify now fails as serve does.
func TestAuditVerifyRefusesAnotherFoldersLog(t *testing.T) {
	dir, _, _ := populated(t)
	other, _, _ := populated(t)
	removeFiles(t, dir, audit.DirName, audit.SigningKeyFile, audit.PublicKeyFile)
	copyTree(t, filepath.Join(other, audit.DirName), filepath.Join(dir, audit.DirName))
	copyFile(t, filepath.Join(other, audit.SigningKeyFile), filepath.Join(dir, audit.SigningKeyFile))
	copyFile(t, filepath.Join(other, audit.PublicKeyFile), filepath.Join(dir, audit.PublicKeyFile))

	out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "holds no anchor for log") || strings.Contains(out, "OK:") {
		t.Fatalf("kmsd audit verify of another folder's log: %v\n%s", err, out)
	}
	if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0"); err == nil {
		t.Fatal("kmsd serve started on another folder's log")
	}
	// The other folder's own store still anchors it: OK there.
	if out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", other); err != nil || !strings.Contains(out, "OK:") {
		t.Fatalf("kmsd audit verify of the log in its own folder: %v\n%s", err, out)
	}
}

// openForTest opens the data folder dir as a kmsd command does.
func openForTest(t *testing.T, dir string) *dataFolder {
	t.Helper()
	cfg, err := config.Load([]string{"--data-dir", dir}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	f, err := openDataFolder(context.Background(), cfg, noEnv, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestKeptRecordReachesTheLogAtStart: a record kept in the store (kmsd
// serve keeps there the record of a committed change its log could not
// write) is reported by kmsd audit verify, and the next start appends it
// to the log, which then verifies without it in the store.
func TestKeptRecordReachesTheLogAtStart(t *testing.T) {
	ctx := context.Background()
	dir, akid, secret := populated(t)
	f := openForTest(t, dir)
	signer, err := audit.LoadSigningKey(ctx, filepath.Join(dir, audit.SigningKeyFile), f.ks)
	if err != nil {
		t.Fatal(err)
	}
	rec := &audit.Record{EventName: "CreateKey", EventID: "0b1e8a52-3f39-4c1e-9d1b-4f6b1a2c3d4e", UserIdentity: audit.UserIdentity{Type: "IAMUser"},
		ResponseElements: map[string]any{"keyMetadata": map[string]any{"keyId": "kept-key-id"}}}
	if err := audit.KeepRecord(ctx, datafolder.OutboxIn(f.st), signer, rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.close()

	out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "the store keeps 1 record of this log") || !strings.Contains(out, rec.EventID) {
		t.Fatalf("verify with a kept record: %v\n%s", err, out)
	}
	session(t, dir, akid, secret)
	if log := readFolder(t, filepath.Join(dir, audit.DirName)); strings.Count(log, rec.EventID) != 1 || !strings.Contains(log, "kept-key-id") {
		t.Fatalf("the log does not hold the kept CreateKey record once")
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || strings.Contains(out, "the store keeps") {
		t.Fatalf("verify after the start appended the kept record: %v\n%s", err, out)
	}
}

// TestOperatorCommandsAreAudited: kmsd iam create-access-key and kmsd
// root rotate change state and used to leave no audit record. They append
// one to the log, at once when kmsd serve is stopped, and through the
// store to the running kmsd serve's log when it runs; never the secret.
func TestOperatorCommandsAreAudited(t *testing.T) {
	dir, _, _ := populated(t)
	akidRE := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)\nexport AWS_SECRET_ACCESS_KEY=(\S+)`)
	createKey := func() (akid, secret, stderr string) {
		t.Helper()
		out, errOut, err := runKmsd(t, "iam", "create-access-key", "--user", "admin", "--data-dir", dir)
		m := akidRE.FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("create-access-key: %v\n%s%s", err, out, errOut)
		}
		return m[1], m[2], errOut
	}
	logHas := func(s string) bool { return strings.Contains(readFolder(t, filepath.Join(dir, audit.DirName)), s) }

	// kmsd serve stopped: appended at once.
	akid, secret, errOut := createKey()
	if !strings.Contains(errOut, "Audit: recorded as record") {
		t.Errorf("create-access-key with kmsd stopped: %s", errOut)
	}
	if !logHas(`"eventName":"CreateAccessKey"`) || !logHas(akid) {
		t.Fatal("the log lacks the CreateAccessKey record")
	}
	if logHas(secret) {
		t.Fatal("the audit log holds the secret access key")
	}
	out, errOut, err := runKmsd(t, "root", "rotate", "--data-dir", dir)
	if err != nil || !strings.Contains(errOut, "Audit: recorded as record") {
		t.Fatalf("root rotate: %v\n%s%s", err, out, errOut)
	}
	if !logHas(`"eventName":"RotateRoot"`) || !logHas(`"finished":true`) {
		t.Fatal("the log lacks the RotateRoot record")
	}

	// kmsd serve running: kept in the store, appended by it within seconds.
	_, stop := start(t, dir)
	akid2, _, errOut := createKey()
	if !strings.Contains(errOut, "kept in the store") {
		t.Errorf("create-access-key next to a running kmsd: %s", errOut)
	}
	for deadline := time.Now().Add(30 * time.Second); !logHas(akid2); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the running kmsd serve did not append the command's record")
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || strings.Contains(out, "the store keeps") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}
