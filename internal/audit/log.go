package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/kmsd/kmsd/internal/durable"
)

// Defaults of Options.
const (
	DefaultMaxFileBytes   = 64 << 20
	DefaultMaxFileAge     = 24 * time.Hour
	DefaultDigestEvery    = 1000
	DefaultDigestInterval = time.Minute
	// DefaultCommitDelay is Options.CommitDelay's default.
	DefaultCommitDelay = time.Millisecond
	// commitSiblings is how many records must be waiting, or have gone
	// in the last batch, for the writer to hold a batch back for
	// Options.CommitDelay: fewer means a light load, where a delay would
	// only add latency.
	commitSiblings = 4
	// DefaultKeptPollInterval is how often a running log appends the
	// records kept for it (Options.Outbox).
	DefaultKeptPollInterval = 5 * time.Second
	// anchorRetryMin and anchorRetryMax bound the wait before the
	// publisher tries again to save an anchor that failed.
	anchorRetryMin = time.Second
	anchorRetryMax = 30 * time.Second
)

// recordBufSize is the capacity a record's encoding starts with: enough
// for the usual record of a cryptographic operation, so that it is one
// allocation.
const recordBufSize = 1024

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: the log is closed")

// ErrLocked is wrapped by Open's error when another process holds the log
// (kmsd serve, while a kmsd command tries to append to it).
var ErrLocked = errors.New("the log is in use by another process")

// Options configure a Log.
type Options struct {
	// Dir holds the log files. It is created with mode 0700 if missing;
	// an existing one that group or others may write to is refused.
	Dir string
	// Signer signs the digests (required): see LoadOrCreateSigningKey.
	Signer Signer
	// Stdout, if set, receives a copy of every line written to the files
	// (records and digests), after they are durable and before Append
	// returns. A write error there fails the log like a file error.
	Stdout io.Writer
	// MaxFileBytes starts a new file before a record would take the
	// current one past this size. 0 means DefaultMaxFileBytes; negative,
	// no limit.
	MaxFileBytes int64
	// MaxFileAge starts a new file for the first record written when the
	// current file is this old (by the time in its name). 0 means
	// DefaultMaxFileAge; negative, no limit.
	MaxFileAge time.Duration
	// DigestEvery writes a digest after every this many records. 0 means
	// DefaultDigestEvery; negative, never by count.
	DigestEvery int
	// DigestInterval bounds how long a record stays unsigned: a digest is
	// written when records are waiting and this much time has passed
	// since the last one. 0 means DefaultDigestInterval; negative, never
	// by time.
	DigestInterval time.Duration
	// Now is the clock (default time.Now): event times, digest times,
	// file names and ages.
	Now func() time.Time
	// Anchors, if set, keeps the log's anchor outside its folder (see
	// Anchor): Open refuses a log that does not reach its anchor (an
	// error wrapping ErrBehindAnchor, see AcceptReset), anchors the end
	// it opened at, and each digest moves the anchor on once durable, in
	// the background.
	Anchors Anchors
	// AllowUnanchored lets Open start a log that has no anchor yet (a new
	// log, or one written before anchors existed) and anchor it. Without
	// it, Open refuses such a log (an error wrapping ErrNoAnchor) when
	// Anchors is set: a log whose anchor vanished is not trusted.
	AllowUnanchored bool
	// Sinks receive a copy of every digest once it is durable (see
	// DigestSink), in the background, in log order.
	Sinks []DigestSink
	// Logger receives what fails in the background: anchor updates and
	// digest deliveries (nil: discarded). The log keeps running: a failed
	// anchor update is tried again (after 1 s, then up to every 30 s) and
	// AnchorErr reports it until one succeeds.
	Logger *slog.Logger
	// OnAnchorSave, if set, is called by the publisher after every attempt
	// to move the anchor on, with its error (nil: saved), for a metric.
	OnAnchorSave func(err error)
	// Outbox, if set, holds the records kept for this log (see Keep):
	// Open appends them before anything else, and the running log every
	// KeptPollInterval; each leaves the outbox once durable in the log.
	Outbox Outbox
	// KeptPollInterval is how often the running log looks for kept
	// records. 0 means DefaultKeptPollInterval; negative, only at Open.
	KeptPollInterval time.Duration

	// CommitDelay trades a little latency for fewer fsyncs under load,
	// as PostgreSQL's commit_delay does: when the writer is about to
	// write a batch and at least commitSiblings (4) records are waiting
	// or went in the last batch, it first waits this long, so that the
	// records of the requests under way join the batch and share its
	// fsync. Otherwise it writes at once: a lone or light client never
	// waits. The last batch counts because a load that lingers once
	// keeps lingering: deciding on the queue alone, batch by batch,
	// alternates short and held batches, which measured worse than
	// either. On a 2-core machine at 16 requests in flight, 1 ms halves
	// the fsyncs and saves a tenth or more of the CPU per request, a
	// third at 8 in flight (docs/performance.md). 0 means
	// DefaultCommitDelay; negative, none.
	CommitDelay time.Duration

	// For tests: the most records one write takes (0: no limit; 1 is
	// fsync per record), and a hook that wraps every file opened.
	maxBatch int
	// For tests: the commit delay's timer (nil: time.After).
	commitTimer func(time.Duration) <-chan time.Time
	wrapFile    func(logFile) logFile
	// For tests: the first wait before an anchor update is tried again
	// (0: anchorRetryMin).
	anchorRetry time.Duration
}

