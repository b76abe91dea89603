package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// dbFile is the SQLite database of a data folder, as the tests name it.
const dbFile = backend.DatabaseFile

// These tests drive kmsd as an operator would (run, files, the AWS SDK):
// they fail closed where kmsd used to carry on (issue 17).

// tryServe runs "kmsd serve" with args and reports whether it refused to
// start (its error) or started (its banner; it is stopped again at once).
func tryServe(t *testing.T, args ...string) (banner string, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), &stdout, &stderr, noEnv) }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("kmsd serve returned without an error and without serving:\n%s", stderr.String())
			}
			return "", err
		default:
		}
		if strings.Contains(stdout.String(), "create-key") {
			cancel()
			<-done
			return stdout.String(), nil
		}
	}
	t.Fatalf("kmsd serve neither started nor stopped within 20s:\n%s", stderr.String())
	return "", nil
}

// populated makes a data folder through kmsd serve: a first start, a key
// created, a stop, and a second session with another key. It returns the
// folder and the admin credentials.
func populated(t *testing.T) (dir, akid, secret string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	banner, stop := start(t, dir)
	akid = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
	secret = regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
	if _, err := rootClient(banner, akid, secret).CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return dir, akid, secret
}

// session starts kmsd on dir, creates a key, and stops it.
func session(t *testing.T, dir, akid, secret string) {
	t.Helper()
	banner, stop := start(t, dir)
	if _, err := rootClient(banner, akid, secret).CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// folderHashes maps every file under dir to a hash of its content, leaving
// out SQLite's -wal and -shm companions (opening a database in WAL mode
// makes them, and closing it folds them back).
func folderHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasSuffix(rel, "-wal") || strings.HasSuffix(rel, "-shm") || d.Name() == ".lock" {
			return nil
		}
		if d.IsDir() {
			m[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		m[rel] = hex.EncodeToString(sum[:8])
		return nil
	})
	return m
}

func diffSnapshots(before, after map[string]string) []string {
	var diff []string
	for k, v := range after {
		if w, ok := before[k]; !ok {
			diff = append(diff, "added "+k)
		} else if w != v {
			diff = append(diff, "changed "+k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diff = append(diff, "removed "+k)
		}
	}
	sort.Strings(diff)
	return diff
}

func removeFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeRefusesAPartialDataFolder is issue 17's third item: a data
// folder that lost a part used to start anyway — afresh (new admin
// credentials, every key gone) without its database, with a new root key
// written in without its root, serving only internal errors without its
// signing key, and as ready on a damaged database. Each is now refused,
// naming what is missing, and nothing in the folder is written.
func TestServeRefusesAPartialDataFolder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // in the error
	}{
		{dbFile + " missing", func(t *testing.T, dir string) {
			removeFiles(t, dir, dbFile, dbFile+"-wal", dbFile+"-shm")
		}, []string{dbFile, "is missing", "restore " + dbFile}},
		{dbFile + " empty", func(t *testing.T, dir string) {
			removeFiles(t, dir, dbFile+"-wal", dbFile+"-shm")
			if err := os.Truncate(filepath.Join(dir, dbFile), 0); err != nil {
				t.Fatal(err)
			}
		}, []string{dbFile, "is empty", "restore " + dbFile}},
		{"root.key missing", func(t *testing.T, dir string) {
			removeFiles(t, dir, "root.key")
		}, []string{"root key root.key is missing", "restore it"}},
		{"audit signing key missing", func(t *testing.T, dir string) {
			removeFiles(t, dir, "audit-signing.key", "audit-signing.pub")
		}, []string{"audit-signing.key is missing", "restore it"}},
		{"audit public key missing", func(t *testing.T, dir string) {
			removeFiles(t, dir, "audit-signing.pub")
		}, []string{"audit-signing.pub is missing", "restore it"}},
		{"audit folder missing", func(t *testing.T, dir string) {
			removeFiles(t, dir, "audit")
		}, []string{"audit/ is missing", "kmsd audit accept-reset"}},
		{dbFile + " damaged", func(t *testing.T, dir string) {
			backendtest.DamageKeysTable(t, dir)
		}, []string{"integrity check", "kmsd store check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := populated(t)
			tc.damage(t, dir)
			before := folderHashes(t, dir)
			banner, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0")
			if err == nil {
				t.Fatalf("kmsd serve started on a data folder with its %s:\n%s", tc.name, banner)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q:\n%v", w, err)
				}
			}
			if d := diffSnapshots(before, folderHashes(t, dir)); len(d) > 0 {
				t.Errorf("kmsd serve wrote to the folder it refused: %v", d)
			}
		})
	}
}

