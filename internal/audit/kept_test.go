package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"
)

// memOutbox is an Outbox in memory, with revisions like the store's
// settings.
type memOutbox struct {
	mu   sync.Mutex
	m    map[string][]KeptRecord
	rev  map[string]int64
	fail error
	// latency is how long every call takes, outside the lock, as a
	// store's round trip does (a burst of writers then overlaps).
	latency time.Duration
	saves   int
}

func newMemOutbox() *memOutbox {
	return &memOutbox{m: map[string][]KeptRecord{}, rev: map[string]int64{}}
}

func (o *memOutbox) LoadKept(_ context.Context, id string) ([]KeptRecord, int64, error) {
	time.Sleep(o.latency)
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]KeptRecord(nil), o.m[id]...), o.rev[id], nil
}

func (o *memOutbox) SaveKept(_ context.Context, id string, recs []KeptRecord, rev int64) (int64, error) {
	time.Sleep(o.latency)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.saves++
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

func (o *memOutbox) setFail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

// put adds k to the set of the test log, as someone with write access to
// the store can.
func (o *memOutbox) put(k KeptRecord) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := KeyID(testSigner().PublicKey())
	o.m[id] = append(o.m[id], k)
	o.rev[id]++
}

// snapshot returns a copy of the set of the test log.
func (o *memOutbox) snapshot() []KeptRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]KeptRecord(nil), o.m[KeyID(testSigner().PublicKey())]...)
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

// keptRecordOf returns a record made to be kept, with an eventID that
// names it.
func keptRecordOf(i int) *Record {
	r := testRecord(i)
	r.EventName, r.ReadOnly = "CreateKey", false
	r.EventID = fmt.Sprintf("kept-%04d", i)
	return r
}

// TestBurstOfKeepsLosesNone: when a group-commit batch fails, every
// request in it keeps its record at once. Each Keep used to be a
// load-and-save of the one setting, tried 20 times: with 64 at once on a
// store that takes a millisecond, a third of them failed, leaving their
// changes without a record. Keeps of one process now share saves, and a
// second process's keeps (a kmsd command) are tried again after a
// jittered backoff: every record is kept, and the next Open appends each
// once.
func TestBurstOfKeepsLosesNone(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	outbox.latency = time.Millisecond
	l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: -1})
	const n, others = 96, 16
	var wg sync.WaitGroup
	errs := make(chan error, n+others)
	for i := range n {
		wg.Go(func() { errs <- l.Keep(context.Background(), keptRecordOf(i)) })
	}
	// Another process keeping at the same time: its own keeper.
	for i := n; i < n+others; i++ {
		wg.Go(func() {
			errs <- KeepRecord(context.Background(), outbox, testSigner(), keptRecordOf(i), time.Now())
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
	if failed > 0 {
		t.Fatalf("%d of %d concurrent keeps failed", failed, n+others)
	}
	if outbox.count() != n+others {
		t.Fatalf("%d records kept, want %d", outbox.count(), n+others)
	}
	outbox.mu.Lock()
	saves := outbox.saves
	outbox.mu.Unlock()
	if saves >= n {
		t.Errorf("%d saves for %d keeps of one process: they are not batched", saves, n)
	}
	closeLog(t, l)

	l = openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: -1})
	closeLog(t, l)
	ids := eventIDs(t, dir)
	for i := range n + others {
		if c := count(ids, fmt.Sprintf("kept-%04d", i)); c != 1 {
			t.Errorf("kept record %d is in the log %d times, want once", i, c)
		}
	}
	if outbox.count() != 0 {
		t.Errorf("%d records still kept", outbox.count())
	}
	mustVerify(t, dir)
}

