package kms

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// node is one kmsd node of a test cluster: a Service on its own handle of a
// store shared with the other nodes, following the change feed.
type node struct {
	*Service
	st *hookStore
	// startFollow starts the node's Follow and waits for its first read
	// of the feed.
	startFollow func()
}

// hookStore is a store.Store whose feed can be cut and whose reads can be
// counted or intercepted, to put a test between two steps of the service.
type hookStore struct {
	store.Store
	feedDown atomic.Bool
	getKeys  atomic.Int64
	// afterPendingDeletion, when set, runs after KeysPendingDeletion
	// listed the due keys and before the caller sees them.
	afterPendingDeletion func()
	// usageDown makes RecordKeyUsage fail.
	usageDown atomic.Bool
	// pruneOnce makes the next Changes answer ErrChangesPruned.
	pruneOnce atomic.Bool
	// hideCKSChanges makes Changes leave out the changes of custom key
	// stores, as if the feed had missed them.
	hideCKSChanges atomic.Bool
	// cksDown makes GetCustomKeyStore fail.
	cksDown atomic.Bool
	// afterExpiredMaterial, when set, runs after KeysWithExpiredMaterial
	// listed the keys and before the caller sees them.
	afterExpiredMaterial func()
}

func (h *hookStore) GetCustomKeyStore(ctx context.Context, id string) (*store.CustomKeyStore, error) {
	if h.cksDown.Load() {
		return nil, errors.New("test: store unreachable")
	}
	return h.Store.GetCustomKeyStore(ctx, id)
}

func (h *hookStore) RecordKeyUsage(ctx context.Context, uses []*store.KeyUse) error {
	if h.usageDown.Load() {
		return errors.New("test: store unreachable")
	}
	return h.Store.RecordKeyUsage(ctx, uses)
}

func (h *hookStore) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if h.feedDown.Load() {
		return nil, errors.New("test: feed unreachable")
	}
	if h.pruneOnce.CompareAndSwap(true, false) {
		return nil, store.ErrChangesPruned
	}
	cs, err := h.Store.Changes(ctx, after, limit)
	if err != nil || !h.hideCKSChanges.Load() {
		return cs, err
	}
	kept := cs[:0]
	for _, c := range cs {
		if c.Kind != store.ChangeCustomKeyStore {
			kept = append(kept, c)
		}
	}
	// Read as many as asked for, so that Follow reads on as the store's
	// answer would have it.
	if len(cs) == limit && len(kept) < limit {
		return append(kept, store.Change{Seq: cs[limit-1].Seq, Kind: store.ChangeSetting}), nil
	}
	return kept, nil
}

// Notify passes the store's change notifications through (PostgreSQL's);
// a store without them never notifies.
func (h *hookStore) Notify(ctx context.Context, wake func()) error {
	if n, ok := h.Store.(store.Notifier); ok {
		return n.Notify(ctx, wake)
	}
	<-ctx.Done()
	return nil
}

func (h *hookStore) GetKey(ctx context.Context, id string) (*store.Key, error) {
	h.getKeys.Add(1)
	return h.Store.GetKey(ctx, id)
}

func (h *hookStore) KeysPendingDeletion(ctx context.Context, t time.Time) ([]*store.Key, error) {
	ks, err := h.Store.KeysPendingDeletion(ctx, t)
	if err == nil && h.afterPendingDeletion != nil {
		h.afterPendingDeletion()
	}
	return ks, err
}

func (h *hookStore) KeysWithExpiredMaterial(ctx context.Context, t time.Time) ([]*store.Key, error) {
	ks, err := h.Store.KeysWithExpiredMaterial(ctx, t)
	if err == nil && h.afterExpiredMaterial != nil {
		h.afterExpiredMaterial()
	}
	return ks, err
}

// newNodes starts n nodes on one store in a fresh data folder.
func newNodes(t *testing.T, n int, now func() time.Time) []*node {
	t.Helper()
	return newNodesWith(t, n, Config{Now: now}, true)
}