// logFile is what the writer needs of an *os.File.
type logFile interface {
	io.Writer
	Sync() error
	Close() error
}

// Log is an append-only, hash-chained, signed audit log in a directory.
// Its methods are safe for concurrent use.
type Log struct {
	opts   Options
	keyID  string
	lock   io.Closer
	wake   chan struct{} // a record is queued
	closed chan struct{} // Close was called
	done   chan struct{} // the writer has finished; closeErr is set

	mu       sync.Mutex
	queue    []*pending
	isClosed bool
	failed   error // set once; every later Append returns it

	closeOnce sync.Once
	closeErr  error

	w writer // owned by the writer goroutine once Open returns
	// openedAt is the last record of the log Open found (0: none).
	openedAt uint64

	pub publisher

	pollDone chan struct{} // closed when pollKept has finished (or never ran)

	// keeper changes the set kept for this log in Options.Outbox (nil
	// without one): Keep's records, appendKept's removals.
	keeper *keeper
	// keptAppended are the kept records this log appended (or found in
	// its files) whose removal from the outbox has not succeeded yet:
	// never appended again.
	// keptRefused are those it refused and reported, reported once.
	// appendKept owns both (Open's call, then pollKept's).
	keptAppended map[keptKey]bool
	keptRefused  map[keptKey]bool
}

// publisher hands durable digests to the anchor and the sinks, away from
// the writer: a slow store or sink never holds up a record.
type publisher struct {
	on    bool // Options.Anchors or Options.Sinks is set
	mu    sync.Mutex
	queue []digestEvent
	wake  chan struct{}
	stop  chan struct{} // closed once no more digests will come
	done  chan struct{} // closed when the publisher goroutine has finished

	// Owned by the publisher goroutine (and Open before starting it).
	anchorRev int64  // revision of the stored anchor, 0 if none
	anchored  uint64 // its sequence

	// errMu guards anchorErr: the last anchor update's failure, nil once
	// one succeeds (AnchorErr).
	errMu     sync.Mutex
	anchorErr error
}

// digestEvent is one durable digest, for the publisher.
type digestEvent struct {
	anchor Anchor
	line   []byte
}

// pending is one Append waiting for its batch to be durable.
type pending struct {
	body []byte // the record's JSON without chain members
	seq  uint64
	prev [32]byte
	err  error
	done chan struct{} // closed by the writer once seq/prev/err are set
}