// TestServeRefusesAFolderOfUnknownFiles: a first start needs an empty
// folder; one holding other files is not taken over.
func TestServeRefusesAFolderOfUnknownFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("kmsd serve on a folder of other files: %v", err)
	}
}

// TestFirstStartThatCannotBindCreatesNothing is issue 17's fourth item: a
// first start whose port was taken used to create the data folder and
// the admin access key without ever printing its secret.
func TestFirstStartThatCannotBindCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := tryServe(t, "--data-dir", dir, "--listen", taken.Addr().String()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("kmsd serve on a taken port: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a first start that could not listen left the data folder behind (%v): %v", err, folderHashes(t, dir))
	}
	// The next start is the first start: it prints the admin secret.
	banner, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0")
	if err != nil || !strings.Contains(banner, "export AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("the start after a failed first start: %v\n%s", err, banner)
	}
}

// TestServeRefusesAnotherRegion is part of issue 17's seventh item: a data
// folder started with another --region than it was created with used to
// serve, its keys silently out of sight.
// TestServeRegionsOfTheStore: the served Regions and the default Region of
// a store in use may change; kmsd refuses only to leave keys in Regions it
// would not serve (naming them and how many), unless told to accept it.
func TestServeRegionsOfTheStore(t *testing.T) {
	// A store first started with the defaults (us-east-1), without keys,
	// serves any other set of Regions.
	empty := filepath.Join(t.TempDir(), "data")
	_, stop := start(t, empty)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := tryServe(t, "--data-dir", empty, "--listen", "127.0.0.1:0", "--regions", "eu-central-1,us-west-2"); err != nil {
		t.Fatalf("kmsd serve --regions eu-central-1,us-west-2 on a store without keys: %v", err)
	}

	// With keys in us-east-1 (the default Region at the first start).
	dir, _, _ := populated(t)
	if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--region", "eu-west-1"); err != nil {
		t.Fatalf("kmsd serve with another default Region, us-east-1 still served: %v", err)
	}
	before := folderHashes(t, dir)
	_, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--regions", "eu-central-1,us-west-2")
	if err == nil || !strings.Contains(err.Error(), "1 key in Regions this kmsd would not serve: us-east-1 (1)") ||
		!strings.Contains(err.Error(), "it serves eu-central-1, us-west-2") || !strings.Contains(err.Error(), "--allow-unserved-key-regions") {
		t.Fatalf("kmsd serve --regions eu-central-1,us-west-2 on a store with keys in us-east-1: %v", err)
	}
	if d := diffSnapshots(before, folderHashes(t, dir)); len(d) > 0 {
		t.Errorf("kmsd serve wrote to the folder it refused: %v", d)
	}
	if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--regions", "eu-central-1,us-west-2", "--allow-unserved-key-regions"); err != nil {
		t.Fatalf("kmsd serve --allow-unserved-key-regions: %v", err)
	}
	// A default Region that is not served is a configuration error.
	_, err = tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--region", "us-east-1", "--regions", "eu-central-1")
	if err == nil || !strings.Contains(err.Error(), "region us-east-1 (the default Region) is not one of the served regions eu-central-1") {
		t.Fatalf("kmsd serve with an unserved default Region: %v", err)
	}
	// Serving us-east-1 again, the keys are there.
	if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--regions", "us-east-1,eu-central-1"); err != nil {
		t.Fatal(err)
	}
}

