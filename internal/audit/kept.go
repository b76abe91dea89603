package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
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
// A crash (or a store failure) between the append and the removal leaves
// the record in both, and the next Open appends it a second time (the same
// eventID twice): nothing is lost, and the duplicate is visible.

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
// the outbox has stored it.
func KeepRecord(ctx context.Context, outbox Outbox, signer Signer, r *Record, now time.Time) error {
	if outbox == nil {
		return errors.New("audit: there is no outbox to keep the record in")
	}
	if err := r.fillDefaults(now); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	body, err := appendRecordBody(make([]byte, 0, recordBufSize), r)
	if err != nil {
		return fmt.Errorf("audit: encoding record: %w", err)
	}
	if len(body) > MaxRecordBytes {
		return fmt.Errorf("audit: record of %d bytes is larger than %d", len(body), MaxRecordBytes)
	}
	logID := KeyID(signer.PublicKey())
	sig, err := signer.Sign(keptMessage(logID, body))
	if err != nil {
		return fmt.Errorf("audit: signing a kept record: %w", err)
	}
	k := KeptRecord{Body: body, Signature: sig}
	return updateKept(ctx, outbox, logID, func(recs []KeptRecord) []KeptRecord { return append(recs, k) })
}

// updateKept applies change to the set of log logID by compare and set,
// reading it again when another writer (a kmsd command, the log's poll)
// changed it meanwhile.
func updateKept(ctx context.Context, outbox Outbox, logID string, change func([]KeptRecord) []KeptRecord) error {
	for range 20 {
		recs, rev, err := outbox.LoadKept(ctx, logID)
		if err != nil {
			return fmt.Errorf("audit: reading the records kept for log %s: %w", logID, err)
		}
		_, err = outbox.SaveKept(ctx, logID, change(recs), rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrKeptChanged) {
			return fmt.Errorf("audit: saving the records kept for log %s: %w", logID, err)
		}
	}
	return fmt.Errorf("audit: saving the records kept for log %s: %w", logID, ErrKeptChanged)
}

// Keep keeps r in Options.Outbox, to be appended by this log's next Open
// (or its poll, if it is running): for the record of a change that is
// committed but whose Append failed, so that the change is not left
// without a record. It needs no working log file, only the outbox and the
// signing key.
func (l *Log) Keep(ctx context.Context, r *Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	return KeepRecord(ctx, l.opts.Outbox, l.opts.Signer, r, l.opts.Now())
}

// appendKept appends the records kept for this log, valid ones only, and
// removes them from the outbox once they are durable. A record that fails
// CheckKept stays in the outbox, reported by the logger (and by kmsd audit
// verify): it is not the log's to sign.
func (l *Log) appendKept(ctx context.Context) (int, error) {
	recs, _, err := l.opts.Outbox.LoadKept(ctx, l.keyID)
	if err != nil {
		return 0, fmt.Errorf("audit: reading the records kept for log %s: %w", l.keyID, err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	pub := l.opts.Signer.PublicKey()
	var good []KeptRecord
	for _, k := range recs {
		if _, err := CheckKept(pub, l.keyID, k); err != nil {
			l.opts.Logger.Error("audit: a kept record is refused and left in the store", "log", l.keyID, "err", err)
			continue
		}
		good = append(good, k)
	}
	if len(good) == 0 {
		return 0, nil
	}
	ps := make([]*pending, len(good))
	for i, k := range good {
		ps[i] = &pending{body: k.Body, done: make(chan struct{})}
	}
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
		return 0, err
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
			return 0, p.err
		}
	}
	// Durable in the log: only now may they leave the outbox.
	err = updateKept(ctx, l.opts.Outbox, l.keyID, func(recs []KeptRecord) []KeptRecord {
		var left []KeptRecord
		for _, k := range recs {
			if !containsKept(good, k) {
				left = append(left, k)
			}
		}
		return left
	})
	if err != nil {
		return len(good), fmt.Errorf("audit: %d kept records were appended to the log but could not be removed from the store (the next start appends them again): %w", len(good), err)
	}
	return len(good), nil
}

func containsKept(set []KeptRecord, k KeptRecord) bool {
	for _, s := range set {
		if bytes.Equal(s.Body, k.Body) && bytes.Equal(s.Signature, k.Signature) {
			return true
		}
	}
	return false
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
		if n, err := l.appendKept(ctx); err != nil {
			if !errors.Is(err, ErrClosed) {
				l.opts.Logger.Error("audit: appending kept records failed; they stay in the store", "err", err)
			}
		} else if n > 0 {
			l.opts.Logger.Info("audit: appended records kept in the store", "records", n)
		}
	}
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
