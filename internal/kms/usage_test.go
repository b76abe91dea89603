package kms

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/logging"
	"github.com/kmsd/kmsd/internal/store"
)

// TestKeyUsageAcrossNodes: a node answers GetKeyLastUsage from its own
// unwritten uses at once and, once it flushes, so does every other node; a
// later use wins over an earlier one whatever order the nodes flush in; a
// use the store could not take is kept for the next flush.
func TestKeyUsageAcrossNodes(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	opened := time.Now().UTC()
	clock.Store(&opened)
	nodes := newNodes(t, 2, func() time.Time { return *clock.Load() })
	a, b := nodes[0], nodes[1]
	// The store began tracking usage when it was made: the key is younger.
	start := time.Now().UTC()
	clock.Store(&start)
	ck, err := a.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := ck.KeyMetadata.KeyId
	last := func(n *node) *KeyLastUsageData {
		t.Helper()
		out, err := n.GetKeyLastUsage(ctx, admin, &GetKeyLastUsageInput{KeyId: id})
		if err != nil {
			t.Fatal(err)
		}
		if out.KeyId != id || !out.KeyCreationDate.Equal(ck.KeyMetadata.CreationDate) || !out.TrackingStartDate.Equal(ck.KeyMetadata.CreationDate) {
			t.Errorf("GetKeyLastUsage = %+v: want the key id, and its creation as the creation and tracking start dates", out)
		}
		return out.KeyLastUsage
	}
	if u := last(a); u != nil {
		t.Fatalf("a new key's last usage: %+v", u)
	}

	// Node a encrypts, in a request with an id and an audit eventID.
	rctx, ri := WithRequestInfo(logging.WithRequestID(ctx, "request-1"))
	if _, err := a.Encrypt(rctx, admin, &EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// In a request, the use waits for the request's audit record: until
	// the server commits it, nothing reports it.
	if u := last(a); u != nil {
		t.Fatalf("a use reported before its request's audit record was durable: %+v", u)
	}
	ri.CommitUses()
	want := KeyLastUsageData{Operation: "Encrypt", Timestamp: start, KmsRequestId: "request-1", CloudTrailEventId: ri.EventID()}
	if u := last(a); u == nil || *u != want {
		t.Fatalf("a's last usage before its flush: %+v, want %+v", u, want)
	}
	if u := last(b); u != nil {
		t.Fatalf("b's last usage before a's flush: %+v", u)
	}
	if err := a.FlushKeyUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if u := last(b); u == nil || *u != want {
		t.Fatalf("b's last usage after a's flush: %+v, want %+v", u, want)
	}

	// b decrypts an hour later; a's older use, flushed after b's, does
	// not replace it.
	later := start.Add(time.Hour)
	clock.Store(&later)
	if _, err := b.GenerateDataKey(ctx, admin, &GenerateDataKeyInput{KeyId: id, KeySpec: "AES_256"}); err != nil {
		t.Fatal(err)
	}
	if err := b.FlushKeyUsage(ctx); err != nil {
		t.Fatal(err)
	}
	a.noteUse(ctx, mustKey(t, a.Service, id), useDecrypt) // at "later" too: not later than b's
	clock.Store(&start)
	a.noteUse(ctx, mustKey(t, a.Service, id), useSign) // earlier than b's
	if err := a.FlushKeyUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if u := last(b); u == nil || u.Operation != "GenerateDataKey" || !u.Timestamp.Equal(later) {
		t.Fatalf("last usage after an older use was flushed: %+v", u)
	}

	// A flush the store refuses keeps its uses for the next.
	much := later.Add(time.Hour)
	clock.Store(&much)
	if _, err := a.GenerateMac(ctx, admin, &GenerateMacInput{KeyId: id}); err == nil {
		t.Fatal("GenerateMac with a symmetric key succeeded")
	}
	if _, err := a.Encrypt(ctx, admin, &EncryptInput{KeyId: id, Plaintext: []byte("x"), DryRun: true}); codeOf(err) != "DryRunOperationException" {
		t.Fatalf("dry run: %v", err)
	}
	if u := a.pendingUse(mustKey(t, a.Service, id).ID); u != nil {
		t.Fatalf("a failed operation or a dry run counted as a use: %+v", u)
	}
	if _, err := a.Decrypt(ctx, admin, &DecryptInput{CiphertextBlob: mustEncrypt(t, b.Service, id)}); err != nil {
		t.Fatal(err)
	}
	a.st.usageDown.Store(true)
	if err := a.FlushKeyUsage(ctx); err == nil {
		t.Fatal("FlushKeyUsage with the store down succeeded")
	}
	a.st.usageDown.Store(false)
	if err := a.FlushKeyUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if u := last(b); u == nil || u.Operation != "Decrypt" || !u.Timestamp.Equal(much) {
		t.Fatalf("last usage after a failed flush and a retry: %+v", u)
	}
}

func mustKey(t *testing.T, s *Service, id string) *store.Key {
	t.Helper()
	k, err := s.resolve(context.Background(), admin, id, idOrARN)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEncrypt(t *testing.T, s *Service, id string) []byte {
	t.Helper()
	out, err := s.Encrypt(context.Background(), admin, &EncryptInput{KeyId: id, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	return out.CiphertextBlob
}
