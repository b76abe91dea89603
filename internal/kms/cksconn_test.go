package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/softhsmtest"
)

// fakeClusters are HSM clusters in memory: each cluster one token whose
// AES keys every connection to it shares, as the nodes of a kmsd cluster
// share one CloudHSM cluster. They let the connection rules be tested on
// every platform (the SoftHSM2 tests of custom key stores need cgo).
type fakeClusters struct {
	pin    string
	tokens map[string]*fakeToken
}

type fakeToken struct {
	mu   sync.Mutex
	keys map[string][]byte
	open atomic.Int64 // open connections
}

func newFakeClusters(pin string, ids ...string) *fakeClusters {
	f := &fakeClusters{pin: pin, tokens: map[string]*fakeToken{}}
	for _, id := range ids {
		f.tokens[id] = &fakeToken{keys: map[string][]byte{}}
	}
	return f
}

func (f *fakeClusters) Lookup(id string) (string, bool) {
	_, ok := f.tokens[id]
	return "", ok
}

func (f *fakeClusters) Connect(_ context.Context, id, pin string) (HSM, error) {
	tok, ok := f.tokens[id]
	if !ok {
		return nil, &ConnectionError{Code: ConnectionClusterNotFound, Err: errors.New("no such cluster")}
	}
	if pin != f.pin {
		return nil, &ConnectionError{Code: ConnectionInvalidCredentials, Err: errors.New("wrong PIN")}
	}
	tok.open.Add(1)
	return &fakeHSM{tok: tok}, nil
}

type fakeHSM struct {
	tok    *fakeToken
	closed atomic.Bool
}

