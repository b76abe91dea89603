package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/server"
)

// memOutbox is an audit.Outbox in memory, with revisions like the store's
// settings, that can be made to fail.
type memOutbox struct {
	mu   sync.Mutex
	recs map[string][]audit.KeptRecord
	rev  map[string]int64
	fail error
	// latency is how long every call takes, outside the lock, as a
	// store's round trip does.
	latency time.Duration
}

func newMemOutbox() *memOutbox {
	return &memOutbox{recs: map[string][]audit.KeptRecord{}, rev: map[string]int64{}}
}

func (o *memOutbox) LoadKept(_ context.Context, id string) ([]audit.KeptRecord, int64, error) {
	time.Sleep(o.latency)
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]audit.KeptRecord(nil), o.recs[id]...), o.rev[id], nil
}

func (o *memOutbox) SaveKept(_ context.Context, id string, recs []audit.KeptRecord, rev int64) (int64, error) {
	time.Sleep(o.latency)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return 0, o.fail
	}
	if o.rev[id] != rev {
		return 0, audit.ErrKeptChanged
	}
	o.recs[id] = append([]audit.KeptRecord(nil), recs...)
	o.rev[id]++
	return o.rev[id], nil
}

func (o *memOutbox) kept() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, r := range o.recs {
		n += len(r)
	}
	return n
}

// brokenLog is a real audit log whose Append can be made to fail as a
// broken disk makes it fail, after the operation committed; Keep is the
// log's own.
type brokenLog struct {
	*audit.Log
	broken atomic.Bool
}

func (b *brokenLog) Append(ctx context.Context, r *audit.Record) error {
	if b.broken.Load() {
		return errors.New("audit: writing audit-…jsonl: injected: no space left on device")
	}
	return b.Log.Append(ctx, r)
}

