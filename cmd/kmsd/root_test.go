package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// rootFixture is what a test created through kmsd serve before a root
// rotation, to check after it.
type rootFixture struct {
	akid, secret string
	ciphertexts  [][]byte
	importKey    string
}

var encCtx = map[string]string{"purpose": "root rotation"}

func rootClient(banner, akid, secret string) *awskms.Client {
	endpoint := endpointRE.FindStringSubmatch(banner)[1]
	return awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
}

// populate starts kmsd serve with args and creates keys (one rotated, so
// with two materials), ciphertexts under each material and import
// parameters, with the admin access key printed at the first start.
func populate(t *testing.T, args []string, getenv func(string) string) rootFixture {
	t.Helper()
	banner, stop := serveUntil(t, args, getenv)
	defer stop()
	f := rootFixture{
		akid:   regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1],
		secret: regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1],
	}
	c := rootClient(banner, f.akid, f.secret)
	ctx := context.Background()
	for i := range 3 {
		ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		for round := range 2 {
			enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("secret " + *ck.KeyMetadata.KeyId), EncryptionContext: encCtx})
			if err != nil {
				t.Fatal(err)
			}
			f.ciphertexts = append(f.ciphertexts, enc.CiphertextBlob)
			if i == 0 && round == 0 {
				if _, err := c.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: ck.KeyMetadata.KeyId}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	ext, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	f.importKey = *ext.KeyMetadata.KeyId
	if _, err := c.GetParametersForImport(ctx, &awskms.GetParametersForImportInput{KeyId: ext.KeyMetadata.KeyId,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return f
}

// verifyFixture restarts kmsd serve and decrypts every ciphertext with the
// access key of the first start.
func verifyFixture(t *testing.T, f rootFixture, args []string, getenv func(string) string) {
	t.Helper()
	banner, stop := serveUntil(t, args, getenv)
	defer stop()
	c := rootClient(banner, f.akid, f.secret)
	ctx := context.Background()
	for i, ct := range f.ciphertexts {
		dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct, EncryptionContext: encCtx})
		if err != nil {
			t.Fatalf("decrypt %d after the root change: %v", i, err)
		}
		if !strings.HasPrefix(string(dec.Plaintext), "secret ") {
			t.Fatalf("decrypt %d: %q", i, dec.Plaintext)
		}
	}
	// New material is wrapped under the current root and usable.
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// openTestStore opens the store of the data folder data until the test
// ends.
func openTestStore(t *testing.T, data string) store.Store {
	t.Helper()
	st, err := backend.Open(context.Background(), backend.Config{DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// rootCounts returns how many wrapped secrets each root holds in data.
func rootCounts(t *testing.T, data string) map[string]int {
	t.Helper()
	counts, err := rootmgr.New(rootmgr.Config{DataDir: data}).Count(context.Background(), openTestStore(t, data))
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func mustManifest(t *testing.T, data string) rootmgr.Manifest {
	t.Helper()
	m, _, err := rootmgr.NewStoreManifest(openTestStore(t, data)).Load(context.Background())
	if err != nil {
		t.Fatalf("roots manifest: %v", err)
	}
	return m
}

func runRoot(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"root"}, args...), &out, &errOut, getenv); err != nil {
		t.Fatalf("kmsd root %v: %v\n%s%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

func noEnv(string) string { return "" }

// checkAllUnder checks that every wrapped secret is under root id and
// that the manifest says the rewrap finished.
func checkAllUnder(t *testing.T, data, id string) {
	t.Helper()
	counts := rootCounts(t, data)
	// 3 keys with 4 materials, 1 import parameters, the admin access key,
	// the audit signing key (and whatever verifyFixture added).
	if len(counts) != 1 || counts[id] < 7 {
		t.Fatalf("wrapped secrets by root: %v, want all under %s", counts, id)
	}
	if m := mustManifest(t, data); m.Rewrapping || m.Current.ID != id {
		t.Fatalf("manifest after the rewrap: %+v", m)
	}
}

func TestRootRotate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0"}
	f := populate(t, args, noEnv)
	before := rootCounts(t, data)
	if len(before) != 1 {
		t.Fatalf("before the rotation: %v", before)
	}

	out := runRoot(t, noEnv, "rotate", "--data-dir", data, "--batch", "2")
	m := mustManifest(t, data)
	if m.Current.Kind != "file" || len(m.Kept) != 1 || m.Kept[0].File != rootmgr.RootKeyFile {
		t.Fatalf("manifest: %+v", m)
	}
	if _, ok := before[m.Kept[0].ID]; !ok {
		t.Fatalf("kept root %s is not the old root (%v)", m.Kept[0].ID, before)
	}
	if !strings.Contains(out, "nothing depends on it") {
		t.Errorf("rotate output:\n%s", out)
	}
	checkAllUnder(t, data, m.Current.ID)
	if out := runRoot(t, noEnv, "rotate", "--resume", "--data-dir", data); !strings.Contains(out, "Nothing to resume") {
		t.Errorf("rotate --resume with nothing pending:\n%s", out)
	}
	if m2 := mustManifest(t, data); m2.Current != m.Current {
		t.Fatalf("rotate --resume made a new root: %+v", m2)
	}
	verifyFixture(t, f, args, noEnv)

	// The old root is kept until retired; then serve no longer loads it.
	status := runRoot(t, noEnv, "status", "--data-dir", data)
	if !strings.Contains(status, "kmsd root retire "+m.Kept[0].ID) || !strings.Contains(status, "rewrap: finished") {
		t.Errorf("status:\n%s", status)
	}
	if err := run(context.Background(), []string{"root", "retire", m.Current.ID, "--data-dir", data}, &bytes.Buffer{}, &bytes.Buffer{}, noEnv); err == nil {
		t.Error("retired the current root")
	}
	runRoot(t, noEnv, "retire", m.Kept[0].ID, "--data-dir", data)
	if m2 := mustManifest(t, data); len(m2.Kept) != 0 {
		t.Fatalf("manifest after retire: %+v", m2)
	}
	verifyFixture(t, f, args, noEnv)
}

// TestRootRotateResumes interrupts a rewrap (--max) and resumes it; kmsd
// serves everything in between, with secrets under both roots.
func TestRootRotateResumes(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0"}
	f := populate(t, args, noEnv)
	old := mustSingleRoot(t, data)

	runRoot(t, noEnv, "rotate", "--data-dir", data, "--max", "3", "--batch", "2")
	m := mustManifest(t, data)
	counts := rootCounts(t, data)
	if !m.Rewrapping || counts[m.Current.ID] != 3 || counts[old] == 0 {
		t.Fatalf("after an interrupted rewrap: manifest %+v, counts %v", m, counts)
	}
	if status := runRoot(t, noEnv, "status", "--data-dir", data); !strings.Contains(status, "still depend on it") || !strings.Contains(status, "not finished") {
		t.Errorf("status mid-rewrap:\n%s", status)
	}
	if err := run(context.Background(), []string{"root", "retire", old, "--data-dir", data}, &bytes.Buffer{}, &bytes.Buffer{}, noEnv); err == nil {
		t.Error("retired a root that secrets still depend on")
	}
	// Mixed: serve unwraps under both roots.
	verifyFixture(t, f, args, noEnv)

	out := runRoot(t, noEnv, "rotate", "--data-dir", data)
	if !strings.Contains(out, "Resuming") {
		t.Errorf("second run did not resume:\n%s", out)
	}
	if m2 := mustManifest(t, data); m2.Current.ID != m.Current.ID || len(m2.Kept) != 1 {
		t.Fatalf("resume made another root: %+v", m2)
	}
	checkAllUnder(t, data, m.Current.ID)
	verifyFixture(t, f, args, noEnv)
}

// serveUntil runs "kmsd serve" with args until the returned stop is called
// (it may be called more than once) and returns the banner.
func serveUntil(t *testing.T, args []string, getenv func(string) string) (banner string, stop func() error) {
	t.Helper()
	banner, _, stop = startServe(t, args, getenv)
	return banner, stop
}

func mustSingleRoot(t *testing.T, data string) string {
	t.Helper()
	counts := rootCounts(t, data)
	if len(counts) != 1 {
		t.Fatalf("roots: %v", counts)
	}
	for id := range counts {
		return id
	}
	return ""
}

func runRootErr(getenv func(string) string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"root"}, args...), &out, &out, getenv)
	return out.String(), err
}