// runKmsdCombined runs kmsd with its standard output and error in one string.
func runKmsdCombined(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out, &out, noEnv)
	return out.String(), err
}

// copyTree copies the directory src to dst (which must not exist).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesARolledBackAuditLog is issue 17's second item: an audit
// log cut back after an earlier close digest, or replaced by an older
// copy, verified OK and kmsd served on it; a removed audit folder
// restarted at sequence 1. The store's anchor now catches each.
func TestServeRefusesARolledBackAuditLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, dir, older string)
		refusal string // what kmsd serve's refusal says
	}{
		{"replaced by an older copy", func(t *testing.T, dir, older string) {
			removeFiles(t, dir, "audit")
			copyTree(t, older, filepath.Join(dir, "audit"))
		}, "does not reach its anchor"},
		{"cut after an earlier close digest", func(t *testing.T, dir, older string) {
			files, _ := filepath.Glob(filepath.Join(dir, "audit", "audit-*.jsonl"))
			olderFiles, _ := filepath.Glob(filepath.Join(older, "audit-*.jsonl"))
			if len(files) != 1 || len(olderFiles) != 1 {
				t.Fatalf("files %v, older %v", files, olderFiles)
			}
			fi, _ := os.Stat(olderFiles[0])
			if err := os.Truncate(files[0], fi.Size()); err != nil {
				t.Fatal(err)
			}
		}, "does not reach its anchor"},
		{"removed", func(t *testing.T, dir, _ string) {
			removeFiles(t, dir, "audit")
		}, "audit/ is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, akid, secret := populated(t)
			older := filepath.Join(t.TempDir(), "older-audit")
			copyTree(t, filepath.Join(dir, "audit"), older)
			session(t, dir, akid, secret)
			tc.damage(t, dir, older)

			out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
			if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "anchor") {
				t.Fatalf("kmsd audit verify of a rolled-back log: %v\n%s", err, out)
			}
			before := folderHashes(t, dir)
			if _, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), tc.refusal) || !strings.Contains(err.Error(), "accept-reset") {
				t.Fatalf("kmsd serve on a rolled-back log: %v", err)
			}
			if d := diffSnapshots(before, folderHashes(t, dir)); len(d) > 0 {
				t.Errorf("kmsd serve wrote to the folder it refused: %v", d)
			}

			// The operator accepts the loss, on the record; kmsd starts.
			if out, err := runKmsdCombined(t, "audit", "accept-reset", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "--reason") {
				t.Fatalf("accept-reset without a reason: %v\n%s", err, out)
			}
			out, err = runKmsdCombined(t, "audit", "accept-reset", "--data-dir", dir, "--reason", "restored from a stale backup")
			if err != nil || !strings.Contains(out, "Accepted") {
				t.Fatalf("accept-reset: %v\n%s", err, out)
			}
			session(t, dir, akid, secret)
			out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", dir)
			if err != nil || !strings.Contains(out, "the log reaches its anchor in the store") {
				t.Fatalf("verify after the accepted reset: %v\n%s", err, out)
			}
			log := readFolder(t, filepath.Join(dir, "audit"))
			if !strings.Contains(log, `"eventName":"AcceptAuditLogReset"`) || !strings.Contains(log, `"reason":"restored from a stale backup"`) || !strings.Contains(log, `"replacedAnchor"`) {
				t.Errorf("the log lacks the record of the accepted reset")
			}
		})
	}
}

func readFolder(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	var b strings.Builder
	for _, f := range files {
		c, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(c)
	}
	return b.String()
}

