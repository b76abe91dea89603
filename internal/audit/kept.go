package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"
)

// Kept records: the record of a change that is committed but that the log
// could not write (its file failed, or it was closed, or another process
// holds it) is kept outside the log, in an Outbox (kmsd keeps it in its
// store), signed by the log's signing key. The log appends the records
// kept for it before anything else when it opens, and while it runs every
// Options.KeptPollInterval, and removes them from the outbox only once they
// are durable in the log. So a committed change always has its record:
// in the log, or kept for it.
//
// One process changes a log's set one compare-and-set at a time (keeper):
// the Keeps of a burst (every request of a group-commit batch that failed
// keeps its record at once) share a save, and only another process (a
// kmsd command) can make a save fail, which is then tried again after a
// jittered backoff.
//
// Appending is idempotent. A store failure (or a crash) between the append
// and the removal leaves the record in both: the running log remembers the
// records it appended until their removal succeeds, and tries only the
// removal again; and before it appends a kept record the log looks for it
// in its own files (findKept), so that one an earlier run appended, or one
// put back in the outbox after its removal, is removed, not appended a
// second time. Only a copy in a file removed since (by retention) is not
// found; Verify reports the eventID that then appears twice.

// Limits of the set kept for one log.
const (
	// MaxKeptRecords and MaxKeptBytes (its bodies and signatures) bound
	// the set of records kept for one log: every change rewrites the
	// whole set, so an unbounded one would make each Keep slower and the
	// store's setting larger without end. A Keep past them fails with
	// ErrKeptFull.
	MaxKeptRecords = 10000
	MaxKeptBytes   = 32 << 20
	// keptAttempts bounds the compare-and-sets one change of the set may
	// lose to another process; keptRetryMin and keptRetryMax bound the
	// wait before the next, which doubles each time, jittered (about 3 s
	// in all at most).
	keptAttempts = 10
	keptRetryMin = 10 * time.Millisecond
	keptRetryMax = time.Second
	// keptScanSlack is how much earlier than a kept record's eventTime
	// the log looks for it in its files (findKept): room for a clock
	// stepped back between the keeping and the append.
	keptScanSlack = time.Hour
)

// keptMagic starts the message a kept record's signature covers: a domain
// separator, so that it can never be taken for a digest's signature.
const keptMagic = "kmsd audit kept record v1\n"

// KeptRecord is one record kept for a log: its JSON without chain members
// (as the log would write it after "sequence" and "prevHash") and the
// signature of the log's signing key over keptMessage. The signature
// stops whoever can write the outbox (the store) but does not hold the
// signing key from having the log sign records of their own making.
type KeptRecord struct {
	Body      []byte `json:"body"`
	Signature []byte `json:"signature"`
}

// ErrKeptChanged is wrapped by Outbox.SaveKept's error when the stored set
// is no longer the revision given.
var ErrKeptChanged = errors.New("audit: the kept records changed since they were read")

// ErrKeptFull is wrapped by Keep's (and KeepRecord's) error when the set
// kept for the log holds MaxKeptRecords or MaxKeptBytes already: the log
// must append them before more can be kept.
var ErrKeptFull = errors.New("audit: the store keeps as many records for this log as it may")

// errKeptNotRemoved is wrapped by appendKept's error when the records are
// durable in the log and only their removal from the outbox failed.
var errKeptNotRemoved = errors.New("audit: kept records appended but not removed from the store")

// Outbox keeps the records of logs that their logs could not write yet,
// outside their folders (kmsd keeps them as a setting of its store, one
// per log, so that they work unchanged on PostgreSQL).
type Outbox interface {
	// LoadKept returns the records kept for log logID, oldest first, and
	// the revision of their set (nil and 0 when none was ever kept).
	LoadKept(ctx context.Context, logID string) ([]KeptRecord, int64, error)
	// SaveKept replaces the set of log logID, stored at revision rev (0:
	// none yet), by recs and returns the new revision, or an error
	// wrapping ErrKeptChanged when the stored set is no longer rev.
	SaveKept(ctx context.Context, logID string, recs []KeptRecord, rev int64) (int64, error)
}