// TestRootRotateWhileServing rotates the root under a running kmsd with an
// Encrypt/Decrypt/CreateKey load: nothing fails, the running kmsd unwraps
// what the rotation rewrapped (it reloads the manifest when it meets the
// new root) and then wraps under the new root, and a second run rewraps
// whatever it wrapped under the old root meanwhile.
func TestRootRotateWhileServing(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0"}
	f := populate(t, args, noEnv)
	old := mustSingleRoot(t, data)

	banner, stop := serveUntil(t, args, noEnv)
	defer stop()
	c := rootClient(banner, f.akid, f.secret)
	ctx := context.Background()

	type pair struct {
		ct    []byte
		plain string
	}
	var (
		mu    sync.Mutex
		made  []pair
		fails []error
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				fail := func(err error) {
					mu.Lock()
					fails = append(fails, err)
					mu.Unlock()
				}
				if i%5 != 0 {
					// Decrypt a fixture ciphertext of the first two keys
					// (their material is what the rotation moves; the
					// third key is left for after it).
					ct := f.ciphertexts[(w+i)%4]
					if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: ct, EncryptionContext: encCtx}); err != nil {
						fail(err)
					}
					continue
				}
				ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
				if err != nil {
					fail(err)
					continue
				}
				keyID := ck.KeyMetadata.KeyId
				plain := "load " + *keyID
				enc, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: keyID, Plaintext: []byte(plain), EncryptionContext: encCtx})
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				made = append(made, pair{enc.CiphertextBlob, plain})
				mu.Unlock()
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	runRoot(t, noEnv, "rotate", "--data-dir", data, "--batch", "3")
	time.Sleep(200 * time.Millisecond)
	close(quit)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d requests failed during the rotation, first: %v", len(fails), fails[0])
	}
	m := mustManifest(t, data)
	if m.Current.ID == old {
		t.Fatal("no new root")
	}
	// The running kmsd unwraps material it never saw before, now under
	// the new root: it reloads the manifest and wraps under the new root.
	if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: f.ciphertexts[4], EncryptionContext: encCtx}); err != nil {
		t.Fatalf("decrypt with material rewrapped under the new root: %v", err)
	}
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	mats, err := openTestStore(t, data).ListMaterials(ctx, *ck.KeyMetadata.KeyId)
	if err != nil || len(mats) != 1 {
		t.Fatalf("materials of the new key: %v, %v", mats, err)
	}
	if id, _ := keystore.WrappedRootID(mats[0].Wrapped); id != m.Current.ID {
		t.Errorf("the running kmsd wrapped a new key under root %s, want the new root %s", id, m.Current.ID)
	}
	// Whatever it wrapped under the old root before it reloaded, a second
	// run rewraps.
	runRoot(t, noEnv, "rotate", "--resume", "--data-dir", data)
	checkAllUnder(t, data, m.Current.ID)
	for i, p := range made {
		dec, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: p.ct, EncryptionContext: encCtx})
		if err != nil || string(dec.Plaintext) != p.plain {
			t.Fatalf("load ciphertext %d: %q, %v", i, dec.Plaintext, err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(made) == 0 {
		t.Fatal("the load made no ciphertexts")
	}
	verifyFixture(t, f, args, noEnv)
}

// TestRootServeFollowsManifest: a running kmsd that meets no secret under
// the new root still notices the rotation (it watches the roots manifest in the store) and
// wraps new keys under the new root within a few seconds.
func TestRootServeFollowsManifest(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0"}
	f := populate(t, args, noEnv)
	banner, stop := serveUntil(t, args, noEnv)
	defer stop()
	c := rootClient(banner, f.akid, f.secret)
	ctx := context.Background()
	// Caches the access key's secret, unwrapped under the old root.
	if _, err := c.ListKeys(ctx, &awskms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
	runRoot(t, noEnv, "rotate", "--data-dir", data)
	current := mustManifest(t, data).Current.ID

	st := openTestStore(t, data)
	newKeyRoot := func() string {
		ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		mats, err := st.ListMaterials(ctx, *ck.KeyMetadata.KeyId)
		if err != nil || len(mats) != 1 {
			t.Fatalf("materials: %v, %v", mats, err)
		}
		id, _ := keystore.WrappedRootID(mats[0].Wrapped)
		return id
	}
	deadline := time.Now().Add(10 * time.Second)
	for newKeyRoot() != current {
		if time.Now().After(deadline) {
			t.Fatal("the running kmsd still wraps under the old root 10s after the rotation")
		}
		time.Sleep(200 * time.Millisecond)
	}
	runRoot(t, noEnv, "rotate", "--resume", "--data-dir", data)
	checkAllUnder(t, data, current)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	verifyFixture(t, f, args, noEnv)
}
