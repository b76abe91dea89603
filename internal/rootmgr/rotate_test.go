package rootmgr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var admin = kms.Caller{Scope: kms.ScopeOf("us-east-1", "111122223333"), ARN: "arn:aws:iam::111122223333:user/admin"}

// folder is a data folder with wrapped secrets of every common kind: key
// material (a ciphertext under each key), access key secrets and the audit
// signing key.
type folder struct {
	dir         string
	st          store.Store
	keyIDs      []string
	ciphertexts [][]byte
	accessKeys  map[string]string // id → secret
}

func populate(t *testing.T, dir string, seal *keystore.SealKey) *folder {
	t.Helper()
	ctx := context.Background()
	st, err := backend.Open(ctx, backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &folder{dir: dir, st: st, accessKeys: map[string]string{}}
	// The first start of the folder creates its root.
	ks, err := New(Config{DataDir: dir, CreateRoot: true}).OpenLiveRing(ctx, seal, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	svc, err := kms.New(kms.Config{Store: st, Keystore: ks})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ck, err := svc.CreateKey(ctx, admin, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := svc.Encrypt(ctx, admin, &kms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("secret " + ck.KeyMetadata.KeyId)})
		if err != nil {
			t.Fatal(err)
		}
		f.keyIDs = append(f.keyIDs, ck.KeyMetadata.KeyId)
		f.ciphertexts = append(f.ciphertexts, enc.CiphertextBlob)
	}
	dir2 := iam.NewDirectory(st, ks, nil)
	for range 2 {
		id, secret, err := dir2.CreateAccessKey(ctx, admin.Account, admin.ARN)
		if err != nil {
			t.Fatal(err)
		}
		f.accessKeys[id] = secret
	}
	if _, err := audit.LoadOrCreateSigningKey(ctx, filepath.Join(dir, audit.SigningKeyFile), ks); err != nil {
		t.Fatal(err)
	}
	return f
}

// secrets is how many secrets populate wraps: 3 key materials, 2 access
// keys, the signing key.
const secrets = 6

// check unwraps every secret of f through a fresh LiveRing (no cache).
func (f *folder) check(t *testing.T, seal *keystore.SealKey) {
	t.Helper()
	ctx := context.Background()
	ks, err := New(Config{DataDir: f.dir}).OpenLiveRing(ctx, seal, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	svc, err := kms.New(kms.Config{Store: f.st, Keystore: ks})
	if err != nil {
		t.Fatal(err)
	}
	for i, ct := range f.ciphertexts {
		dec, err := svc.Decrypt(ctx, admin, &kms.DecryptInput{CiphertextBlob: ct})
		if err != nil || string(dec.Plaintext) != "secret "+f.keyIDs[i] {
			t.Fatalf("decrypt %d: %v", i, err)
		}
	}
	d := iam.NewDirectory(f.st, ks, nil)
	ids, err := iam.Compile(config.IAM{}, admin.Account)
	if err != nil {
		t.Fatal(err)
	}
	d.SetIdentities(ids)
	for id, secret := range f.accessKeys {
		if got, err := d.Secret(ctx, id); err != nil || string(got) != secret {
			t.Fatalf("access key %s: %v", id, err)
		}
	}
	if _, err := audit.LoadOrCreateSigningKey(ctx, filepath.Join(f.dir, audit.SigningKeyFile), ks); err != nil {
		t.Fatal(err)
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := populate(t, dir, nil)
	g := New(Config{DataDir: dir})
	counts, err := g.Count(ctx, f.st)
	if err != nil || len(counts) != 1 {
		t.Fatalf("Count before: %v, %v", counts, err)
	}
	var old string
	for id, n := range counts {
		old = id
		if n != secrets {
			t.Fatalf("%d secrets under %s, want %d", n, id, secrets)
		}
	}

	// Nothing to resume; migrating to the kind in use is refused.
	rot, err := g.StartRotation(ctx, f.st, RotateOptions{Resume: true})
	if err != nil || !rot.Idle {
		t.Fatalf("resume with nothing pending: %+v, %v", rot, err)
	}
	rot.Close()
	if _, err := g.StartRotation(ctx, f.st, RotateOptions{To: KindFile}); err == nil || !strings.Contains(err.Error(), "already a file root") {
		t.Fatalf("migrating to the kind in use: %v", err)
	}

	// A rotation stopped after 4 rewraps.
	rot, err = g.StartRotation(ctx, f.st, RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rot.Idle || rot.Resumed || rot.Previous.ID != old || rot.Previous.File != RootKeyFile || rot.Current.ID == old || rot.Current.Kind != KindFile {
		t.Fatalf("new rotation: %+v", rot)
	}
	current := rot.Current.ID
	m, _, err := NewFileManifest(dir).Load(ctx)
	if err != nil || m.Current.ID != current || !m.Rewrapping || len(m.Kept) != 1 || m.Kept[0].ID != old {
		t.Fatalf("manifest once the new root is made: %+v, %v", m, err)
	}
	n, finished, err := rot.Rewrap(ctx, 2, 4)
	if err != nil || n != 4 || finished {
		t.Fatalf("Rewrap with max 4: %d, %v, %v", n, finished, err)
	}
	st, err := rot.Status(ctx)
	if err != nil || st.Finished || st.Current.Secrets != 4 || len(st.Kept) != 1 || st.Kept[0].Secrets != secrets-4 || len(st.Unknown) != 0 {
		t.Fatalf("status mid-rewrap: %+v, %v", st, err)
	}
	rot.Close()
	// Secrets under both roots unwrap.
	f.check(t, nil)
	if _, err := g.Retire(ctx, f.st, old, nil); err == nil || !strings.Contains(err.Error(), "still wrapped") {
		t.Fatalf("retiring a root secrets depend on: %v", err)
	}

	// The next run resumes under the same root.
	rot, err = g.StartRotation(ctx, f.st, RotateOptions{})
	if err != nil || !rot.Resumed || rot.Current.ID != current {
		t.Fatalf("second run: %+v, %v", rot, err)
	}
	n, finished, err = rot.Rewrap(ctx, 0, 0)
	rot.Close()
	if err != nil || n != secrets-4 || !finished {
		t.Fatalf("resumed Rewrap: %d, %v, %v", n, finished, err)
	}
	st, err = g.Status(ctx, f.st, nil)
	if err != nil || !st.Finished || st.Current.Secrets != secrets || st.Kept[0].Secrets != 0 {
		t.Fatalf("status after the rewrap: %+v, %v", st, err)
	}
	if m, _, _ := NewFileManifest(dir).Load(ctx); m.Rewrapping {
		t.Fatal("the manifest still says rewrapping")
	}
	f.check(t, nil)

	if _, err := g.Retire(ctx, f.st, current, nil); err == nil || !strings.Contains(err.Error(), "current root") {
		t.Fatalf("retiring the current root: %v", err)
	}
	r, err := g.Retire(ctx, f.st, old, nil)
	if err != nil || r.ID != old || r.File != RootKeyFile {
		t.Fatalf("Retire: %+v, %v", r, err)
	}
	if _, err := g.Retire(ctx, f.st, old, nil); err == nil || !strings.Contains(err.Error(), "not a kept root") {
		t.Fatalf("retiring twice: %v", err)
	}
	f.check(t, nil)

	// A root the manifest no longer names is reported, not hidden.
	m, rev, _ := NewFileManifest(dir).Load(ctx)
	other := newFileRoot(t, dir, "other.key")
	m.Current = Ref{Kind: KindFile, File: "other.key", ID: other.ID()}
	if _, err := NewFileManifest(dir).Save(ctx, m, rev); err != nil {
		t.Fatal(err)
	}
	st, err = g.Status(ctx, f.st, nil)
	if err != nil || st.Finished || len(st.Unknown) != 1 || st.Unknown[0].Root.ID != current || st.Unknown[0].Secrets != secrets {
		t.Fatalf("status with secrets under an unlisted root: %+v, %v", st, err)
	}
}

// TestRotationSealed: on a sealed folder the rotation needs the seal key,
// asks for it once, and seals the new root under it.
func TestRotationSealed(t *testing.T) {
	ctx := context.Background()
	dir, key, root := sealedFolder(t)
	info := key.Info()
	unsealKey := func() *keystore.SealKey {
		k, err := info.PassphraseKey(testPassphrase)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	f := populate(t, dir, unsealKey())
	g := New(Config{DataDir: dir})

	// Status needs no seal key: the current root's id is in the header.
	st, err := g.Status(ctx, f.st, nil)
	if err != nil || st.Current.Root.ID != root.ID() || st.Current.Secrets != secrets {
		t.Fatalf("status of a sealed folder: %+v, %v", st, err)
	}
	if _, err := g.StartRotation(ctx, f.st, RotateOptions{}); !errors.Is(err, ErrSealed) {
		t.Fatalf("rotation without the seal key: %v, want ErrSealed", err)
	}
	asked := 0
	rot, err := g.StartRotation(ctx, f.st, RotateOptions{Unseal: func(i keystore.SealInfo) (*keystore.SealKey, error) {
		asked++
		if i.Kind != keystore.SealPassphrase {
			t.Errorf("asked for a %s seal", i.Kind)
		}
		return unsealKey(), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if asked != 1 || !keystore.IsSealedPath(rot.Current.File) || rot.Previous.File != SealedRootFile {
		t.Fatalf("sealed rotation: asked %d times, %+v", asked, rot)
	}
	if _, finished, err := rot.Rewrap(ctx, 0, 0); err != nil || !finished {
		t.Fatalf("Rewrap: %v, %v", finished, err)
	}
	rot.Close()
	if _, err := New(Config{DataDir: dir}).OpenLiveRing(ctx, nil, quiet); !errors.Is(err, ErrSealed) {
		t.Fatalf("the new root opens without the seal key: %v", err)
	}
	f.check(t, unsealKey())

	// A failing unseal fails the rotation with its error.
	refused := errors.New("no terminal")
	if _, err := g.StartRotation(ctx, f.st, RotateOptions{Unseal: func(keystore.SealInfo) (*keystore.SealKey, error) { return nil, refused }}); !errors.Is(err, refused) {
		t.Fatalf("rotation with a failing unseal: %v", err)
	}
}

// conflictOnce is a store whose first UpdateWrapped reports that the blob
// changed meanwhile (another node rewrapped or replaced it), as the store
// contract words it: ErrConflict alone.
type conflictOnce struct {
	store.Store
	done bool
}

func (c *conflictOnce) UpdateWrapped(ctx context.Context, ref store.WrappedRef, old, new []byte) error {
	if !c.done {
		c.done = true
		return fmt.Errorf("test: %w: the blob changed meanwhile", store.ErrConflict)
	}
	return c.Store.UpdateWrapped(ctx, ref, old, new)
}

// TestRewrapSkipsChangedSecret: a secret whose blob changed between the
// rewrap's list and its write is left for the next run, not an error that
// stops the rotation.
func TestRewrapSkipsChangedSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := populate(t, dir, nil)
	g := New(Config{DataDir: dir})
	st := &conflictOnce{Store: f.st}
	rot, err := g.StartRotation(ctx, st, RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, finished, err := rot.Rewrap(ctx, 0, 0)
	rot.Close()
	if err != nil || n != secrets-1 || finished {
		t.Fatalf("Rewrap with one conflict: %d, %v, %v; want %d rewrapped, not finished", n, finished, err, secrets-1)
	}
	rot, err = g.StartRotation(ctx, st, RotateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, finished, err = rot.Rewrap(ctx, 0, 0)
	rot.Close()
	if err != nil || n != 1 || !finished {
		t.Fatalf("the next run: %d, %v, %v; want the one left", n, finished, err)
	}
	f.check(t, nil)
}