// keptMessage is what a kept record's signature covers: the magic, the
// log's id and the body, which comes last, so the message is unambiguous.
func keptMessage(logID string, body []byte) []byte {
	m := make([]byte, 0, len(keptMagic)+len("logId \n")+len(logID)+len(body))
	m = append(m, keptMagic...)
	m = append(m, "logId "...)
	m = append(m, logID...)
	m = append(m, '\n')
	return append(m, body...)
}

// KeptInfo describes a kept record, for reports.
type KeptInfo struct {
	EventID   string
	EventName string
	EventTime string
}

// CheckKept checks that k was kept for log logID by the holder of its
// signing key pub and holds a record, and describes it.
func CheckKept(pub ed25519.PublicKey, logID string, k KeptRecord) (KeptInfo, error) {
	if KeyID(pub) != logID {
		return KeptInfo{}, fmt.Errorf("audit: kept record: the public key is not the one of log %s", logID)
	}
	if !ed25519.Verify(pub, keptMessage(logID, k.Body), k.Signature) {
		return KeptInfo{}, fmt.Errorf("audit: a record kept for log %s is not signed by its signing key: it was not kept by kmsd, or was altered", logID)
	}
	var info struct {
		Sequence  *uint64 `json:"sequence"`
		PrevHash  *string `json:"prevHash"`
		EventID   string  `json:"eventID"`
		EventName string  `json:"eventName"`
		EventTime string  `json:"eventTime"`
	}
	if len(k.Body) < 2 || k.Body[0] != '{' || len(k.Body) > MaxRecordBytes || json.Unmarshal(k.Body, &info) != nil ||
		info.Sequence != nil || info.PrevHash != nil {
		return KeptInfo{}, fmt.Errorf("audit: a record kept for log %s is not a record", logID)
	}
	return KeptInfo{EventID: info.EventID, EventName: info.EventName, EventTime: info.EventTime}, nil
}

// KeepRecord keeps r in outbox for the log signer signs (see KeptRecord),
// filling in r's empty defaults as Append does with now. It returns once
// the outbox has stored it. It is for a process that keeps one record (a
// kmsd command): a process that keeps records concurrently uses its Log's
// Keep, which makes one save of many.
func KeepRecord(ctx context.Context, outbox Outbox, signer Signer, r *Record, now time.Time) error {
	if outbox == nil {
		return errors.New("audit: there is no outbox to keep the record in")
	}
	logID := KeyID(signer.PublicKey())
	k, err := signKept(signer, logID, r, now)
	if err != nil {
		return err
	}
	return newKeeper(outbox, logID).apply(ctx, &keptChange{add: &k})
}

// signKept makes the kept record of r for log logID.
func signKept(signer Signer, logID string, r *Record, now time.Time) (KeptRecord, error) {
	if err := r.fillDefaults(now); err != nil {
		return KeptRecord{}, fmt.Errorf("audit: %w", err)
	}
	body, err := appendRecordBody(make([]byte, 0, recordBufSize), r)
	if err != nil {
		return KeptRecord{}, fmt.Errorf("audit: encoding record: %w", err)
	}
	if len(body) > MaxRecordBytes {
		return KeptRecord{}, fmt.Errorf("audit: record of %d bytes is larger than %d", len(body), MaxRecordBytes)
	}
	sig, err := signer.Sign(keptMessage(logID, body))
	if err != nil {
		return KeptRecord{}, fmt.Errorf("audit: signing a kept record: %w", err)
	}
	return KeptRecord{Body: body, Signature: sig}, nil
}

// Keep keeps r in Options.Outbox, to be appended by this log's next Open
// (or its poll, if it is running): for the record of a change that is
// committed but whose Append failed, so that the change is not left
// without a record. It needs no working log file, only the outbox and the
// signing key. Concurrent Keeps share the outbox's saves, and each returns
// the outcome of its own record.
func (l *Log) Keep(ctx context.Context, r *Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	if l.keeper == nil {
		return errors.New("audit: there is no outbox to keep the record in")
	}
	k, err := signKept(l.opts.Signer, l.keyID, r, l.opts.Now())
	if err != nil {
		return err
	}
	return l.keeper.apply(ctx, &keptChange{add: &k})
}

// keptKey names a kept record by its content (body and signature): what
// the log remembers it appended, and what a removal removes.
type keptKey [32]byte

