package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Anchor is how far a log had durably come, kept outside the log's
// folder (kmsd keeps it in its store): the last record a durable digest
// signs and that record's line hash. A log whose folder was cut back,
// replaced by an older copy or removed no longer reaches its anchor, and
// Open refuses it. A log may be ahead of its anchor (the anchor moves
// after each digest, in the background).
type Anchor struct {
	// LogID names the log: the KeyID of its signing key.
	LogID string `json:"logId"`
	// Sequence is the last record a durable digest signs; 0 for a log
	// with no record yet.
	Sequence uint64 `json:"sequence"`
	// Hash is the hex SHA-256 of that record's line, GenesisHash when
	// Sequence is 0.
	Hash string `json:"hash"`
	// Time is the time of the digest that signed it (RFC 3339), or when
	// the anchor was set for a log with no record yet.
	Time string `json:"time"`
}

// Errors of Anchors.
var (
	// ErrNoAnchor is wrapped by LoadAnchor's error when no anchor is
	// stored for a log.
	ErrNoAnchor = errors.New("audit: no anchor is stored for this log")
	// ErrAnchorChanged is wrapped by SaveAnchor's error when the stored
	// anchor is no longer the revision given.
	ErrAnchorChanged = errors.New("audit: the anchor changed since it was read")
)

// Anchors keeps the anchors of logs outside their folders, shared by
// every process that may open a log (kmsd keeps them as settings of its
// store, so that they follow it to PostgreSQL unchanged).
type Anchors interface {
	// LoadAnchor returns the anchor of log id and its revision, or an
	// error wrapping ErrNoAnchor.
	LoadAnchor(ctx context.Context, logID string) (Anchor, int64, error)
	// SaveAnchor stores a in place of revision rev (0: none is stored
	// yet) and returns the new revision, or an error wrapping
	// ErrAnchorChanged when the stored anchor is no longer rev.
	SaveAnchor(ctx context.Context, a Anchor, rev int64) (int64, error)
}

// ErrBehindAnchor is wrapped by the error of Open (and CheckAnchor) for a
// log that does not reach its anchor.
var ErrBehindAnchor = errors.New("the audit log does not reach its anchor")

// BehindError says how a log fails to reach its anchor.
type BehindError struct {
	Dir    string
	Anchor Anchor
	// LastSequence is the last record the log holds (0: none).
	LastSequence uint64
	// Differs is true when the log holds a record with the anchor's
	// sequence whose line is not the one anchored: the log was replaced.
	Differs bool
}

func (e *BehindError) Error() string {
	at := ""
	if e.Anchor.Time != "" {
		at = " at " + e.Anchor.Time
	}
	if e.Differs {
		return fmt.Sprintf("%v: the log in %s holds a record %d, but not the one its anchor in the store names (signed%s): the log was replaced", ErrBehindAnchor, e.Dir, e.Anchor.Sequence, at)
	}
	have := "holds no record"
	if e.LastSequence > 0 {
		have = fmt.Sprintf("ends at record %d", e.LastSequence)
	}
	return fmt.Sprintf("%v: the log in %s %s, but its anchor in the store says it had reached record %d (signed%s): records were removed from its end, or it was replaced by an older copy or removed", ErrBehindAnchor, e.Dir, have, e.Anchor.Sequence, at)
}

func (e *BehindError) Unwrap() error { return ErrBehindAnchor }

