package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memOutbox is an Outbox in memory, with revisions like the store's
// settings.
type memOutbox struct {
	mu   sync.Mutex
	m    map[string][]KeptRecord
	rev  map[string]int64
	fail error
}

func newMemOutbox() *memOutbox {
	return &memOutbox{m: map[string][]KeptRecord{}, rev: map[string]int64{}}
}

func (o *memOutbox) LoadKept(_ context.Context, id string) ([]KeptRecord, int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]KeptRecord(nil), o.m[id]...), o.rev[id], nil
}

func (o *memOutbox) SaveKept(_ context.Context, id string, recs []KeptRecord, rev int64) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return 0, o.fail
	}
	if o.rev[id] != rev {
		return 0, ErrKeptChanged
	}
	o.m[id] = append([]KeptRecord(nil), recs...)
	o.rev[id]++
	return o.rev[id], nil
}

func (o *memOutbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m[KeyID(testSigner().PublicKey())])
}

// eventIDs returns the eventIDs of the records of the log in dir.
func eventIDs(t *testing.T, dir string) []string {
	t.Helper()
	var ids []string
	for _, f := range logFiles(t, dir) {
		for _, line := range lines(t, f) {
			var r struct {
				Sequence uint64 `json:"sequence"`
				EventID  string `json:"eventID"`
			}
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			if r.Sequence > 0 {
				ids = append(ids, r.EventID)
			}
		}
	}
	return ids
}

func count(ids []string, id string) int {
	n := 0
	for _, s := range ids {
		if s == id {
			n++
		}
	}
	return n
}

// TestKeptRecordIsAppendedAtOpen: the record of a change whose Append
// failed (the file broke) is kept in the outbox, and the next Open
// appends it, chained and verifiable, and removes it from the outbox.
func TestKeptRecordIsAppendedAtOpen(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	var failWrite, failSync atomic.Bool
	opts := Options{Outbox: outbox}
	opts.wrapFile = func(f logFile) logFile { return faultyFile{f, &failWrite, &failSync} }
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 2)
	failWrite.Store(true)
	rec := testRecord(7)
	rec.EventName, rec.ReadOnly = "CreateKey", false
	if err := l.Append(context.Background(), rec); err == nil {
		t.Fatal("Append succeeded on a broken file")
	}
	if err := l.Keep(context.Background(), rec); err != nil {
		t.Fatalf("Keep: %v", err)
	}
	if outbox.count() != 1 {
		t.Fatalf("%d records kept, want 1", outbox.count())
	}
	l.Close(context.Background())
	if ids := eventIDs(t, dir); count(ids, rec.EventID) != 0 {
		t.Fatal("the failed record is in the log already")
	}

	l = openLog(t, dir, Options{Outbox: outbox})
	if outbox.count() != 0 {
		t.Errorf("%d records still kept after Open appended them", outbox.count())
	}
	appendN(t, l, 10, 1)
	closeLog(t, l)
	ids := eventIDs(t, dir)
	if len(ids) != 4 || ids[2] != rec.EventID {
		t.Errorf("the log's eventIDs are %v, want the kept %s third, after the two written before", ids, rec.EventID)
	}
	mustVerify(t, dir)
}

// TestKeptRecordsOfOthersAreRefused: a record in the outbox that the log's
// signing key did not sign (written to the store by someone else), or
// altered, is never appended, and stays where it is.
func TestKeptRecordsOfOthersAreRefused(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	id := KeyID(testSigner().PublicKey())

	forged := testRecord(1)
	forged.EventID = "forged-by-another-key"
	if err := KeepRecord(context.Background(), outbox, other, forged, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Kept under the other key's id: move it to this log's set.
	outbox.m[id], outbox.rev[id] = outbox.m[KeyID(other.PublicKey())], 1
	altered := testRecord(2)
	altered.EventID = "altered-after-signing"
	if err := KeepRecord(context.Background(), outbox, testSigner(), altered, time.Now()); err != nil {
		t.Fatal(err)
	}
	outbox.m[id][1].Body = bytes.Replace(outbox.m[id][1].Body, []byte("alice"), []byte("mallory"), 1)

	var logs bytes.Buffer
	l := openLog(t, dir, Options{Outbox: outbox, Logger: newTextLogger(&logs)})
	appendN(t, l, 0, 1)
	closeLog(t, l)
	ids := eventIDs(t, dir)
	if len(ids) != 1 {
		t.Errorf("the log holds %v: a record kept without this log's signature was appended", ids)
	}
	if outbox.count() != 2 {
		t.Errorf("%d records left in the outbox, want both refused ones", outbox.count())
	}
	if !strings.Contains(logs.String(), "not signed by its signing key") {
		t.Errorf("the refusal was not logged:\n%s", logs.String())
	}
	for _, k := range outbox.m[id] {
		if _, err := CheckKept(testSigner().PublicKey(), id, k); err == nil {
			t.Error("CheckKept accepts a refused record")
		}
	}
}

// TestRunningLogAppendsKeptRecords: a record kept while the log runs
// (by a kmsd command while kmsd serve holds the log) is appended by the
// log's poll.
func TestRunningLogAppendsKeptRecords(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: 10 * time.Millisecond})
	appendN(t, l, 0, 1)
	rec := testRecord(5)
	rec.EventName = "CreateAccessKey"
	if err := KeepRecord(context.Background(), outbox, testSigner(), rec, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for outbox.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closeLog(t, l)
	if outbox.count() != 0 {
		t.Fatal("the running log did not take the kept record")
	}
	if ids := eventIDs(t, dir); count(ids, rec.EventID) != 1 {
		t.Errorf("the log's eventIDs are %v, want %s once", ids, rec.EventID)
	}
	mustVerify(t, dir)
}

// TestAppendOne appends a command's record to a log no process holds,
// and keeps it in the outbox when one does; either way it ends in the log.
func TestAppendOne(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	opts := Options{Dir: dir, Signer: testSigner(), Outbox: outbox, DigestEvery: -1, DigestInterval: -1}
	first := testRecord(1)
	kept, err := AppendOne(context.Background(), opts, first)
	if err != nil || kept {
		t.Fatalf("AppendOne on a free log: kept %v, %v", kept, err)
	}
	if ids := eventIDs(t, dir); count(ids, first.EventID) != 1 {
		t.Fatalf("the record is not in the log: %v", ids)
	}

	l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: -1})
	second := testRecord(2)
	kept, err = AppendOne(context.Background(), opts, second)
	if err != nil || !kept {
		t.Fatalf("AppendOne on a held log: kept %v, %v", kept, err)
	}
	closeLog(t, l)
	l = openLog(t, dir, Options{Outbox: outbox})
	closeLog(t, l)
	if ids := eventIDs(t, dir); count(ids, second.EventID) != 1 {
		t.Errorf("the kept record is not in the log after the next Open: %v", ids)
	}
	mustVerify(t, dir)

	// Neither the log nor the outbox: an error.
	outbox.fail = errors.New("store down")
	l = openLog(t, dir, Options{KeptPollInterval: -1})
	defer l.Close(context.Background())
	if _, err := AppendOne(context.Background(), opts, testRecord(3)); err == nil || !strings.Contains(err.Error(), "store down") {
		t.Errorf("AppendOne with neither log nor outbox: %v", err)
	}
}
