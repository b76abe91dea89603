package envelope

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingKeyring counts the calls that reach the keyring behind a cache.
type countingKeyring struct {
	Keyring
	enc, dec atomic.Int32
}

func (k *countingKeyring) OnEncrypt(ctx context.Context, m *EncryptionMaterials) error {
	k.enc.Add(1)
	return k.Keyring.OnEncrypt(ctx, m)
}

func (k *countingKeyring) OnDecrypt(ctx context.Context, m *DecryptionMaterials, edks []EncryptedDataKey) error {
	k.dec.Add(1)
	return k.Keyring.OnDecrypt(ctx, m, edks)
}

// fakeClock drives a Cache's notion of time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newCaching(t *testing.T, under CMM, opts CachingOptions) (CMM, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	if opts.Cache == nil {
		opts.Cache = NewCache(10)
	}
	opts.Cache.now = clock.now
	cmm, err := NewCachingCMM(under, opts)
	if err != nil {
		t.Fatal(err)
	}
	return cmm, clock
}

func TestCachingCMMEncryptLimits(t *testing.T) {
	kr := &countingKeyring{Keyring: testKeyring(t)}
	cmm, clock := newCaching(t, NewDefaultCMM(kr), CachingOptions{MaxAge: time.Minute, MaxMessages: 3, MaxBytes: 100})
	enc := func(n int, ec map[string]string, bound int64) []byte {
		t.Helper()
		var ct bytes.Buffer
		if _, err := Encrypt(context.Background(), &ct, bytes.NewReader(pattern(n)), EncryptOptions{CMM: cmm, EncryptionContext: ec, MaxPlaintextLength: bound}); err != nil {
			t.Fatal(err)
		}
		return ct.Bytes()
	}
	want := func(step string, n int32) {
		t.Helper()
		if got := kr.enc.Load(); got != n {
			t.Fatalf("%s: %d data keys, want %d", step, got, n)
		}
	}
	ec := map[string]string{"a": "b"}
	var msgs [][]byte
	for range 3 {
		msgs = append(msgs, enc(10, ec, 10))
	}
	want("three messages", 1)
	msgs = append(msgs, enc(10, ec, 10))
	want("fourth message", 2)
	enc(10, map[string]string{"a": "other"}, 10)
	want("other context", 3)
	enc(10, ec, 0)
	want("unknown length bypasses the cache", 4)
	enc(60, ec, 60)
	want("within the byte limit", 4)
	enc(60, ec, 60)
	want("over the byte limit", 5)
	enc(200, ec, 200)
	enc(200, ec, 200)
	want("messages above the byte limit are never cached", 7)
	enc(1, ec, 1)
	enc(1, ec, 1)
	want("a fresh entry", 8)
	clock.add(59 * time.Second)
	enc(1, ec, 1)
	want("not yet expired", 8)
	clock.add(time.Second)
	enc(1, ec, 1)
	want("expired", 9)
	// Messages sharing a data key still decrypt, and have distinct IDs.
	for _, m := range msgs {
		if got, _, err := decrypt(m, DecryptOptions{Keyring: kr}); err != nil || !bytes.Equal(got, pattern(10)) {
			t.Fatal(err)
		}
	}
	if bytes.Equal(msgs[0][3:35], msgs[1][3:35]) {
		t.Fatal("two messages share a message ID")
	}
}

func TestCachingCMMDecrypt(t *testing.T) {
	kr := &countingKeyring{Keyring: testKeyring(t)}
	required, err := NewRequiredContextCMM(NewDefaultCMM(kr), "tenant")
	if err != nil {
		t.Fatal(err)
	}
	ct := encrypt(t, []byte("hello"), EncryptOptions{CMM: required, EncryptionContext: map[string]string{"tenant": "acme", "x": "y"}})
	cmm, clock := newCaching(t, NewDefaultCMM(kr), CachingOptions{MaxAge: time.Minute})
	dec := func(ec map[string]string) error {
		_, _, err := decrypt(ct, DecryptOptions{CMM: cmm, EncryptionContext: ec})
		return err
	}
	for range 3 {
		if err := dec(map[string]string{"tenant": "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := kr.dec.Load(); n != 1 {
		t.Fatalf("%d keyring decryptions, want 1", n)
	}
	// A cache hit must not skip the checks of the caller's context.
	if err := dec(map[string]string{"tenant": "evil"}); err == nil {
		t.Fatal("wrong unstored context accepted from the cache")
	}
	if err := dec(map[string]string{"tenant": "acme", "x": "z"}); !errors.Is(err, ErrContextMismatch) {
		t.Fatalf("wrong stored context: %v", err)
	}
	if err := dec(nil); err == nil {
		t.Fatal("missing unstored context accepted")
	}
	clock.add(time.Hour)
	before := kr.dec.Load()
	if err := dec(map[string]string{"tenant": "acme"}); err != nil || kr.dec.Load() != before+1 {
		t.Fatalf("expired entry: %v", err)
	}
}

func TestCacheSharingAndEviction(t *testing.T) {
	kr := &countingKeyring{Keyring: testKeyring(t)}
	cache := NewCache(1)
	a, _ := newCaching(t, NewDefaultCMM(kr), CachingOptions{Cache: cache, MaxAge: time.Minute})
	b, _ := newCaching(t, NewDefaultCMM(kr), CachingOptions{Cache: cache, MaxAge: time.Minute})
	ctx := context.Background()
	req := &EncryptionMaterialsRequest{Suite: SuiteCommitKey, MaxPlaintextLength: 1}
	m1, err := a.GetEncryptionMaterials(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetEncryptionMaterials(ctx, req); err != nil {
		t.Fatal(err)
	}
	if kr.enc.Load() != 2 {
		t.Fatal("caching CMMs with their own partitions shared an entry")
	}
	// Capacity 1: a's entry was evicted (and its key wiped), but the
	// materials a handed out are a copy and stay intact.
	if bytes.Equal(m1.DataKey, make([]byte, dataKeyLen)) {
		t.Fatal("handed-out data key was wiped")
	}
	shared1, _ := newCaching(t, NewDefaultCMM(kr), CachingOptions{Cache: cache, PartitionID: "p", MaxAge: time.Minute})
	shared2, _ := newCaching(t, NewDefaultCMM(kr), CachingOptions{Cache: cache, PartitionID: "p", MaxAge: time.Minute})
	x, _ := shared1.GetEncryptionMaterials(ctx, req)
	y, _ := shared2.GetEncryptionMaterials(ctx, req)
	if kr.enc.Load() != 3 || !bytes.Equal(x.DataKey, y.DataKey) {
		t.Fatal("caching CMMs with one partition ID did not share")
	}
	if _, err := NewCachingCMM(NewDefaultCMM(kr), CachingOptions{}); err == nil {
		t.Fatal("caching CMM without MaxAge accepted")
	}
	if _, err := Encrypt(ctx, io.Discard, bytes.NewReader(nil), EncryptOptions{CMM: shared1, MaxPlaintextLength: 1}); err != nil {
		t.Fatal(err)
	}
}