func keyOfKept(k KeptRecord) keptKey {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(k.Body)))
	h.Write(n[:])
	h.Write(k.Body)
	h.Write(k.Signature)
	var key keptKey
	h.Sum(key[:0])
	return key
}

// keeper makes one process's changes to the set of records kept for one
// log, one compare-and-set at a time: the changes asked for while a save
// runs go together in the next (as the log's writer batches records), and
// each caller learns the outcome of its own. A burst of Keeps thus costs a
// few saves and never contends with itself; only another process can
// change the set meanwhile, and a save lost to it is tried again after a
// jittered backoff.
type keeper struct {
	outbox Outbox
	logID  string

	mu      sync.Mutex
	queue   []*keptChange
	running bool // a goroutine is draining queue
}

// keptChange is one change of a set: keep add, or remove the records
// remove selects.
type keptChange struct {
	add    *KeptRecord
	remove func(KeptRecord) bool
	// Set before done is closed: the outcome, and what remove removed.
	err     error
	removed []KeptRecord
	done    chan struct{}
}

func newKeeper(outbox Outbox, logID string) *keeper {
	return &keeper{outbox: outbox, logID: logID}
}

// apply queues c and waits for its outcome, or for ctx to end (c may then
// still be saved).
func (k *keeper) apply(ctx context.Context, c *keptChange) error {
	c.done = make(chan struct{})
	k.mu.Lock()
	k.queue = append(k.queue, c)
	start := !k.running
	k.running = true
	k.mu.Unlock()
	if start {
		// Without ctx's end: the changes of other callers ride on this
		// goroutine's saves. A store call is bounded by the store's own
		// limits, and the retries by keptAttempts.
		go k.run(context.WithoutCancel(ctx))
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("audit: %w (the change to the records kept for log %s may still be saved)", ctx.Err(), k.logID)
	}
}