// TestKeepsAreBounded: the set kept for a log has limits (every change
// rewrites it whole); a Keep past them fails with ErrKeptFull, and
// nothing already kept is lost.
func TestKeepsAreBounded(t *testing.T) {
	outbox := newMemOutbox()
	id := KeyID(testSigner().PublicKey())
	full := make([]KeptRecord, MaxKeptRecords)
	for i := range full {
		full[i] = KeptRecord{Body: fmt.Appendf(nil, `{"n":%d}`, i), Signature: []byte{1}}
	}
	outbox.m[id], outbox.rev[id] = full, 1
	err := KeepRecord(context.Background(), outbox, testSigner(), keptRecordOf(1), time.Now())
	if !errors.Is(err, ErrKeptFull) {
		t.Fatalf("Keep into a full set: %v, want ErrKeptFull", err)
	}
	if outbox.count() != MaxKeptRecords {
		t.Errorf("the set holds %d records, want the %d it held", outbox.count(), MaxKeptRecords)
	}
	big := []KeptRecord{{Body: make([]byte, MaxKeptBytes-100), Signature: []byte{1}}}
	outbox.m[id], outbox.rev[id] = big, 2
	if err := KeepRecord(context.Background(), outbox, testSigner(), keptRecordOf(2), time.Now()); !errors.Is(err, ErrKeptFull) {
		t.Fatalf("Keep past MaxKeptBytes: %v, want ErrKeptFull", err)
	}
}

// TestKeptRemovalFailureAppendsOnce: a kept record is appended, and its
// removal from the store fails. The running log used to append it again
// at every poll, and Open failed (and every restart appended another
// copy). Now the running log tries only the removal again, Open succeeds,
// and a later Open finds the record in the log: it is in the log once.
func TestKeptRemovalFailureAppendsOnce(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		dir := t.TempDir()
		outbox := newMemOutbox()
		l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: 5 * time.Millisecond})
		appendN(t, l, 0, 1)
		rec := keptRecordOf(1)
		if err := KeepRecord(context.Background(), outbox, testSigner(), rec, time.Now()); err != nil {
			t.Fatal(err)
		}
		outbox.setFail(errors.New("store unreachable"))
		waitFor(t, func() bool {
			outbox.mu.Lock()
			defer outbox.mu.Unlock()
			return outbox.saves >= 6
		})
		outbox.setFail(nil)
		waitFor(t, func() bool { return outbox.count() == 0 })
		closeLog(t, l)
		if c := count(eventIDs(t, dir), rec.EventID); c != 1 {
			t.Errorf("the kept record is in the log %d times, want once", c)
		}
		mustVerify(t, dir)
	})
	t.Run("restarts", func(t *testing.T) {
		dir := t.TempDir()
		outbox := newMemOutbox()
		rec := keptRecordOf(2)
		if err := KeepRecord(context.Background(), outbox, testSigner(), rec, time.Now()); err != nil {
			t.Fatal(err)
		}
		outbox.setFail(errors.New("store unreachable"))
		for range 3 {
			l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: -1})
			appendN(t, l, 0, 1)
			closeLog(t, l)
		}
		if outbox.count() != 1 {
			t.Fatalf("%d records kept, want the one whose removal failed", outbox.count())
		}
		outbox.setFail(nil)
		l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: -1})
		closeLog(t, l)
		if outbox.count() != 0 {
			t.Errorf("%d records kept after Open with a working store", outbox.count())
		}
		if c := count(eventIDs(t, dir), rec.EventID); c != 1 {
			t.Errorf("the kept record is in the log %d times after restarts, want once", c)
		}
		if rep := mustVerify(t, dir); len(rep.Duplicates) != 0 {
			t.Errorf("Verify reports duplicates: %+v", rep.Duplicates)
		}
	})
}

// TestKeptRecordPutBackIsNotAppendedAgain: whoever can write the store
// could put an already appended kept record (its signature valid) back,
// and the log appended it again. The log finds it in its files, at Open
// and while it runs, and only removes it: also when the file that holds
// it was created before the record and the log has rotated since.
func TestKeptRecordPutBackIsNotAppendedAgain(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	clock := newClock()
	opts := Options{Outbox: outbox, KeptPollInterval: -1, Now: clock.Now, MaxFileAge: 10 * time.Hour}
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 1) // the first file, created now
	closeLog(t, l)
	clock.Advance(5 * time.Hour)
	rec := keptRecordOf(3)
	if err := KeepRecord(context.Background(), outbox, testSigner(), rec, clock.Now()); err != nil {
		t.Fatal(err)
	}
	replay := outbox.snapshot()[0]
	l = openLog(t, dir, opts) // appends it, to the first file
	clock.Advance(6 * time.Hour)
	appendN(t, l, 1, 1) // to a second file
	closeLog(t, l)
	if files := logFiles(t, dir); len(files) != 2 {
		t.Fatalf("the log has %d files, want 2", len(files))
	}
	if c := count(eventIDs(t, dir), rec.EventID); c != 1 {
		t.Fatalf("the kept record is in the log %d times, want once", c)
	}

	outbox.put(replay)
	l = openLog(t, dir, opts)
	closeLog(t, l)
	if outbox.count() != 0 {
		t.Errorf("the record put back is still kept after Open")
	}

	opts.KeptPollInterval = 5 * time.Millisecond
	l = openLog(t, dir, opts)
	outbox.put(replay)
	outbox.put(replay) // twice over
	waitFor(t, func() bool { return outbox.count() == 0 })
	closeLog(t, l)
	if c := count(eventIDs(t, dir), rec.EventID); c != 1 {
		t.Errorf("the kept record is in the log %d times, want once", c)
	}
}

