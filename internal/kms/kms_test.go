package kms

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// testScope is where the tests' requests act.
var testScope = ScopeOf("us-east-1", "111122223333")

var admin = Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/admin"}

// open builds a Service on the data folder dir, as kmsd serve does.
func open(t *testing.T, dir string) *Service {
	t.Helper()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(context.Background(), backendtest.Config(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, Keystore: ks})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestNoKeyMaterialAtRest scans every file of the data folder for the
// plaintext of a backing key and of a data key, and finds neither.
func TestNoKeyMaterialAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{Description: "scan me"})
	if err != nil {
		t.Fatal(err)
	}
	dk, err := s.GenerateDataKey(ctx, admin, &GenerateDataKeyInput{KeyId: ck.KeyMetadata.KeyId, KeySpec: "AES_256"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.key(ctx, ck.KeyMetadata.KeyId)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.material(ctx, k, k.CurrentMaterial)
	if err != nil {
		t.Fatal(err)
	}
	backing := bytes.Clone(m.key)
	m.release()
	secrets := map[string][]byte{"backing key": backing, "data key": dk.Plaintext}
	// Scanning while the database is open covers the WAL; then close it so
	// that the checkpointed main file is scanned too.
	scan := func() {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for name, secret := range secrets {
				if bytes.Contains(b, secret) {
					t.Errorf("%s found in plaintext in %s", name, path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scan()
	s.store.Close()
	scan()
}

func TestCiphertextSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s1 := open(t, dir)
	ck, err := s1.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"app": "restart"}
	enc, err := s1.Encrypt(ctx, admin, &EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte("before"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	s1.store.Close()

	s2 := open(t, dir)
	dec, err := s2.Decrypt(ctx, admin, &DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	if err != nil || string(dec.Plaintext) != "before" {
		t.Fatalf("Decrypt after restart: %v", err)
	}
}

// TestMaterialCacheEviction checks that eviction zeroes material only once
// nobody uses it.
func TestMaterialCacheEviction(t *testing.T) {
	c := newMaterialCache(2)
	m := c.put("k", "m1", []byte{1, 2, 3})
	c.evictKey("k")
	if m.key[0] != 1 {
		t.Fatal("material zeroed while in use")
	}
	if c.acquire("k", "m1") != nil {
		t.Fatal("evicted material still served")
	}
	m.release()
	if !bytes.Equal(m.key, []byte{0, 0, 0}) {
		t.Fatalf("material not zeroed after last release: %v", m.key)
	}

	// Filling the cache beyond its bound evicts.
	for i := range 5 {
		c.put("k", string(rune('a'+i)), []byte{9}).release()
	}
	if n := c.len(); n > 2 {
		t.Fatalf("cache holds %d materials, bound is 2", n)
	}

	// Concurrent users and evictions never see zeroed material.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if m := c.acquire("k", "hot"); m != nil {
					if m.key[0] != 7 {
						t.Error("acquired zeroed material")
					}
					m.release()
				} else {
					c.put("k", "hot", []byte{7}).release()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 500 {
			c.evictKey("k")
		}
	}()
	wg.Wait()
}

func TestReaperDestroysMaterial(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := open(t, t.TempDir())
	s.now = func() time.Time { return now }
	ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	if _, err := s.Encrypt(ctx, admin, &EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	k, _ := s.key(ctx, id)
	if _, err := s.ScheduleKeyDeletion(ctx, admin, &ScheduleKeyDeletionInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30*24*time.Hour + time.Second)
	if n, err := s.ReapDeletedKeys(ctx); n != 1 || err != nil {
		t.Fatalf("reaped %d (%v)", n, err)
	}
	if _, err := s.store.GetMaterial(ctx, id, k.CurrentMaterial); err == nil {
		t.Fatal("material still stored after deletion")
	}
	if s.materials.acquire(id, k.CurrentMaterial) != nil {
		t.Fatal("material still cached after deletion")
	}
	_, err = s.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id})
	if awserr.CodeOf(err) != awserr.NotFound {
		t.Fatalf("DescribeKey after deletion: %v", err)
	}
}