// writer is the state of the log's end. Only the writer goroutine (and
// Open, before starting it) touches it.
type writer struct {
	file       logFile // the current file, nil if none yet
	path       string
	size       int64
	created    time.Time
	hasRecord  bool     // the current file holds at least one record
	nextSeq    uint64   // sequence of the next record
	last       [32]byte // line hash of the last record, or genesis
	lastDigest [32]byte // line hash of the last digest, or genesis
	unsigned   int      // records since the last digest
	digestAt   time.Time
	endsClosed bool // the last line written is a close digest
	buf        []byte
	// unpublished are the digests appended since the last flush; flush
	// hands them to the publisher once they are durable.
	unpublished []digestEvent
	syncs       int // fsyncs of log files, for the benchmark
	lastBatch   int // records in the last batch written (linger)
}

// Open opens the log in opts.Dir for appending, continuing the chain of
// the files already there: the next record gets the last one's sequence
// plus one and its hash, in the newest file until rotation.
//
// If that log was not closed cleanly (its last line is not a close
// digest), Open repairs its end and signs it: it cuts an incomplete last
// line (a write torn by a crash, never acknowledged), removes empty files
// left at the end, and appends a recover digest that covers every record
// found and states how many bytes were cut. A line at the end that is
// complete but not a valid record or digest stops Open with an error
// rather than build on it.
//
// Only one Log may be open on a directory at a time (a lock file, .lock,
// enforces it on Unix).
//
// With Options.Anchors, Open first checks, before it changes anything,
// that the log reaches its anchor (see Anchor), and refuses it otherwise.
func Open(ctx context.Context, opts Options) (*Log, error) {
	return open(ctx, opts, false)
}