// newNodesWith starts n nodes on one store in a fresh data folder, each a
// Service of cfg (its Store and Keystore set here); unless follow, they do
// not follow the change feed (startFollow starts it).
func newNodesWith(t *testing.T, n int, cfg Config, follow bool) []*node {
	t.Helper()
	dir := t.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var nodes []*node
	bcfg := backendtest.Config(t, dir)
	for range n {
		st, err := backend.Open(context.Background(), bcfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		hs := &hookStore{Store: st}
		scfg := cfg
		scfg.Store, scfg.Keystore = hs, ks
		s, err := New(scfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.CloseCustomKeyStores)
		nd := &node{Service: s, st: hs}
		nd.startFollow = func() {
			wg.Add(1)
			go func() { defer wg.Done(); s.Follow(ctx, 0) }() // the default interval: the test measures the bound kmsd serve has
			within(t, time.Second, "the node's first reading of the feed", func() bool { return s.view.synced.Load() != 0 })
		}
		nodes = append(nodes, nd)
	}
	if follow {
		for _, n := range nodes {
			n.startFollow()
		}
	}
	return nodes
}

// caughtUp waits until node n has applied every change made so far.
func caughtUp(t *testing.T, n *node) {
	t.Helper()
	last, err := n.st.LastChange(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "catching up with the feed", func() bool { return n.view.seen.Load() >= last })
}

// within polls cond until it holds or the bound passes, and returns how
// long it took.
func within(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not seen within %v", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func codeOf(err error) string { return awserr.CodeOf(err) }

// TestChangesReachEveryNode: a change made on one node is enforced by
// another node, whose caches were warm, within one second: a disabled
// key, a revoked grant, a tightened key policy, a moved alias, a deleted
// key.
func TestChangesReachEveryNode(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	nodes := newNodes(t, 2, func() time.Time { return *clock.Load() })
	a, b := nodes[0], nodes[1]

	bob := Caller{Scope: testScope, ARN: "arn:aws:iam::111122223333:user/bob",
		Identity: mustIdentity(t, IdentityConfig{ARN: "arn:aws:iam::111122223333:user/bob", Type: PrincipalTypeUser, UserName: "bob"})}
	k1, err := a.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	k2, err := a.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := k1.KeyMetadata.KeyId, k2.KeyMetadata.KeyId
	if err := a.CreateAlias(ctx, admin, &AliasInput{AliasName: "alias/app", TargetKeyId: id1}); err != nil {
		t.Fatal(err)
	}
	encrypt := func(n *node, keyID string) (*EncryptOutput, error) {
		return n.Encrypt(ctx, admin, &EncryptInput{KeyId: keyID, Plaintext: []byte("x")})
	}
	bobEncrypt := func(n *node) error {
		_, err := AuthorizeEncrypt.Check(ctx, n.Service, bob, &EncryptInput{KeyId: id1, Plaintext: []byte("x")})
		return err
	}

	// Warm b's caches, once b has read the changes above (which would
	// drop what it cached before).
	caughtUp(t, b)
	if out, err := encrypt(b, "alias/app"); err != nil || out.KeyId != k1.KeyMetadata.Arn {
		t.Fatalf("encrypt via alias on b: %v, %v", out, err)
	}
	if err := bobEncrypt(b); codeOf(err) != awserr.AccessDenied {
		t.Fatalf("bob without a grant: %v, want AccessDenied", err)
	}

	// A grant made on a is used on b; revoked on a, refused on b.
	g, err := a.CreateGrant(ctx, admin, &CreateGrantInput{KeyId: id1, GranteePrincipal: bob.ARN, Operations: []string{"Encrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "grant created on a, used on b", func() bool { return bobEncrypt(b) == nil })
	if err := a.RevokeGrant(ctx, admin, &RevokeGrantInput{KeyId: id1, GrantId: g.GrantId}); err != nil {
		t.Fatal(err)
	}
	d := within(t, time.Second, "grant revoked on a, refused on b", func() bool { return codeOf(bobEncrypt(b)) == awserr.AccessDenied })
	t.Logf("RevokeGrant enforced on the other node after %v", d)

	// A key policy that lets bob encrypt, then one that does not.
	open := strings.Replace(DefaultKeyPolicy(testScope.Partition, "111122223333"), `"Statement" : [`,
		`"Statement" : [{"Sid": "bob", "Effect": "Allow", "Principal": {"AWS": "`+bob.ARN+`"}, "Action": "kms:Encrypt", "Resource": "*"},`, 1)
	if err := a.PutKeyPolicy(ctx, admin, &PutKeyPolicyInput{KeyId: id1, Policy: open}); err != nil {
		t.Fatal(err)
	}
	within(t, time.Second, "policy loosened on a, used on b", func() bool { return bobEncrypt(b) == nil })
	if err := a.PutKeyPolicy(ctx, admin, &PutKeyPolicyInput{KeyId: id1, Policy: DefaultKeyPolicy(testScope.Partition, "111122223333")}); err != nil {
		t.Fatal(err)
	}
	d = within(t, time.Second, "policy tightened on a, enforced on b", func() bool { return codeOf(bobEncrypt(b)) == awserr.AccessDenied })
	t.Logf("PutKeyPolicy enforced on the other node after %v", d)

	// The alias moves on a; b follows it.
	if _, ok := b.view.aliases.load(aliasRef{"111122223333", "us-east-1", "alias/app"}); !ok {
		t.Fatal("the alias is not in b's cache: the test would not show its invalidation")
	}
	if err := a.UpdateAlias(ctx, admin, &AliasInput{AliasName: "alias/app", TargetKeyId: id2}); err != nil {
		t.Fatal(err)
	}
	d = within(t, time.Second, "alias moved on a, followed on b", func() bool {
		out, err := encrypt(b, "alias/app")
		return err == nil && out.KeyId == k2.KeyMetadata.Arn
	})
	t.Logf("UpdateAlias followed on the other node after %v", d)

	// Disabled on a: refused on b.
	if err := a.DisableKey(ctx, admin, &KeyIdInput{KeyId: id1}); err != nil {
		t.Fatal(err)
	}
	d = within(t, time.Second, "key disabled on a, refused on b", func() bool {
		_, err := encrypt(b, id1)
		return codeOf(err) == awserr.Disabled
	})
	t.Logf("DisableKey enforced on the other node after %v", d)

	// Deleted by a's reaper: gone on b.
	if _, err := a.ScheduleKeyDeletion(ctx, admin, &ScheduleKeyDeletionInput{KeyId: id2, PendingWindowInDays: ptr(int32(7))}); err != nil {
		t.Fatal(err)
	}
	later := start.Add(8 * 24 * time.Hour)
	clock.Store(&later)
	if n, err := a.ReapDeletedKeys(ctx); err != nil || n != 1 {
		t.Fatalf("reap: %d, %v", n, err)
	}
	d = within(t, time.Second, "key deleted on a, gone on b", func() bool {
		_, err := b.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id2})
		return codeOf(err) == awserr.NotFound
	})
	t.Logf("key deletion seen on the other node after %v", d)
}

// TestReaperLeavesCancelledDeletion is the regression test of a key
// destroyed although its deletion was cancelled: CancelKeyDeletion
// acknowledged between the reaper's list of due keys and its delete.
func TestReaperLeavesCancelledDeletion(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	n := newNodes(t, 1, func() time.Time { return *clock.Load() })[0]
	ck, err := n.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	if _, err := n.ScheduleKeyDeletion(ctx, admin, &ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: ptr(int32(7))}); err != nil {
		t.Fatal(err)
	}
	later := start.Add(8 * 24 * time.Hour)
	clock.Store(&later)
	n.st.afterPendingDeletion = func() {
		if _, err := n.CancelKeyDeletion(ctx, admin, &KeyIdInput{KeyId: id}); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}
	deleted, err := n.ReapDeletedKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.st.afterPendingDeletion = nil
	if deleted != 0 {
		t.Errorf("reaper deleted %d keys, want 0", deleted)
	}
	out, err := n.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id})
	if err != nil {
		t.Fatalf("key whose deletion was cancelled: %v", err)
	}
	if out.KeyMetadata.KeyState != StateDisabled {
		t.Errorf("state %s, want Disabled", out.KeyMetadata.KeyState)
	}
}