func (h *fakeHSM) gcm(label string) (cipher.AEAD, error) {
	if h.closed.Load() {
		return nil, errors.New("fake HSM: connection closed")
	}
	h.tok.mu.Lock()
	k, ok := h.tok.keys[label]
	h.tok.mu.Unlock()
	if !ok {
		return nil, ErrHSMKeyNotFound
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (h *fakeHSM) GenerateKey(_ context.Context, label string) error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	h.tok.mu.Lock()
	defer h.tok.mu.Unlock()
	h.tok.keys[label] = k
	return nil
}

func (h *fakeHSM) EncryptGCM(_ context.Context, label string, pt, aad []byte) ([]byte, []byte, error) {
	g, err := h.gcm(label)
	if err != nil {
		return nil, nil, err
	}
	iv := make([]byte, g.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, err
	}
	return iv, g.Seal(nil, iv, pt, aad), nil
}

func (h *fakeHSM) DecryptGCM(_ context.Context, label string, iv, ct, aad []byte) ([]byte, error) {
	g, err := h.gcm(label)
	if err != nil {
		return nil, err
	}
	pt, err := g.Open(nil, iv, ct, aad)
	if err != nil {
		return nil, ErrHSMAuthentication
	}
	return pt, nil
}

func (h *fakeHSM) DestroyKey(_ context.Context, label string) error {
	h.tok.mu.Lock()
	defer h.tok.mu.Unlock()
	delete(h.tok.keys, label)
	return nil
}

func (h *fakeHSM) GenerateRandom(_ context.Context, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

func (h *fakeHSM) Close() error {
	if h.closed.CompareAndSwap(false, true) {
		h.tok.open.Add(-1)
	}
	return nil
}

const fakePIN = "kmsd-test-pin"

// cksNodes starts n nodes sharing one store and one fake cluster, with a
// connected custom key store (created and connected on the first node)
// holding one key. Unless follow, the nodes do not follow the feed yet.
func cksNodes(t *testing.T, n int, cfg Config, follow bool) (nodes []*node, cksID, keyID string) {
	t.Helper()
	ctx := context.Background()
	cfg.HSMClusters = newFakeClusters(fakePIN, "cluster-kmsdtest000")
	nodes = newNodesWith(t, n, cfg, follow)
	a := nodes[0]
	out, err := a.CreateCustomKeyStore(ctx, admin, &CreateCustomKeyStoreInput{CustomKeyStoreName: "hr",
		CloudHsmClusterId: "cluster-kmsdtest000", KeyStorePassword: fakePIN, TrustAnchorCertificate: softhsmtest.TrustAnchorPEM(t)})
	if err != nil {
		t.Fatal(err)
	}
	cksID = out.CustomKeyStoreId
	connect(t, a, cksID)
	ck, err := a.CreateKey(ctx, admin, &CreateKeyInput{CustomKeyStoreId: cksID, Origin: OriginCloudHSM})
	if err != nil {
		t.Fatal(err)
	}
	return nodes, cksID, ck.KeyMetadata.KeyId
}

func connect(t *testing.T, n *node, id string) {
	t.Helper()
	if err := n.ConnectCustomKeyStore(context.Background(), admin, &CustomKeyStoreIdInput{CustomKeyStoreId: id}); err != nil {
		t.Fatal(err)
	}
	cks, err := n.st.GetCustomKeyStore(context.Background(), id)
	if err != nil || cks.ConnectionState != ConnectionConnected {
		t.Fatalf("after connecting: %+v, %v", cks, err)
	}
}

func disconnect(t *testing.T, n *node, id string) {
	t.Helper()
	if err := n.DisconnectCustomKeyStore(context.Background(), admin, &CustomKeyStoreIdInput{CustomKeyStoreId: id}); err != nil {
		t.Fatal(err)
	}
}

func cksEncrypt(n *node, keyID string) error {
	_, err := n.Encrypt(context.Background(), admin, &EncryptInput{KeyId: keyID, Plaintext: []byte("x")})
	return err
}

func describedState(t *testing.T, n *node, keyID string) string {
	t.Helper()
	out, err := n.DescribeKey(context.Background(), admin, &KeyIdInput{KeyId: keyID})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata.KeyState
}

// TestCustomKeyStoreChangesReachEveryNode: a custom key store connected
// on one node is usable on another within one second, and disconnected on
// one is refused by the other (its keys Unavailable, its connection
// closed) within one second.
func TestCustomKeyStoreChangesReachEveryNode(t *testing.T) {
	nodes, cksID, keyID := cksNodes(t, 2, Config{}, true)
	a, b := nodes[0], nodes[1]
	d := within(t, time.Second, "store connected on a, used on b", func() bool { return cksEncrypt(b, keyID) == nil })
	t.Logf("ConnectCustomKeyStore followed on the other node after %v", d)
	if s := describedState(t, b, keyID); s != StateEnabled {
		t.Fatalf("state on b %s, want Enabled", s)
	}

	disconnect(t, a, cksID)
	d = within(t, time.Second, "store disconnected on a, refused on b", func() bool {
		return codeOf(cksEncrypt(b, keyID)) == awserr.KMSInvalidState
	})
	t.Logf("DisconnectCustomKeyStore enforced on the other node after %v", d)
	if s := describedState(t, b, keyID); s != StateUnavailable {
		t.Fatalf("state on b %s, want Unavailable", s)
	}
	within(t, time.Second, "b's connection closed", func() bool { return b.cks.conn(cksID) == nil })

	connect(t, a, cksID)
	within(t, time.Second, "store connected again on a, used on b", func() bool { return cksEncrypt(b, keyID) == nil })
}

// TestCustomKeyStoreStaleFeed: a node whose feed is stale does not use its
// connection on the strength of what it last read: it reads the store's
// state (and refuses a store disconnected meanwhile), and refuses the key
// when it cannot read it.
func TestCustomKeyStoreStaleFeed(t *testing.T) {
	nodes, cksID, keyID := cksNodes(t, 2, Config{}, true)
	a, b := nodes[0], nodes[1]
	within(t, time.Second, "store connected on a, used on b", func() bool { return cksEncrypt(b, keyID) == nil })

	b.st.feedDown.Store(true)
	disconnect(t, a, cksID)
	d := within(t, DefaultStaleAfter+500*time.Millisecond, "store disconnected on a, refused by b with its feed down", func() bool {
		return codeOf(cksEncrypt(b, keyID)) == awserr.KMSInvalidState
	})
	t.Logf("refused after %v without the feed", d)

	// Connected again, but b cannot read the store: refused, never served
	// from the connection b still holds.
	connect(t, a, cksID)
	b.st.cksDown.Store(true)
	if err := cksEncrypt(b, keyID); err == nil {
		t.Fatal("encrypt on b served with the store unreachable and the feed stale")
	}
	b.st.cksDown.Store(false)
	b.st.feedDown.Store(false)
	within(t, time.Second, "feed back, store connected", func() bool { return cksEncrypt(b, keyID) == nil })
}

// TestCustomKeyStoreFollowsResync: when the feed was pruned before a node
// read it (and when a node starts following after it restored its
// connections), the node rechecks every custom key store: one
// disconnected meanwhile is closed there.
func TestCustomKeyStoreFollowsResync(t *testing.T) {
	t.Run("pruned", func(t *testing.T) {
		nodes, cksID, keyID := cksNodes(t, 2, Config{}, true)
		a, b := nodes[0], nodes[1]
		within(t, time.Second, "store connected on a, used on b", func() bool { return cksEncrypt(b, keyID) == nil })
		b.st.feedDown.Store(true)
		disconnect(t, a, cksID)
		b.st.pruneOnce.Store(true)
		b.st.feedDown.Store(false)
		within(t, time.Second, "b's connection closed after the feed was pruned", func() bool { return b.cks.conn(cksID) == nil })
	})
	t.Run("restored before following", func(t *testing.T) {
		nodes, cksID, _ := cksNodes(t, 2, Config{}, false)
		a, b := nodes[0], nodes[1]
		if err := b.RestoreCustomKeyStores(context.Background()); err != nil {
			t.Fatal(err)
		}
		if b.cks.conn(cksID) == nil {
			t.Fatal("the store was not restored on b")
		}
		disconnect(t, a, cksID)
		b.startFollow()
		within(t, time.Second, "b's connection closed once it follows", func() bool { return b.cks.conn(cksID) == nil })
	})
}

// TestCustomKeyStoreTTLBackstop: a change of a custom key store that the
// feed did not name reaches the node within the time-to-live.
func TestCustomKeyStoreTTLBackstop(t *testing.T) {
	const ttl = 300 * time.Millisecond
	nodes, cksID, keyID := cksNodes(t, 2, Config{CacheTTL: ttl}, true)
	a, b := nodes[0], nodes[1]
	within(t, time.Second, "store connected on a, used on b", func() bool { return cksEncrypt(b, keyID) == nil })
	b.st.hideCKSChanges.Store(true)
	disconnect(t, a, cksID)
	within(t, 3*ttl, "b refuses the store disconnected on a", func() bool {
		return codeOf(cksEncrypt(b, keyID)) == awserr.KMSInvalidState
	})
	within(t, 3*ttl, "b's connection closed by the periodic recheck", func() bool { return b.cks.conn(cksID) == nil })
	connect(t, a, cksID)
	within(t, 3*ttl, "b reconnects by the periodic recheck", func() bool { return b.cks.conn(cksID) != nil })
}