// open is Open; acceptReset skips the anchor check and leaves the anchor
// alone (AcceptReset moves it itself).
func open(ctx context.Context, opts Options, acceptReset bool) (*Log, error) {
	if opts.Dir == "" {
		return nil, errors.New("audit: Options.Dir is empty")
	}
	if opts.Signer == nil {
		return nil, errors.New("audit: Options.Signer is nil")
	}
	if len(opts.Signer.PublicKey()) != ed25519.PublicKeySize {
		return nil, errors.New("audit: the signer's public key is not an Ed25519 key")
	}
	if opts.MaxFileBytes == 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.MaxFileAge == 0 {
		opts.MaxFileAge = DefaultMaxFileAge
	}
	if opts.DigestEvery == 0 {
		opts.DigestEvery = DefaultDigestEvery
	}
	if opts.DigestInterval == 0 {
		opts.DigestInterval = DefaultDigestInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KeptPollInterval == 0 {
		opts.KeptPollInterval = DefaultKeptPollInterval
	}
	if opts.CommitDelay == 0 {
		opts.CommitDelay = DefaultCommitDelay
	}
	if opts.commitTimer == nil {
		opts.commitTimer = time.After
	}
	if acceptReset {
		opts.Anchors = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	keyID := KeyID(opts.Signer.PublicKey())
	// Checked before anything is created or repaired. Without the lock:
	// another process may be appending, but a log only grows past its
	// anchor, so the check cannot fail because of it (and the lock below
	// then refuses the second process anyway).
	anchorRev, anchored, err := checkAnchor(ctx, opts, keyID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: creating the log directory: %w", err)
	}
	fi, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o022 != 0 {
		return nil, fmt.Errorf("audit: the log directory %s has mode %04o, which lets group or others change it; run: chmod 700 %s", opts.Dir, perm, opts.Dir)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		opts:     opts,
		keyID:    keyID,
		lock:     lock,
		wake:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
		done:     make(chan struct{}),
		pollDone: make(chan struct{}),
		pub: publisher{
			on:   opts.Anchors != nil || len(opts.Sinks) > 0,
			wake: make(chan struct{}, 1),
			stop: make(chan struct{}),
			done: make(chan struct{}),

			anchorRev: anchorRev,
			anchored:  anchored,
		},
	}
	err = l.openTail()
	if err == nil && opts.Anchors != nil {
		// The end Open found (signed by the close or recover digest) is
		// durable: anchor it before serving, so that an older copy of
		// this log can never be opened in its place.
		err = publishAnchor(ctx, opts.Anchors, l.anchorOf(opts.Now().UTC().Format(time.RFC3339Nano)), &l.pub.anchorRev, &l.pub.anchored)
	}
	if err != nil {
		if l.w.file != nil {
			l.w.file.Close()
		}
		lock.Close()
		return nil, err
	}
	l.openedAt = l.w.nextSeq - 1
	if l.pub.on {
		go l.publish()
	} else {
		close(l.pub.done)
	}
	go l.run()
	if opts.Outbox == nil {
		close(l.pollDone)
		return l, nil
	}
	l.keeper = newKeeper(opts.Outbox, keyID)
	l.keptAppended = map[keptKey]bool{}
	// The records kept for this log (changes committed while it could
	// not write) come before anything else.
	n, err := l.appendKept(ctx)
	switch {
	case errors.Is(err, errKeptNotRemoved):
		// Durable in the log: the poll (or the next Open, which finds
		// them in the log) removes them; none is appended twice.
		opts.Logger.Error("audit: appending kept records: they are in the log, but still in the store", "log", keyID, "err", err)
	case err != nil:
		close(l.pollDone)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		l.Close(cctx)
		return nil, err
	}
	if n > 0 {
		opts.Logger.Warn("audit: appended the records kept in the store while the log could not write them", "records", n, "log", keyID)
	}
	if opts.KeptPollInterval > 0 {
		go l.pollKept()
	} else {
		close(l.pollDone)
	}
	return l, nil
}

// checkAnchor refuses a log that does not reach its stored anchor, or
// that has none unless opts.AllowUnanchored, and returns the anchor's
// revision and sequence (0, 0 when none is stored). It reads only.
func checkAnchor(ctx context.Context, opts Options, keyID string) (rev int64, seq uint64, err error) {
	if opts.Anchors == nil {
		return 0, 0, nil
	}
	a, rev, err := opts.Anchors.LoadAnchor(ctx, keyID)
	switch {
	case errors.Is(err, ErrNoAnchor):
		if !opts.AllowUnanchored {
			return 0, 0, fmt.Errorf("audit: the log in %s (signing key %s) has no anchor: its anchor was removed, or this log and its signing key are not the ones whose anchor is kept: %w", opts.Dir, keyID, ErrNoAnchor)
		}
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("audit: reading the log's anchor: %w", err)
	}
	if err := CheckAnchor(opts.Dir, a); err != nil {
		return 0, 0, err
	}
	return rev, a.Sequence, nil
}

// openTail loads the end of the existing log and repairs it if needed.
func (l *Log) openTail() error {
	t, err := readTail(l.opts.Dir)
	if err != nil {
		return err
	}
	w := &l.w
	w.nextSeq = t.lastSeq + 1
	w.last = t.lastHash
	w.lastDigest = t.lastDigest
	w.endsClosed = t.endsClosed
	w.digestAt = l.opts.Now()
	if t.newest == "" {
		return nil
	}
	f, err := l.openFile(t.newest, os.O_WRONLY|os.O_APPEND)
	if err != nil {
		return err
	}
	w.file, w.path, w.size, w.created, w.hasRecord = f, t.newest, t.newestSize, t.newestTime, t.newestRecord
	if t.lastSeq == 0 || (t.endsClosed && t.discarded == 0) {
		return nil
	}
	buf, err := l.appendDigest(nil, ReasonRecover, t.discarded)
	if err != nil {
		return err
	}
	return l.flush(buf)
}

func (l *Log) openFile(path string, flag int) (logFile, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if l.opts.wrapFile != nil {
		return l.opts.wrapFile(f), nil
	}
	return f, nil
}

// Append writes r to the log and returns once it is durable: written and
// fsynced with the batch of records appended concurrently (group commit),
// and copied to Options.Stdout. It fills in r's empty defaults (see
// Record) and, on success, r.Sequence and r.PrevHash.
//
// An error means the record may not be durable, and the caller must not
// act as if the request was audited (fail the request with an internal
// error). Once a write, fsync or signature has failed, the log is failed:
// this and every later Append return an error (see Err). A record too
// large or not encodable fails only its own Append. If ctx ends first,
// Append returns its error; the record may still be written.
func (l *Log) Append(ctx context.Context, r *Record) error {
	if r == nil {
		return errors.New("audit: nil record")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := r.fillDefaults(l.opts.Now()); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	// The chain members are the writer's; the body leaves them out.
	body, err := appendRecordBody(make([]byte, 0, recordBufSize), r)
	if err != nil {
		return fmt.Errorf("audit: encoding record: %w", err)
	}
	if len(body) > MaxRecordBytes {
		return fmt.Errorf("audit: record of %d bytes is larger than %d", len(body), MaxRecordBytes)
	}
	p := &pending{body: body, done: make(chan struct{})}
	l.mu.Lock()
	if l.failed != nil {
		l.mu.Unlock()
		return l.failed
	}
	if l.isClosed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // the writer is already due to look at the queue
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("audit: %w (the record may still be written)", ctx.Err())
	}
	if p.err != nil {
		return p.err
	}
	r.Sequence, r.PrevHash = p.seq, hex.EncodeToString(p.prev[:])
	return nil
}

// Err returns nil while the log is healthy, and the error that failed it
// once it has failed. A server can check it before doing any work, so that
// once auditing is broken no operation runs at all.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Close writes the records still queued, then a close digest (which marks
// a clean end: verification of a log whose last line is anything else
// reports it), fsyncs and closes the file and releases the directory. It
// returns the log's failure if it had failed. Later Appends return
// ErrClosed; a second Close returns what the first did. If ctx ends
// first, Close returns its error while the log finishes in the background.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.isClosed = true
		l.mu.Unlock()
		close(l.closed)
	})
	select {
	case <-l.done:
		return l.closeErr
	case <-ctx.Done():
		return fmt.Errorf("audit: close: %w (still flushing in the background)", ctx.Err())
	}
}

