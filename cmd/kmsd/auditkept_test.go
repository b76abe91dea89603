package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
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

// TestAuditDropKept: a record in the store that the log refuses (signed
// by another key, or altered) made every kmsd audit verify fail, and no
// command removed it. kmsd audit drop-kept removes refused records (all,
// or those claiming one eventID), on the record, and never one the log
// accepts. verify also warns of eventIDs the log holds twice.
func TestAuditDropKept(t *testing.T) {
	ctx := context.Background()
	dir, _, _ := populated(t)
	f := openForTest(t, dir)
	signer, err := audit.LoadSigningKey(ctx, filepath.Join(dir, audit.SigningKeyFile), f.ks)
	if err != nil {
		t.Fatal(err)
	}
	outbox := datafolder.OutboxIn(f.st)
	id := audit.KeyID(signer.PublicKey())
	other := audit.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)))
	keep := func(s audit.Signer, eventID string) {
		t.Helper()
		rec := &audit.Record{EventName: "CreateKey", EventID: eventID, UserIdentity: audit.UserIdentity{Type: "IAMUser", UserName: "alice"}}
		if err := audit.KeepRecord(ctx, outbox, s, rec, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Signed by another key, then moved to this log's set; and one of this
	// log's, altered.
	keep(other, "forged")
	forged, _, err := outbox.LoadKept(ctx, audit.KeyID(other.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	keep(signer, "altered")
	keep(signer, "valid-kept")
	recs, rev, err := outbox.LoadKept(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	recs[0].Body = bytes.Replace(recs[0].Body, []byte("alice"), []byte("mallory"), 1)
	if _, err := outbox.SaveKept(ctx, id, append(recs, forged...), rev); err != nil {
		t.Fatal(err)
	}
	f.close()

	out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(out, "kmsd audit drop-kept --refused") {
		t.Fatalf("verify with refused kept records: %v\n%s", err, out)
	}
	for _, bad := range [][]string{{}, {"--refused", "--event-id", "forged"}} {
		if out, err := runKmsdCombined(t, append([]string{"audit", "drop-kept", "--data-dir", dir}, bad...)...); err == nil || !strings.Contains(err.Error(), "give either") {
			t.Errorf("drop-kept %v: %v\n%s", bad, err, out)
		}
	}
	if out, err := runKmsdCombined(t, "audit", "drop-kept", "--data-dir", dir, "--event-id", "valid-kept"); err == nil || !strings.Contains(err.Error(), "a record the log accepts does") {
		t.Errorf("drop-kept of a valid record: %v\n%s", err, out)
	}
	stdout, stderr, err := runKmsd(t, "audit", "drop-kept", "--data-dir", dir, "--event-id", "forged")
	if err != nil || !strings.Contains(stdout, `eventID "forged"`) || !strings.Contains(stdout, "1 refused kept record removed") || !strings.Contains(stderr, "Audit: recorded as record") {
		t.Fatalf("drop-kept --event-id forged: %v\n%s%s", err, stdout, stderr)
	}
	stdout, stderr, err = runKmsd(t, "audit", "drop-kept", "--data-dir", dir, "--refused")
	if err != nil || !strings.Contains(stdout, `eventID "altered"`) || !strings.Contains(stdout, "not signed by its signing key") {
		t.Fatalf("drop-kept --refused: %v\n%s%s", err, stdout, stderr)
	}
	if out, err := runKmsdCombined(t, "audit", "drop-kept", "--data-dir", dir, "--refused"); err == nil || !strings.Contains(err.Error(), "nothing was removed") {
		t.Errorf("drop-kept with nothing refused: %v\n%s", err, out)
	}
	// The valid record stays; the drops themselves were appended, and
	// with them the valid record (the command's Open appends kept records
	// first).
	log := readFolder(t, filepath.Join(dir, audit.DirName))
	if strings.Count(log, `"eventName":"DropKeptAuditRecords"`) != 2 || !strings.Contains(log, `"eventId":"forged"`) || strings.Count(log, "valid-kept") != 1 {
		t.Errorf("the log does not hold the two drops and the valid kept record once:\n%s", log)
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || strings.Contains(out, "the store keeps") || strings.Contains(out, "eventID that an earlier record has") {
		t.Fatalf("verify after the drops: %v\n%s", err, out)
	}

	// One event recorded twice: verify passes, and warns.
	cfg, err := config.Load([]string{"--data-dir", dir}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	f = openForTest(t, dir)
	defer f.close()
	for range 2 {
		rec := &audit.Record{EventName: "CreateKey", EventID: "twice", UserIdentity: audit.UserIdentity{Type: "IAMUser"}}
		if _, err := audit.AppendOne(ctx, auditOptions(cfg, signer, f.st, slog.New(slog.DiscardHandler)), rec); err != nil {
			t.Fatal(err)
		}
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "warning: 1 record carries an eventID that an earlier record has") || !strings.Contains(out, `eventID "twice"`) {
		t.Fatalf("verify of a log holding an event twice: %v\n%s", err, out)
	}
}

// TestAdminKeyOfAStartIsAudited: the admin access key a first start makes
// is a change like any other and has its record (the key id, never the
// secret); a later start, which makes none, adds no such record.
func TestAdminKeyOfAStartIsAudited(t *testing.T) {
	dir, akid, secret := populated(t)
	log := readFolder(t, filepath.Join(dir, audit.DirName))
	if strings.Count(log, `"eventName":"CreateAccessKey"`) != 1 || !strings.Contains(log, `"accessKeyId":"`+akid+`"`) {
		t.Fatalf("the log of a first start lacks the record of the admin access key %s", akid)
	}
	if strings.Contains(log, secret) {
		t.Fatal("the audit log holds the admin's secret access key")
	}
	_, stop := start(t, dir)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(readFolder(t, filepath.Join(dir, audit.DirName)), `"eventName":"CreateAccessKey"`); n != 1 {
		t.Fatalf("after a second start the log holds %d CreateAccessKey records, want 1", n)
	}
}