// CheckAnchor reports whether the log in dir reaches a: nil when it holds
// record a.Sequence with line hash a.Hash (or a.Sequence is 0), else a
// *BehindError. It only reads.
func CheckAnchor(dir string, a Anchor) error {
	if a.Sequence == 0 {
		return nil
	}
	files, err := LogFiles(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// The file that holds record a.Sequence is the last one whose name
	// starts at or before it.
	var in string
	for _, f := range files {
		if first, _, ok := parseFileName(filepath.Base(f)); ok && first <= a.Sequence {
			in = f
		}
	}
	if in != "" {
		hash, found, err := recordHash(in, a.Sequence)
		if err != nil {
			return err
		}
		if found {
			if hex.EncodeToString(hash[:]) == a.Hash {
				return nil
			}
			return &BehindError{Dir: dir, Anchor: a, Differs: true}
		}
	}
	last, err := lastSequence(files)
	if err != nil {
		return err
	}
	return &BehindError{Dir: dir, Anchor: a, LastSequence: last}
}

// recordHash returns the line hash of record seq in the file at path.
func recordHash(path string, seq uint64) (hash [32]byte, found bool, err error) {
	err = eachCompleteLine(path, func(line []byte) bool {
		p, err := parseLine(line)
		if err != nil || p.isDigest || p.seq != seq {
			return true
		}
		hash, found = lineHash(append(line, '\n')), true
		return false
	})
	if err != nil {
		return hash, false, fmt.Errorf("audit: %w", err)
	}
	return hash, found, nil
}

// lastSequence returns the sequence of the last complete record line of
// files (0 if none), reading backwards from the end.
func lastSequence(files []string) (uint64, error) {
	for i := len(files) - 1; i >= 0; i-- {
		b, err := os.ReadFile(files[i])
		if err != nil {
			return 0, fmt.Errorf("audit: %w", err)
		}
		if j := bytes.LastIndexByte(b, '\n'); j >= 0 {
			b = b[:j]
		} else {
			continue
		}
		for len(b) > 0 {
			line := b
			if j := bytes.LastIndexByte(b, '\n'); j >= 0 {
				line, b = b[j+1:], b[:j]
			} else {
				b = nil
			}
			if p, err := parseLine(line); err == nil && !p.isDigest {
				return p.seq, nil
			}
		}
	}
	return 0, nil
}

// anchorOf is the anchor of the log's end as it now is. Only the writer
// goroutine (and Open, before starting it) calls it.
func (l *Log) anchorOf(t string) Anchor {
	w := &l.w
	return Anchor{LogID: l.keyID, Sequence: w.nextSeq - 1, Hash: hex.EncodeToString(w.last[:]), Time: t}
}

// publishAnchor moves the stored anchor on to a, unless it is already
// there or beyond. rev is the revision last read or written (updated).
func publishAnchor(ctx context.Context, anchors Anchors, a Anchor, rev *int64, at *uint64) error {
	if *rev != 0 && a.Sequence <= *at {
		return nil
	}
	for range 3 {
		next, err := anchors.SaveAnchor(ctx, a, *rev)
		if err == nil {
			*rev, *at = next, a.Sequence
			return nil
		}
		if !errors.Is(err, ErrAnchorChanged) {
			return fmt.Errorf("audit: saving the anchor of log %s at record %d: %w", a.LogID, a.Sequence, err)
		}
		// Someone else wrote it (only a process holding the log's lock
		// should): read it again and never move it backwards.
		cur, r, err := anchors.LoadAnchor(ctx, a.LogID)
		switch {
		case errors.Is(err, ErrNoAnchor):
			*rev = 0
		case err != nil:
			return fmt.Errorf("audit: reading the anchor of log %s: %w", a.LogID, err)
		default:
			*rev, *at = r, cur.Sequence
			if cur.Sequence >= a.Sequence {
				return nil
			}
		}
	}
	return fmt.Errorf("audit: saving the anchor of log %s at record %d: %w", a.LogID, a.Sequence, ErrAnchorChanged)
}

// enqueue hands durable digests to the publisher.
func (l *Log) enqueue(evs []digestEvent) {
	l.pub.mu.Lock()
	l.pub.queue = append(l.pub.queue, evs...)
	l.pub.mu.Unlock()
	select {
	case l.pub.wake <- struct{}{}:
	default:
	}
}

// publish is the publisher goroutine: it moves the anchor to the latest
// durable digest and delivers every digest to the sinks, until the
// writer has finished and nothing is left. An anchor update that fails is
// tried again after a delay (doubling from anchorRetryMin to
// anchorRetryMax), so that the anchor does not fall behind silently until
// the next digest; AnchorErr reports the failure meanwhile.
func (l *Log) publish() {
	defer close(l.pub.done)
	// A store call or a hook is not cut off by Close: it runs to its
	// end, bounded by the store's and the sink's own limits.
	ctx := context.Background()
	var (
		behind *Anchor // the latest anchor not saved yet, if its save failed
		retry  <-chan time.Time
		first  = anchorRetryMin
	)
	if l.opts.anchorRetry > 0 {
		first = l.opts.anchorRetry
	}
	delay := first
	saveAnchor := func(a Anchor) {
		err := publishAnchor(ctx, l.opts.Anchors, a, &l.pub.anchorRev, &l.pub.anchored)
		l.setAnchorErr(err)
		if err == nil {
			behind, retry, delay = nil, nil, first
			return
		}
		l.opts.Logger.Error("audit: the log's anchor could not be moved on; kmsd tries again and reports not ready until it succeeds", "sequence", a.Sequence, "retry_in", delay, "err", err)
		behind = &a
		retry = time.After(delay)
		delay = min(2*delay, anchorRetryMax)
	}
	for {
		l.pub.mu.Lock()
		evs := l.pub.queue
		l.pub.queue = nil
		l.pub.mu.Unlock()
		if len(evs) == 0 {
			select {
			case <-l.pub.wake:
				continue
			case <-retry:
				saveAnchor(*behind)
				continue
			case <-l.pub.stop:
				// The writer has finished: whatever it queued is here.
				l.pub.mu.Lock()
				n := len(l.pub.queue)
				l.pub.mu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		for _, s := range l.opts.Sinks {
			for _, ev := range evs {
				if err := s.SendDigest(ctx, ev.anchor.Sequence, ev.line); err != nil {
					l.opts.Logger.Error("audit: a digest could not be delivered to its sink", "sequence", ev.anchor.Sequence, "err", err)
				}
			}
		}
		if l.opts.Anchors != nil {
			// Only the latest digest matters: it vouches for all before it.
			saveAnchor(evs[len(evs)-1].anchor)
		}
	}
}

// setAnchorErr records the outcome of an anchor update.
func (l *Log) setAnchorErr(err error) {
	l.pub.errMu.Lock()
	l.pub.anchorErr = err
	l.pub.errMu.Unlock()
	if l.opts.OnAnchorSave != nil {
		l.opts.OnAnchorSave(err)
	}
}

// AnchorErr returns nil while the log's anchor follows it, and the error
// of the last attempt to move the anchor on while that keeps failing: the
// anchor is then behind the log, and a rollback to between the two would
// go unnoticed. It is nil again once an update succeeds (the publisher
// tries again by itself). A server reports itself not ready meanwhile.
func (l *Log) AnchorErr() error {
	l.pub.errMu.Lock()
	defer l.pub.errMu.Unlock()
	return l.pub.anchorErr
}

// ErrNothingToAccept is wrapped by AcceptReset's error when the log
// reaches its anchor.
var ErrNothingToAccept = errors.New("audit: the log reaches its anchor: there is no reset to accept")

// AcceptReset is the operator's explicit acceptance that the log in
// opts.Dir no longer reaches its anchor in opts.Anchors (its end was cut
// back, it was replaced by an older copy, or its folder was lost). It
// opens the log as it is (creating the folder if need be), appends rec
// (the record of this acceptance, which names the anchor it replaces in
// its additionalEventData), closes the log, and only then moves the anchor
// to the log's new end. It returns the anchor replaced. A log that reaches
// its anchor is left alone (an error wrapping ErrNothingToAccept), and so
// is a log without an anchor.
func AcceptReset(ctx context.Context, opts Options, rec *Record) (Anchor, error) {
	anchors := opts.Anchors
	if anchors == nil {
		return Anchor{}, errors.New("audit: AcceptReset needs Options.Anchors")
	}
	l, err := open(ctx, opts, true)
	if err != nil {
		return Anchor{}, err
	}
	closeLog := func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return l.Close(cctx)
	}
	prev, rev, err := anchors.LoadAnchor(ctx, l.keyID)
	if err == nil {
		err = CheckAnchor(opts.Dir, prev)
		if err == nil {
			err = fmt.Errorf("%w (record %d)", ErrNothingToAccept, prev.Sequence)
		} else if errors.Is(err, ErrBehindAnchor) {
			err = nil
		}
	}
	if err != nil {
		closeLog()
		return Anchor{}, err
	}
	lastBefore := l.openedAt
	if rec.AdditionalEventData == nil {
		rec.AdditionalEventData = map[string]any{}
	}
	rec.AdditionalEventData["replacedAnchor"] = map[string]any{"sequence": prev.Sequence, "hash": prev.Hash, "time": prev.Time}
	rec.AdditionalEventData["logEndFound"] = lastBefore
	if err := l.Append(ctx, rec); err != nil {
		closeLog()
		return Anchor{}, err
	}
	if err := closeLog(); err != nil {
		return Anchor{}, err
	}
	// The writer has finished (Close waited for it): its state is ours.
	end := l.anchorOf(l.opts.Now().UTC().Format(time.RFC3339Nano))
	if _, err := anchors.SaveAnchor(ctx, end, rev); err != nil {
		return Anchor{}, fmt.Errorf("audit: the reset is recorded at record %d, but moving the anchor failed (run it again): %w", rec.Sequence, err)
	}
	return prev, nil
}