// run is the writer goroutine: it takes whatever is queued, writes it as
// one batch, and repeats; it writes time-based digests when idle; on
// Close it drains the queue and closes the log.
func (l *Log) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.DigestInterval > 0 {
		t := time.NewTicker(l.opts.DigestInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.wake:
			l.drain()
		case <-tick:
			l.idleDigest()
		case <-l.closed:
			l.drain()
			l.closeErr = l.finish()
			// The close digest's anchor and copies go out before Close
			// returns (or its context ends).
			close(l.pub.stop)
			<-l.pub.done
			// The poll's appends were drained above; its store call
			// finishes before Close returns.
			<-l.pollDone
			return
		}
	}
}

// drain writes batches until the queue is empty.
func (l *Log) drain() {
	for {
		l.linger()
		l.mu.Lock()
		batch := l.queue
		if l.opts.maxBatch > 0 && len(batch) > l.opts.maxBatch {
			batch = batch[:l.opts.maxBatch]
			l.queue = l.queue[l.opts.maxBatch:]
		} else {
			l.queue = nil
		}
		l.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		l.w.lastBatch = len(batch)
		l.writeBatch(batch)
	}
}

// linger holds the next batch back for Options.CommitDelay when at least
// commitSiblings records are waiting or went in the last batch (see
// CommitDelay), or until Close.
// A record waits for at most the delay and the fsync under way when it
// was appended, then its own batch's write and fsync.
func (l *Log) linger() {
	if l.opts.CommitDelay <= 0 {
		return
	}
	l.mu.Lock()
	n := len(l.queue)
	l.mu.Unlock()
	if n == 0 || (n < commitSiblings && l.w.lastBatch < commitSiblings) {
		return
	}
	select {
	case <-l.opts.commitTimer(l.opts.CommitDelay):
	case <-l.closed:
	}
}