// TestCommittedChangeIsKeptWhenTheLogFails: the record of a change the
// store committed but the log could not write is kept in the outbox; the
// request succeeds (the change and its record are both durable), and the
// log appends the record when it opens again. A read-only request whose
// record fails still fails. If the outbox fails too, the request fails and
// the operator is told which event and key.
func TestCommittedChangeIsKeptWhenTheLogFails(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := filepath.Join(t.TempDir(), "audit")
	outbox := newMemOutbox()
	opts := audit.Options{Dir: dir, Signer: audit.NewSigner(priv), DigestInterval: -1, Outbox: outbox}
	l, err := audit.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	var logs lockedbuf.Buffer
	fl := &brokenLog{Log: l}
	env := kmstest.StartWithAuditorAndLogger(t, fl, slog.New(slog.NewTextHandler(&logs, nil)))
	c := env.Client
	key := newKey(t, c, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")

	fl.broken.Store(true)
	ck, err := c.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("created while the log is broken")})
	if err != nil {
		t.Fatalf("CreateKey whose record was kept: %v", err)
	}
	id := aws.ToString(ck.KeyMetadata.KeyId)
	if outbox.kept() != 1 {
		t.Fatalf("%d records kept, want the CreateKey's", outbox.kept())
	}
	if _, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyId, Plaintext: []byte("x")}); err == nil || !strings.Contains(err.Error(), "KMSInternalException") {
		t.Errorf("Encrypt whose record failed: %v, want KMSInternalException", err)
	}
	if outbox.kept() != 1 {
		t.Errorf("%d records kept: a read-only request's record was kept", outbox.kept())
	}

	// Neither log nor outbox: the request fails, and the log says which
	// event and key are left without a record.
	outbox.mu.Lock()
	outbox.fail = errors.New("store unreachable")
	outbox.mu.Unlock()
	orphan, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err == nil || !strings.Contains(err.Error(), "KMSInternalException") {
		t.Fatalf("CreateKey with neither log nor outbox: %v, %v", orphan, err)
	}
	var orphanID string
	for _, k := range storeKeys(t, env) {
		if k != id && k != aws.ToString(key.KeyId) {
			orphanID = k
		}
	}
	out := logs.String()
	if orphanID == "" || !strings.Contains(out, "a committed change has no audit record") || !strings.Contains(out, orphanID) || !strings.Contains(out, "event_id=") {
		t.Errorf("the change left without a record (key %q) is not named at error level:\n%s", orphanID, out)
	}

	// The restart: the log opens again and appends the kept record.
	fl.broken.Store(false)
	outbox.mu.Lock()
	outbox.fail = nil
	outbox.mu.Unlock()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l, err = audit.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if outbox.kept() != 0 {
		t.Errorf("%d records still kept after the log opened", outbox.kept())
	}
	found := 0
	for _, rec := range auditLines(t, dir) {
		if rec["eventName"] == "CreateKey" && strings.Contains(toJSON(t, rec["responseElements"]), id) {
			found++
		}
	}
	if found != 1 {
		t.Errorf("the log holds %d CreateKey records of key %s, want 1", found, id)
	}
	if _, err := audit.Verify(dir, priv.Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestBurstOfCommittedChangesIsKept: when the log fails, every request of
// the failed batch keeps its record at once. The keeps used to contend on
// the one setting, 20 tries each: with 64 at once on a store that takes a
// millisecond, a third failed, and their changes stayed committed with no
// record. Every one is kept now, and the log appends each when it opens.
func TestBurstOfCommittedChangesIsKept(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	dir := filepath.Join(t.TempDir(), "audit")
	outbox := newMemOutbox()
	outbox.latency = time.Millisecond
	opts := audit.Options{Dir: dir, Signer: audit.NewSigner(priv), DigestInterval: -1, Outbox: outbox, KeptPollInterval: -1}
	l, err := audit.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	fl := &brokenLog{Log: l}
	env := kmstest.StartWithAuditorAndLogger(t, fl, slog.New(slog.DiscardHandler))
	fl.broken.Store(true)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := env.Client.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("created while the log is broken")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed > 0 || outbox.kept() != n {
		t.Fatalf("%d of %d CreateKey failed; %d records kept", failed, n, outbox.kept())
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err = audit.Open(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, rec := range auditLines(t, dir) {
		if rec["eventName"] == "CreateKey" {
			created++
		}
	}
	if created != n || outbox.kept() != 0 {
		t.Errorf("the log holds %d CreateKey records, want %d; %d still kept", created, n, outbox.kept())
	}
}

// failingAuditor is a memAuditor whose Append can fail while the log
// still looks healthy (Err nil): the request runs, its record fails.
type failingAuditor struct {
	memAuditor
	failAppend atomic.Bool
}

func (f *failingAuditor) Append(ctx context.Context, r *audit.Record) error {
	if f.failAppend.Load() {
		return errors.New("injected: audit write failed")
	}
	return f.memAuditor.Append(ctx, r)
}

// TestKeyUseWaitsForItsRecord: an operation whose audit record could not
// be written does not count as the key's last use: GetKeyLastUsage never
// reports an eventID without a record.
func TestKeyUseWaitsForItsRecord(t *testing.T) {
	ctx := context.Background()
	a := &failingAuditor{}
	env := kmstest.StartWithAuditor(t, a)
	c := env.Client
	k := newKey(t, c, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
	out, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	reqID, _ := awsmiddleware.GetRequestIDMetadata(resultMetadata(out))
	want := eventIDOf(t, &a.memAuditor, reqID)

	a.failAppend.Store(true)
	if _, err := c.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: out.CiphertextBlob}); err == nil {
		t.Fatal("Decrypt whose audit record failed succeeded")
	}
	a.failAppend.Store(false)
	u, err := c.GetKeyLastUsage(ctx, &awskms.GetKeyLastUsageInput{KeyId: k.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if u.KeyLastUsage == nil || aws.ToString(u.KeyLastUsage.CloudTrailEventId) != want {
		t.Errorf("last usage %+v: want the Encrypt (event %s), not the Decrypt without a record", u.KeyLastUsage, want)
	}
}

// blockingAuditor holds the records of successful CreateKeys until
// released.
type blockingAuditor struct {
	memAuditor
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAuditor) Append(ctx context.Context, r *audit.Record) error {
	if r.EventName == "CreateKey" && r.ErrorCode == "" {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.memAuditor.Append(ctx, r)
}

// TestCloseWaitsForChanges: Server.Close refuses new requests that would
// change state and waits for those in flight until their records are
// written, so that kmsd serve never closes its audit log between a
// commit and its record.
func TestCloseWaitsForChanges(t *testing.T) {
	ctx := context.Background()
	a := &blockingAuditor{entered: make(chan struct{}), release: make(chan struct{})}
	env := kmstest.StartWithAuditor(t, a)
	c := env.Client
	k := newKeyWhileBlocked(t, a, c)

	done := make(chan error, 1)
	go func() {
		_, err := c.CreateKey(ctx, &awskms.CreateKeyInput{})
		done <- err
	}()
	<-a.entered // committed, its record on its way
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	n, err := env.Handler.Close(short)
	cancel()
	if err == nil || n != 1 {
		t.Fatalf("Close with a CreateKey in flight: %d running, %v", n, err)
	}
	// New changes are refused before they run; reads go on.
	if _, err := c.CreateKey(ctx, &awskms.CreateKeyInput{}); err == nil || !strings.Contains(err.Error(), "DependencyTimeoutException") {
		t.Errorf("CreateKey after Close began: %v", err)
	}
	if _, err := c.Encrypt(ctx, &awskms.EncryptInput{KeyId: k, Plaintext: []byte("x")}); err != nil {
		t.Errorf("Encrypt after Close began: %v", err)
	}
	close(a.release)
	if n, err := env.Handler.Close(ctx); err != nil || n != 0 {
		t.Fatalf("Close once the CreateKey finished: %d, %v", n, err)
	}
	if err := <-done; err != nil {
		t.Errorf("the CreateKey in flight: %v", err)
	}
	if !bytes.Contains(a.json(t), []byte(`"errorCode":"DependencyTimeoutException"`)) {
		t.Error("the refused CreateKey was not audited")
	}
}

// newKeyWhileBlocked creates a key through a blockingAuditor.
func newKeyWhileBlocked(t *testing.T, a *blockingAuditor, c *awskms.Client) *string {
	t.Helper()
	go func() { <-a.entered; a.release <- struct{}{} }()
	out, err := c.CreateKey(context.Background(), &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata.KeyId
}

var _ server.Keeper = (*brokenLog)(nil)

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