// TestDigestFileDetectsARollback: with audit.digest_file, every signed
// digest is copied out as it is made, and a verifier holding that file
// (but not the machine's store) detects a log replaced by an older copy.
func TestDigestFileDetectsARollback(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	digests := filepath.Join(base, "elsewhere", "digests.jsonl")
	os.Mkdir(filepath.Dir(digests), 0o700)
	cfgFile := filepath.Join(base, "kmsd.yaml")
	os.WriteFile(cfgFile, []byte("audit:\n  digest_file: "+digests+"\n"), 0o600)
	args := []string{"--config", cfgFile, "--data-dir", dir, "--listen", "127.0.0.1:0"}
	banner, stop := serveUntil(t, args, noEnv)
	akid := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
	secret := regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
	if _, err := rootClient(banner, akid, secret).CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(base, "older-audit")
	copyTree(t, filepath.Join(dir, "audit"), older)
	banner, stop = serveUntil(t, args, noEnv)
	if _, err := rootClient(banner, akid, secret).CreateKey(context.Background(), &awskms.CreateKeyInput{}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(digests); err != nil || bytes.Count(b, []byte(`"digest"`)) < 2 {
		t.Fatalf("digest file: %v\n%s", err, b)
	}

	// Off the machine: the log as found, its public key, the digests, and
	// no store.
	pub := filepath.Join(dir, "audit-signing.pub")
	nowhere := t.TempDir()
	out, err := runKmsdCombined(t, "audit", "verify", "--data-dir", nowhere, "--public-key", pub, "--dir", filepath.Join(dir, "audit"), "--digests", digests)
	if err != nil || !strings.Contains(out, "the log reaches every digest in") {
		t.Fatalf("the intact log against the digest file: %v\n%s", err, out)
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", nowhere, "--public-key", pub, "--dir", older)
	if err != nil {
		t.Fatalf("the older copy alone verifies (that is the problem): %v\n%s", err, out)
	}
	out, err = runKmsdCombined(t, "audit", "verify", "--data-dir", nowhere, "--public-key", pub, "--dir", older, "--digests", digests)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "removed from its end") {
		t.Fatalf("the older copy against the digest file: %v\n%s", err, out)
	}
}

// TestStoreCheck: kmsd store check runs the full integrity check.
func TestStoreCheck(t *testing.T) {
	dir, _, _ := populated(t)
	if out, err := runKmsdCombined(t, "store", "check", "--data-dir", dir); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("store check of a sound store: %v\n%s", err, out)
	}
	backendtest.DamageKeysTable(t, dir)
	if out, err := runKmsdCombined(t, "store", "check", "--data-dir", dir); err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("store check of a damaged store: %v\n%s", err, out)
	}
	if _, err := runKmsdCombined(t, "store", "check", "--data-dir", t.TempDir()); err == nil {
		t.Fatal("store check of a folder without a store succeeded")
	}
}

// TestInitRefusesAPartialFolder: kmsd init used to make a sealed root in a
// folder whose store is in use but whose root key is gone, a root that
// unwraps nothing of the store.
func TestInitRefusesAPartialFolder(t *testing.T) {
	dir, _, _ := populated(t)
	removeFiles(t, dir, "root.key")
	before := folderHashes(t, dir)
	pass := writeSecret(t, t.TempDir(), "pass", "a long enough passphrase")
	out, err := runKmsdCombined(t, "init", "--data-dir", dir, "--passphrase-file", pass)
	if err == nil || !strings.Contains(err.Error(), "root key root.key is missing") {
		t.Fatalf("kmsd init on a folder without its root key: %v\n%s", err, out)
	}
	if d := diffSnapshots(before, folderHashes(t, dir)); len(d) > 0 {
		t.Errorf("kmsd init wrote to the folder it refused: %v", d)
	}
}