// TestExpiryLeavesReimportedMaterial is the regression test of imported
// material deleted although it was re-imported with a later ValidTo between
// the expiry's list of due keys and its delete: the delete is a
// compare-and-set on the ValidTo it listed.
func TestExpiryLeavesReimportedMaterial(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	n := newNodes(t, 1, func() time.Time { return *clock.Load() })[0]
	ck, err := n.CreateKey(ctx, admin, &CreateKeyInput{Origin: OriginExternal})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		t.Fatal(err)
	}
	imp := func(validTo time.Time) {
		t.Helper()
		p, err := n.GetParametersForImport(ctx, admin, &GetParametersForImportInput{KeyId: id,
			WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048"})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(p.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		wrapped, _ := wrapForImport(t, pub.(*rsa.PublicKey), crypto.SHA256, false, material)
		v := float64(validTo.Unix())
		if _, err := n.ImportKeyMaterial(ctx, admin, &ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
			EncryptedKeyMaterial: wrapped, ValidTo: &v, ExpirationModel: "KEY_MATERIAL_EXPIRES"}); err != nil {
			t.Fatal(err)
		}
	}
	imp(start.Add(time.Hour))
	later := start.Add(2 * time.Hour)
	clock.Store(&later)
	n.st.afterExpiredMaterial = func() {
		n.st.afterExpiredMaterial = nil
		imp(later.Add(time.Hour)) // the same material, valid for another hour
	}
	expired, err := n.ExpireImportedMaterial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if expired != 0 {
		t.Errorf("expired %d keys, want 0", expired)
	}
	out, err := n.DescribeKey(ctx, admin, &KeyIdInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	if out.KeyMetadata.KeyState != StateEnabled {
		t.Errorf("state %s, want Enabled", out.KeyMetadata.KeyState)
	}
	if ms, err := n.st.ListMaterials(ctx, id); err != nil || len(ms) != 1 {
		t.Errorf("key holds %d materials (%v), want the re-imported one", len(ms), err)
	}
	if _, err := n.Encrypt(ctx, admin, &EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
		t.Errorf("encrypt with the re-imported material: %v", err)
	}
}

// TestCutOffNodeStopsTrustingItsCache: while the change feed answers, a
// warm key costs no store read; once it has not answered for the staleness
// bound, every request reads the store again (and would fail with it),
// instead of serving stale authorization.
func TestCutOffNodeStopsTrustingItsCache(t *testing.T) {
	ctx := context.Background()
	n := newNodes(t, 1, nil)[0]
	ck, err := n.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	encrypt := func() {
		t.Helper()
		if _, err := n.Encrypt(ctx, admin, &EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// Once the follower has read the feed, the cache is trusted; the
	// feed's own record of the key's creation, applied after the first
	// encrypt, would drop what it cached (PostgreSQL's notification makes
	// that likely).
	within(t, time.Second, "first read of the feed", func() bool { return n.view.synced.Load() != 0 })
	caughtUp(t, n)
	encrypt()
	before := n.st.getKeys.Load()
	for range 10 {
		encrypt()
	}
	if got := n.st.getKeys.Load() - before; got != 0 {
		t.Fatalf("warm encrypts read the store %d times, want 0", got)
	}

	n.st.feedDown.Store(true)
	time.Sleep(DefaultStaleAfter + 50*time.Millisecond)
	before = n.st.getKeys.Load()
	for range 10 {
		encrypt()
	}
	if got := n.st.getKeys.Load() - before; got != 10 {
		t.Fatalf("with the feed down past the bound, 10 encrypts read the store %d times, want 10", got)
	}

	n.st.feedDown.Store(false)
	within(t, time.Second, "feed back", func() bool {
		before := n.st.getKeys.Load()
		encrypt()
		encrypt()
		return n.st.getKeys.Load()-before <= 1
	})
}

// TestViewIsBounded: the keys the view holds stay within its bound
// however many keys are used.
func TestViewIsBounded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	st := backendtest.Open(t, dir)
	const bound = 50
	s, err := New(Config{Store: st, Keystore: ks, KeyCacheSize: bound})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		ck, err := s.CreateKey(ctx, admin, &CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Encrypt(ctx, admin, &EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
		k, err := s.key(ctx, ck.KeyMetadata.KeyId)
		if err != nil {
			t.Fatal(err)
		}
		s.keyAuthz(k) // what authorization compiles
		if n := s.view.keys.len(); n > bound+1 {
			t.Fatalf("after %d keys the view holds %d, bound %d", i+1, n, bound)
		}
	}
	// Every key has the default policy of one account: one compiled
	// policy serves them all.
	if n := s.view.policies.len(); n != 1 {
		t.Errorf("%d compiled policies, want 1", n)
	}
	// And the cached keys share that policy's text rather than hold a
	// copy each (once it was compiled).
	var texts []*byte
	s.view.keys.m.Range(func(_, v any) bool {
		texts = append(texts, unsafe.StringData(v.(*keyEntry).key.Policy))
		return true
	})
	shared := 0
	for _, p := range texts {
		if p == texts[0] {
			shared++
		}
	}
	if len(texts) < 2 || shared < len(texts)-1 {
		t.Errorf("%d of %d cached keys share one policy string", shared, len(texts))
	}
}

// TestBackgroundWorkOnceAcrossNodes: three nodes on one store run the
// reaper and the rotation scheduler at the same moments (an injected
// clock past every due date); each due key is rotated exactly once and
// each deletion done exactly once, whichever node does it.
func TestBackgroundWorkOnceAcrossNodes(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	nodes := newNodes(t, 3, func() time.Time { return *clock.Load() })

	var rotating, deleting []string
	for i := range 12 {
		ck, err := nodes[i%3].CreateKey(ctx, admin, &CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		id := ck.KeyMetadata.KeyId
		if i%2 == 0 {
			if err := nodes[0].EnableKeyRotation(ctx, admin, &EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: ptr(int32(90))}); err != nil {
				t.Fatal(err)
			}
			rotating = append(rotating, id)
		} else {
			if _, err := nodes[1].ScheduleKeyDeletion(ctx, admin, &ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: ptr(int32(7))}); err != nil {
				t.Fatal(err)
			}
			deleting = append(deleting, id)
		}
	}
	later := start.Add(91 * 24 * time.Hour)
	clock.Store(&later)

	var rotated, deleted atomic.Int64
	var wg sync.WaitGroup
	for _, n := range nodes {
		for range 3 { // each node runs its passes back to back, all nodes at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := n.RotateDueKeys(ctx)
				if err != nil {
					t.Error(err)
				}
				d, err := n.ReapDeletedKeys(ctx)
				if err != nil {
					t.Error(err)
				}
				rotated.Add(int64(r))
				deleted.Add(int64(d))
			}()
		}
	}
	wg.Wait()
	if got := rotated.Load(); got != int64(len(rotating)) {
		t.Errorf("%d rotations across the nodes, want %d (one per due key)", got, len(rotating))
	}
	if got := deleted.Load(); got != int64(len(deleting)) {
		t.Errorf("%d deletions across the nodes, want %d", got, len(deleting))
	}
	st := nodes[0].st
	for _, id := range rotating {
		ms, err := st.ListMaterials(ctx, id)
		if err != nil || len(ms) != 2 {
			t.Errorf("key %s has %d materials (%v), want 2: its first and one rotation", id, len(ms), err)
		}
	}
	for _, id := range deleting {
		if _, err := st.GetKey(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key %s scheduled for deletion: %v, want deleted", id, err)
		}
	}
}

// TestRefusedBackgroundStepIsLogged: a due step a key keeps refusing (an
// AWS error, not a lost race) is logged with the key and the code, once
// per key and step per interval, not retried silently forever.
func TestRefusedBackgroundStepIsLogged(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	var logs strings.Builder
	var mu sync.Mutex
	n := newNodesWith(t, 1, Config{Now: func() time.Time { return *clock.Load() },
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{&mu, &logs}, nil))}, true)[0]
	ck, err := n.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := n.st.GetKey(ctx, ck.KeyMetadata.KeyId)
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(*store.Key) error { return awserr.New(awserr.KMSInvalidState, "test refusal") }
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), "background step refused")
	}
	for range 3 {
		if done, err := n.forEachDue(ctx, "test step", []*store.Key{k}, refuse); done != 0 || err != nil {
			t.Fatalf("forEachDue: %d, %v", done, err)
		}
	}
	if c := count(); c != 1 {
		t.Fatalf("3 refused passes logged %d times, want 1:\n%s", c, logs.String())
	}
	mu.Lock()
	line := logs.String()
	mu.Unlock()
	for _, want := range []string{"step=\"test step\"", ck.KeyMetadata.Arn, awserr.KMSInvalidState} {
		if !strings.Contains(line, want) {
			t.Errorf("the log does not name %s:\n%s", want, line)
		}
	}
	later := start.Add(stepLogInterval + time.Second)
	clock.Store(&later)
	n.forEachDue(ctx, "test step", []*store.Key{k}, refuse)
	if c := count(); c != 2 {
		t.Fatalf("after the interval: %d log lines, want 2", c)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