// writeBatch chains, writes and fsyncs batch (one write and one fsync,
// two if a rotation falls inside it) and then tells its waiters.
func (l *Log) writeBatch(batch []*pending) {
	err := l.writeRecords(batch)
	if err != nil {
		err = l.fail(err)
	}
	for _, p := range batch {
		p.err = err
		close(p.done)
	}
}

func (l *Log) writeRecords(batch []*pending) error {
	if err := l.Err(); err != nil {
		return err
	}
	w := &l.w
	now := l.opts.Now()
	buf := w.buf[:0]
	defer func() { w.buf = buf[:0] }()
	var err error
	for i, p := range batch {
		if l.mustRotate(i == 0, now, int64(len(buf)), recordLineLen(w.nextSeq, p.body)) {
			if buf, err = l.appendDigest(buf, ReasonRotate, 0); err != nil {
				return err
			}
			if err = l.flush(buf); err != nil {
				return err
			}
			buf = buf[:0]
			err = w.file.Close()
			w.file = nil
			if err != nil {
				return fmt.Errorf("audit: closing %s: %w", w.path, err)
			}
		}
		if w.file == nil {
			if err := l.createFile(now); err != nil {
				return err
			}
		}
		start := len(buf)
		buf = appendRecordLine(buf, w.nextSeq, &w.last, p.body)
		p.seq, p.prev = w.nextSeq, w.last
		w.last = lineHash(buf[start:])
		w.nextSeq++
		w.hasRecord = true
		w.endsClosed = false
		w.unsigned++
		if l.opts.DigestEvery > 0 && w.unsigned >= l.opts.DigestEvery {
			if buf, err = l.appendDigest(buf, ReasonPeriodic, 0); err != nil {
				return err
			}
		}
	}
	if l.opts.DigestInterval > 0 && w.unsigned > 0 && now.Sub(w.digestAt) >= l.opts.DigestInterval {
		if buf, err = l.appendDigest(buf, ReasonPeriodic, 0); err != nil {
			return err
		}
	}
	return l.flush(buf)
}

// recordLineLen is the length of the line appendRecordLine makes.
func recordLineLen(seq uint64, body []byte) int64 {
	digits := 1
	for v := seq; v >= 10; v /= 10 {
		digits++
	}
	return int64(len(`{"sequence":,"prevHash":"",`) + digits + 64 + len(body) - 1 + 1)
}

// mustRotate reports whether the next record, of lineLen bytes, goes to a
// new file, pending bytes being already on their way to the current one.
// A file always keeps at least one record, so an oversized record cannot
// make rotation loop.
func (l *Log) mustRotate(first bool, now time.Time, pending, lineLen int64) bool {
	w := &l.w
	if w.file == nil || !w.hasRecord {
		return false
	}
	if first && l.opts.MaxFileAge > 0 && now.Sub(w.created) >= l.opts.MaxFileAge {
		return true
	}
	return l.opts.MaxFileBytes > 0 && w.size+pending+lineLen > l.opts.MaxFileBytes
}

// createFile starts a new file for the record numbered w.nextSeq, and
// fsyncs the directory so that the file cannot vanish in a crash along
// with the acknowledged records in it.
func (l *Log) createFile(now time.Time) error {
	w := &l.w
	path := filepath.Join(l.opts.Dir, fileName(w.nextSeq, now))
	f, err := l.openFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	if err := durable.SyncDir(l.opts.Dir); err != nil {
		f.Close()
		return fmt.Errorf("audit: syncing the log directory: %w", err)
	}
	w.file, w.path, w.size, w.created, w.hasRecord = f, path, 0, now.UTC().Truncate(time.Second), false
	return nil
}