// TestRefusedKeptIsReportedOnce: a refused record (not signed by the log's
// key) used to be logged at error every poll, forever. The running log
// reports it once; DropRefusedKept (kmsd audit drop-kept) removes it, and
// never a record the log accepts.
func TestRefusedKeptIsReportedOnce(t *testing.T) {
	dir := t.TempDir()
	outbox := newMemOutbox()
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)))
	forged := keptRecordOf(4)
	forged.EventID = "forged"
	otherOutbox := newMemOutbox()
	if err := KeepRecord(context.Background(), otherOutbox, other, forged, time.Now()); err != nil {
		t.Fatal(err)
	}
	forgedKept := otherOutbox.m[KeyID(other.PublicKey())][0]
	outbox.put(forgedKept)
	outbox.put(KeptRecord{Body: []byte("not a record"), Signature: []byte("x")})

	var logs lockedbuf.Buffer
	l := openLog(t, dir, Options{Outbox: outbox, KeptPollInterval: 5 * time.Millisecond, Logger: newTextLogger(&logs)})
	time.Sleep(100 * time.Millisecond) // some 20 polls
	if c := strings.Count(logs.String(), "a kept record is refused"); c != 2 {
		t.Errorf("the two refused records were reported %d times, want once each:\n%s", c, logs.String())
	}

	// A valid record, kept meanwhile, is appended, never dropped.
	pub := testSigner().PublicKey()
	outbox.setFail(errors.New("store unreachable"))
	if _, err := DropRefusedKept(context.Background(), outbox, pub, ""); err == nil {
		t.Error("DropRefusedKept on a failing store succeeded")
	}
	outbox.setFail(nil)
	dropped, err := DropRefusedKept(context.Background(), outbox, pub, "forged")
	if err != nil || len(dropped) != 1 || dropped[0].EventID != "forged" || !strings.Contains(dropped[0].Reason, "not signed by its signing key") || len(dropped[0].ID) != 64 {
		t.Fatalf("DropRefusedKept --event-id forged: %+v, %v", dropped, err)
	}
	if outbox.count() != 1 {
		t.Fatalf("%d records kept, want the other refused one", outbox.count())
	}
	dropped, err = DropRefusedKept(context.Background(), outbox, pub, "forged")
	if err != nil || len(dropped) != 0 {
		t.Fatalf("DropRefusedKept of a record gone: %+v, %v", dropped, err)
	}
	valid := keptRecordOf(5)
	l.Close(context.Background())
	if err := KeepRecord(context.Background(), outbox, testSigner(), valid, time.Now()); err != nil {
		t.Fatal(err)
	}
	dropped, err = DropRefusedKept(context.Background(), outbox, pub, "")
	if err != nil || len(dropped) != 1 || dropped[0].EventID != "" {
		t.Fatalf("DropRefusedKept of every refused record: %+v, %v", dropped, err)
	}
	if got := outbox.snapshot(); len(got) != 1 {
		t.Fatalf("%d records kept, want the valid one", len(got))
	} else if _, err := CheckKept(pub, KeyID(pub), got[0]); err != nil {
		t.Fatalf("the record left is not the valid one: %v", err)
	}
	if _, err := DropRefusedKept(context.Background(), outbox, pub, valid.EventID); err != nil || outbox.count() != 1 {
		t.Fatalf("DropRefusedKept removed a valid record: %v", err)
	}
}