// readyz returns the status and body of endpoint's /readyz.
func readyz(t *testing.T, endpoint string) (int, string) {
	t.Helper()
	resp, err := http.Get(endpoint + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestReadinessReportsDamageRequestsMeet is the readiness half of issue
// 17's third item: a database damaged while kmsd serves, past the first
// page of a table, used to leave /readyz at "ok" (its probe reads one row
// per table) while every request reading the damaged rows failed with
// "database disk image is malformed". Once a request meets the damage,
// /readyz answers 503 and says why, and goes on saying it.
func TestReadinessReportsDamageRequestsMeet(t *testing.T) {
	dir, akid, secret := populated(t)
	banner, stop := start(t, dir)
	defer stop()
	endpoint := endpointRE.FindStringSubmatch(banner)[1]
	c := rootClient(banner, akid, secret)
	ctx := context.Background()
	// Keys of a page each (long descriptions), so that the keys table
	// has many leaf pages.
	for range 40 {
		if _, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String(strings.Repeat("k", 3000))}); err != nil {
			t.Fatal(err)
		}
	}
	backendtest.DamageKeysTableLastLeaf(t, dir)
	if code, body := readyz(t, endpoint); code != http.StatusOK {
		t.Fatalf("/readyz before any request met the damage: %d %s (the test needs damage the probe itself misses)", code, body)
	}
	_, err := c.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(1000)})
	if err == nil || !strings.Contains(err.Error(), "KMSInternalException") {
		t.Fatalf("ListKeys across the damaged page: %v, want KMSInternalException", err)
	}
	for range 2 {
		code, body := readyz(t, endpoint)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "store is damaged") || !strings.Contains(body, "kmsd store check") {
			t.Fatalf("/readyz after a request met the damage: %d %q, want 503 naming the damaged store", code, body)
		}
	}
}

// TestFailedSeedLeavesNoUnshownSecret is the seed half of issue 17's
// fourth item: a first start whose seed failed used to have created the
// data folder and the admin access key already, without printing its
// secret, and the next start said to use "the access key printed when
// this data folder was created". Now a seed that fails its checks
// (a malformed key policy) is refused before anything is written, and one
// that fails only when applied (a grantee that is no principal) fails
// before the admin access key is made: either way the next start prints
// a secret that works.
func TestFailedSeedLeavesNoUnshownSecret(t *testing.T) {
	for _, tc := range []struct {
		name, seed string
		created    bool // the failed start made the data folder
	}{
		{"malformed key policy", `keys:
  - aliases: [alias/app]
    policy: '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}'
`, false},
		{"grant that cannot be made", `keys:
  - aliases: [alias/app]
    grants:
      - name: app
        grantee: not-a-principal
        operations: [Decrypt]
`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			seedFile := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(seedFile, []byte(tc.seed), 0o600); err != nil {
				t.Fatal(err)
			}
			banner, err := tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0", "--seed", seedFile)
			if err == nil || !strings.Contains(err.Error(), "seed") {
				t.Fatalf("kmsd serve with a failing seed: %v\n%s", err, banner)
			}
			if _, serr := os.Stat(dir); tc.created == os.IsNotExist(serr) {
				t.Errorf("data folder after the failed start: %v, want it made: %v (error: %v)", serr, tc.created, err)
			}
			banner, err = tryServe(t, "--data-dir", dir, "--listen", "127.0.0.1:0")
			if err != nil || !strings.Contains(banner, "export AWS_SECRET_ACCESS_KEY=") {
				t.Fatalf("the start after a failed seed does not show the admin secret: %v\n%s", err, banner)
			}
			akid := regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1]
			secret := regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1]
			b, stop := start(t, dir)
			defer stop()
			if !strings.Contains(b, "kmsd iam create-access-key --user admin") {
				t.Errorf("a later start's banner does not name the recovery of a lost admin secret:\n%s", b)
			}
			if _, err := rootClient(b, akid, secret).ListKeys(context.Background(), &awskms.ListKeysInput{}); err != nil {
				t.Errorf("the admin secret shown after the failed seed: %v", err)
			}
		})
	}
}