// appendDigest appends a signed digest of the log's current end to buf.
// With no record yet, there is nothing to sign and buf is returned as is.
func (l *Log) appendDigest(buf []byte, reason string, discarded int64) ([]byte, error) {
	w := &l.w
	if w.nextSeq == 1 {
		return buf, nil
	}
	now := l.opts.Now()
	d := Digest{
		Version:        digestVersion,
		Sequence:       w.nextSeq - 1,
		Hash:           hex.EncodeToString(w.last[:]),
		PrevDigestHash: hex.EncodeToString(w.lastDigest[:]),
		Time:           now.UTC().Format(time.RFC3339Nano),
		Reason:         reason,
		DiscardedBytes: discarded,
		KeyID:          l.keyID,
	}
	sig, err := l.opts.Signer.Sign(d.SignedMessage())
	if err != nil {
		return buf, fmt.Errorf("audit: signing a digest: %w", err)
	}
	d.Signature = base64.StdEncoding.EncodeToString(sig)
	line, err := json.Marshal(struct {
		Digest *Digest `json:"digest"`
	}{&d})
	if err != nil {
		return buf, fmt.Errorf("audit: encoding a digest: %w", err)
	}
	line = append(line, '\n')
	if l.pub.on {
		w.unpublished = append(w.unpublished, digestEvent{
			anchor: Anchor{LogID: l.keyID, Sequence: d.Sequence, Hash: d.Hash, Time: d.Time},
			line:   line,
		})
	}
	w.lastDigest = lineHash(line)
	w.unsigned = 0
	w.digestAt = now
	w.endsClosed = reason == ReasonClose
	return append(buf, line...), nil
}

// flush writes buf to the current file, fsyncs it, and copies it to
// Options.Stdout.
func (l *Log) flush(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	w := &l.w
	if _, err := w.file.Write(buf); err != nil {
		return fmt.Errorf("audit: writing %s: %w", w.path, err)
	}
	w.size += int64(len(buf))
	w.syncs++
	if err := w.file.Sync(); err != nil {
		return fmt.Errorf("audit: syncing %s: %w", w.path, err)
	}
	if l.opts.Stdout != nil {
		if _, err := l.opts.Stdout.Write(buf); err != nil {
			return fmt.Errorf("audit: copying records to stdout: %w", err)
		}
	}
	if len(w.unpublished) > 0 {
		l.enqueue(w.unpublished)
		w.unpublished = nil
	}
	return nil
}

// fail marks the log failed (once) and returns the error every Append
// gets from now on.
func (l *Log) fail(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("audit: the log has failed and accepts no more records: %w", cause)
	}
	return l.failed
}

// idleDigest signs records that have waited since the last digest when
// no new record came to trigger one.
func (l *Log) idleDigest() {
	w := &l.w
	if w.unsigned == 0 || l.Err() != nil {
		return
	}
	buf, err := l.appendDigest(w.buf[:0], ReasonPeriodic, 0)
	if err == nil {
		err = l.flush(buf)
	}
	w.buf = buf[:0]
	if err != nil {
		l.fail(err)
	}
}

// finish ends the log on Close.
func (l *Log) finish() error {
	w := &l.w
	err := l.Err()
	if err == nil && w.file != nil && !w.endsClosed {
		var buf []byte
		buf, err = l.appendDigest(w.buf[:0], ReasonClose, 0)
		if err == nil {
			err = l.flush(buf)
		}
		if err != nil {
			err = l.fail(err)
		}
	}
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = l.fail(fmt.Errorf("closing %s: %w", w.path, cerr))
		}
		w.file = nil
	}
	l.lock.Close()
	return err
}