// run saves the queued changes, a batch at a time, until none is left.
func (k *keeper) run(ctx context.Context) {
	for {
		k.mu.Lock()
		batch := k.queue
		k.queue = nil
		if len(batch) == 0 {
			k.running = false
			k.mu.Unlock()
			return
		}
		k.mu.Unlock()
		k.save(ctx, batch)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// save applies batch to the stored set by compare and set, reading it
// again when another process changed it meanwhile, and sets the outcome
// of each change.
func (k *keeper) save(ctx context.Context, batch []*keptChange) {
	var err error
	for attempt := range keptAttempts {
		if attempt > 0 {
			time.Sleep(keptBackoff(attempt))
		}
		recs, rev, lerr := k.outbox.LoadKept(ctx, k.logID)
		if lerr != nil {
			err = fmt.Errorf("audit: reading the records kept for log %s: %w", k.logID, lerr)
			break
		}
		next, changed := applyKept(recs, batch)
		if !changed {
			return // nothing to save: each change has its outcome
		}
		_, err = k.outbox.SaveKept(ctx, k.logID, next, rev)
		if err == nil {
			return
		}
		err = fmt.Errorf("audit: saving the records kept for log %s: %w", k.logID, err)
		if !errors.Is(err, ErrKeptChanged) {
			break
		}
	}
	for _, c := range batch {
		if c.err == nil {
			c.err = err
		}
		c.removed = nil
	}
}

// keptBackoff is the wait before attempt (from 1): doubling from
// keptRetryMin up to keptRetryMax, and a random half of it, so that two
// processes that lost to each other do not try again in step.
func keptBackoff(attempt int) time.Duration {
	d := keptRetryMax
	if attempt < 8 {
		d = min(keptRetryMax, keptRetryMin<<(attempt-1))
	}
	return d/2 + rand.N(d/2)
}

// applyKept applies batch, in order, to recs and returns the set that
// results and whether it differs from recs. A record kept already is not
// kept twice; one that would take the set past its limits gets an error
// wrapping ErrKeptFull.
func applyKept(recs []KeptRecord, batch []*keptChange) ([]KeptRecord, bool) {
	size := 0
	have := make(map[keptKey]bool, len(recs))
	for _, r := range recs {
		size += len(r.Body) + len(r.Signature)
		have[keyOfKept(r)] = true
	}
	next, changed := recs, false
	for _, c := range batch {
		c.err, c.removed = nil, nil
		if c.remove != nil {
			var left []KeptRecord
			for _, r := range next {
				if c.remove(r) {
					c.removed = append(c.removed, r)
					size -= len(r.Body) + len(r.Signature)
					delete(have, keyOfKept(r))
					continue
				}
				left = append(left, r)
			}
			if len(c.removed) > 0 {
				next, changed = left, true
			}
			continue
		}
		key := keyOfKept(*c.add)
		if have[key] {
			continue
		}
		n := len(c.add.Body) + len(c.add.Signature)
		if len(next)+1 > MaxKeptRecords || size+n > MaxKeptBytes {
			c.err = fmt.Errorf("%w: it keeps %d records of %d bytes, at most %d records of %d bytes; the log appends them when it works again (restart kmsd serve once its audit log is fixed)", ErrKeptFull, len(next), size, MaxKeptRecords, MaxKeptBytes)
			continue
		}
		next = append(next, *c.add)
		have[key], size, changed = true, size+n, true
	}
	return next, changed
}

// appendKept appends the records kept for this log that it does not hold
// yet, valid ones only, and removes them from the outbox once they are
// durable. A record that fails CheckKept stays in the outbox, reported
// once by the logger (and by kmsd audit verify) until kmsd audit drop-kept
// removes it: it is not the log's to sign. It returns how many records it
// appended; an error wrapping errKeptNotRemoved says that only the removal
// failed, which the next call tries again without appending them again.
//
// Only Open and then pollKept call it, one after the other: they own
// keptAppended and keptRefused.
func (l *Log) appendKept(ctx context.Context) (int, error) {
	recs, _, err := l.opts.Outbox.LoadKept(ctx, l.keyID)
	if err != nil {
		return 0, fmt.Errorf("audit: reading the records kept for log %s: %w", l.keyID, err)
	}
	pub := l.opts.Signer.PublicKey()
	inLog := map[keptKey]bool{} // durable in the log: only their removal is left
	refused := map[keptKey]bool{}
	seen := map[keptKey]bool{}
	var fresh []KeptRecord
	var times []string
	for _, k := range recs {
		key := keyOfKept(k)
		if seen[key] {
			continue // the same record twice in the set: appended once, both removed
		}
		seen[key] = true
		if l.keptAppended[key] {
			inLog[key] = true
			continue
		}
		info, err := CheckKept(pub, l.keyID, k)
		if err != nil {
			refused[key] = true
			if !l.keptRefused[key] {
				l.opts.Logger.Error("audit: a kept record is refused and left in the store; kmsd audit drop-kept removes it", "log", l.keyID, "kept", hex.EncodeToString(key[:8]), "err", err)
			}
			continue
		}
		fresh = append(fresh, k)
		times = append(times, info.EventTime)
	}
	// Only those still in the store: the memory stays bounded by it.
	l.keptRefused = refused
	for key := range l.keptAppended {
		if !seen[key] {
			delete(l.keptAppended, key) // gone from the store all the same
		}
	}
	var todo []KeptRecord
	if len(fresh) > 0 {
		in, err := l.findKept(fresh, times)
		if err != nil {
			return 0, err
		}
		for i, k := range fresh {
			if in[i] {
				l.opts.Logger.Warn("audit: a kept record is in the log already (appended by an earlier run that could not remove it from the store, or put back in the store since): it is removed from the store, not appended again", "log", l.keyID, "kept", keyHex(k))
				key := keyOfKept(k)
				// Remembered like the records appended: a removal that
				// fails is tried again without reading the files again.
				l.keptAppended[key], inLog[key] = true, true
				continue
			}
			todo = append(todo, k)
		}
	}
	if len(todo) > 0 {
		if err := l.appendBodies(todo); err != nil {
			return 0, err
		}
		for _, k := range todo {
			key := keyOfKept(k)
			l.keptAppended[key], inLog[key] = true, true
		}
	}
	if len(inLog) == 0 {
		return 0, nil
	}
	// Durable in the log: only now may they leave the outbox.
	err = l.keeper.apply(ctx, &keptChange{remove: func(k KeptRecord) bool { return inLog[keyOfKept(k)] }})
	if err != nil {
		return len(todo), fmt.Errorf("%w: %d records are in the log but could not be removed from the store (the log removes them later, and never appends them again): %w", errKeptNotRemoved, len(inLog), err)
	}
	for key := range inLog {
		delete(l.keptAppended, key)
	}
	return len(todo), nil
}

func keyHex(k KeptRecord) string {
	key := keyOfKept(k)
	return hex.EncodeToString(key[:8])
}

// appendBodies appends the record bodies of recs, in order, and waits
// until they are durable.
func (l *Log) appendBodies(recs []KeptRecord) error {
	ps := make([]*pending, len(recs))
	for i, k := range recs {
		ps[i] = &pending{body: k.Body, done: make(chan struct{})}
	}
	var err error
	l.mu.Lock()
	switch {
	case l.failed != nil:
		err = l.failed
	case l.isClosed:
		err = ErrClosed
	default:
		l.queue = append(l.queue, ps...)
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	for _, p := range ps {
		// Not bounded by ctx: the batch is queued, and removing the
		// records from the outbox must wait for it to be durable.
		<-p.done
		if p.err != nil {
			return p.err
		}
	}
	return nil
}

// eventIDMember starts a record's eventID member. In a record line the
// last one is the record's own: the members written after it
// (encode.go) hold no object with members of their own choosing.
var eventIDMember = []byte(`"eventID":"`)

// eventIDOf returns the eventID member's value in body as written (JSON
// escapes left as they are, cut at the first quote), nil if none.
func eventIDOf(body []byte) []byte {
	i := bytes.LastIndex(body, eventIDMember)
	if i < 0 {
		return nil
	}
	rest := body[i+len(eventIDMember):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// findKept reports which of recs (times their eventTimes) the log holds
// already: appended by an earlier run that could not remove them from the
// outbox (it stopped, crashed or the store failed in between), or put back
// in the outbox after their removal. A record line holds its record's
// body after its chain members, so a kept record is in the log if a record
// line has its eventID and ends with its body.
//
// A kept record is appended after its eventTime, so into the file being
// written then or a later one: findKept reads the files from the last one
// created at or before the oldest eventTime (less keptScanSlack), usually
// the newest file or two, the whole log only for a record kept long ago.
// A copy in a file removed since is not found.
func (l *Log) findKept(recs []KeptRecord, times []string) ([]bool, error) {
	found := make([]bool, len(recs))
	byID := make(map[string][]int, len(recs))
	var since time.Time
	everyFile := false // an eventTime that does not parse: no bound
	for i, k := range recs {
		id := string(eventIDOf(k.Body))
		byID[id] = append(byID[id], i)
		t, err := time.Parse(time.RFC3339Nano, times[i])
		switch {
		case err != nil:
			everyFile = true
		case i == 0 || t.Before(since):
			since = t
		}
	}
	since = since.Add(-keptScanSlack)
	files, err := LogFiles(l.opts.Dir)
	if err != nil {
		return nil, err
	}
	first := 0
	for i := len(files) - 1; i >= 0 && !everyFile; i-- {
		if _, created, ok := parseFileName(filepath.Base(files[i])); ok && !created.After(since) {
			first = i
			break
		}
	}
	left := len(recs)
	for _, path := range files[first:] {
		if left, err = findKeptIn(path, recs, byID, found, left); err != nil {
			return nil, err
		}
		if left == 0 {
			break
		}
	}
	return found, nil
}

// findKeptIn marks in found the records of recs (byID: their indexes by
// eventIDOf) that the file at path holds, and returns how many are left
// to find.
func findKeptIn(path string, recs []KeptRecord, byID map[string][]int, found []bool, left int) (int, error) {
	err := eachCompleteLine(path, func(line []byte) bool {
		for _, i := range byID[string(eventIDOf(line))] {
			body := recs[i].Body
			if !found[i] && bytes.HasPrefix(line, []byte(`{"sequence":`)) && len(line) > len(body) &&
				line[len(line)-len(body)] == ',' && bytes.HasSuffix(line, body[1:]) {
				found[i] = true
				left--
			}
		}
		return true
	})
	if err != nil {
		return left, fmt.Errorf("audit: looking for kept records in the log: %w", err)
	}
	return left, nil
}

// pollKept appends, every Options.KeptPollInterval, the records kept for
// this log while it runs (kmsd commands keep theirs there when kmsd serve
// holds the log), until Close.
func (l *Log) pollKept() {
	defer close(l.pollDone)
	t := time.NewTicker(l.opts.KeptPollInterval)
	defer t.Stop()
	// A store call is not cut off by Close: it runs to its end, bounded by
	// the store's own limits, and Close waits for it.
	ctx := context.Background()
	for {
		select {
		case <-l.closed:
			return
		case <-t.C:
		}
		if l.Err() != nil {
			continue // a failed log appends nothing: the records stay kept
		}
		n, err := l.appendKept(ctx)
		if err != nil && !errors.Is(err, ErrClosed) {
			l.opts.Logger.Error("audit: appending kept records failed; they stay in the store", "err", err)
		}
		if n > 0 {
			l.opts.Logger.Info("audit: appended records kept in the store", "records", n)
		}
	}
}

// RefusedKept is a record kept for a log that the log refuses (CheckKept
// fails), as DropRefusedKept removed it.
type RefusedKept struct {
	// ID names the entry: the hex SHA-256 of its body's length (8 bytes,
	// big-endian), body and signature.
	ID string
	// EventID is the eventID its body claims ("" if it has none).
	EventID string
	// Reason is why the log refuses it.
	Reason string
}

// DropRefusedKept removes from outbox the records kept for the log of pub
// that the log refuses (not signed by its key, altered, not a record) —
// with eventID set, only those whose body claims that eventID — and
// returns them (none: nothing was removed). It never removes a record the
// log accepts: that is the record of a change, which the log appends (or,
// if it holds it already, only removes).
func DropRefusedKept(ctx context.Context, outbox Outbox, pub ed25519.PublicKey, eventID string) ([]RefusedKept, error) {
	logID := KeyID(pub)
	c := &keptChange{remove: func(k KeptRecord) bool {
		_, err := CheckKept(pub, logID, k)
		return err != nil && (eventID == "" || claimedEventID(k.Body) == eventID)
	}}
	if err := newKeeper(outbox, logID).apply(ctx, c); err != nil {
		return nil, err
	}
	out := make([]RefusedKept, len(c.removed))
	for i, k := range c.removed {
		key := keyOfKept(k)
		_, err := CheckKept(pub, logID, k)
		out[i] = RefusedKept{ID: hex.EncodeToString(key[:]), EventID: claimedEventID(k.Body), Reason: err.Error()}
	}
	return out, nil
}

// claimedEventID is the eventID a kept record's body claims, "" if it is
// not a JSON object with one.
func claimedEventID(body []byte) string {
	var r struct {
		EventID string `json:"eventID"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	return r.EventID
}

// AppendOne appends the one record rec to the log opts names, for a kmsd
// command that changed something (as AcceptReset does): it opens the log,
// appends rec and closes it. When the log cannot be opened, because the
// running kmsd serve holds it or for any other reason, or the append
// fails, it keeps rec in opts.Outbox instead, for the log to append (at
// once by a running kmsd serve's poll, or at its next start). It returns
// whether rec was kept rather than appended.
func AppendOne(ctx context.Context, opts Options, rec *Record) (kept bool, err error) {
	if opts.Outbox == nil {
		return false, errors.New("audit: AppendOne needs Options.Outbox")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Signer == nil {
		return false, errors.New("audit: Options.Signer is nil")
	}
	opts.KeptPollInterval = -1
	l, openErr := Open(ctx, opts)
	if openErr == nil {
		appendErr := l.Append(ctx, rec)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		closeErr := l.Close(cctx)
		cancel()
		if appendErr == nil && closeErr == nil {
			return false, nil
		}
		if appendErr == nil {
			// Durable (Append returned), though the close failed.
			return false, nil
		}
		openErr = appendErr
	}
	if err := KeepRecord(ctx, opts.Outbox, opts.Signer, rec, opts.Now()); err != nil {
		return false, fmt.Errorf("%w; keeping the record in the store failed too: %w", openErr, err)
	}
	return true, nil
}
