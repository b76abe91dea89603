// Package sqlite is the embedded backend of package store: one SQLite
// database file, opened with the pure-Go driver modernc.org/sqlite (no cgo).
// The contracts it keeps are those of store.Store; what follows is specific
// to this backend.
//
// # Durability and concurrency
//
// Every connection runs with journal_mode=WAL, synchronous=FULL,
// foreign_keys=ON, temp_store=MEMORY and a busy timeout, so a write is on stable storage before
// its method returns and survives kill -9 or a power loss. Readers never block
// the writer and the writer never blocks readers (WAL). Every write is one
// BEGIN IMMEDIATE transaction, and the Store lets only one of its own write
// transactions run at a time; a second process writing to the same file waits
// for the busy timeout. One writer at a time also makes the change feed
// visible in Seq order.
//
// Writes are group-committed: the writes that arrive while a transaction
// commits run together in the next transaction, each under a savepoint of
// its own (one failing undoes only its own writes), and one commit, one WAL
// sync, makes them all durable before any of them returns. A second process
// sharing the file is one more writer in the busy-timeout queue.
//
// A write from inside a fn (UpdateKey's, Update's, ...) to the Store itself
// rather than to the tx it was given waits for the running transaction, that
// is for itself, until its context ends.
//
// # Files and permissions
//
// Open creates the database file with mode 0600 when it is missing and
// removes group and other permission bits from the database file and its
// "-wal" and "-shm" companions. The directory that holds them should be mode
// 0700 as well; creating it is the caller's job.
//
// # Schema
//
// The schema is created and upgraded by forward-only migrations (see
// schema.go) recorded in the table schema_version. Open refuses a database
// whose schema is newer than this code knows.
//
// Times are stored as INTEGER nanoseconds since the Unix epoch (NULL for the
// zero time.Time) and come back in UTC, exact to the nanosecond; they must lie
// between the years 1678 and 2262. Tags are stored as a JSON array of
// {"Key","Value"} objects, in the order given. The Time of a change and the
// Updated time of a setting come from the Store's clock (WithClock).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kmsd/kmsd/internal/store"
)

// busyTimeoutMillis is how long a connection waits for a lock held by
// another process before failing with SQLITE_BUSY.
const busyTimeoutMillis = 5000

// maxOpenConns bounds the connection pool. One connection at a time writes;
// the others serve concurrent readers, which WAL lets run in parallel.
const maxOpenConns = 8

// Store is a store.Store backed by one SQLite database file. It is safe for
// concurrent use. Create it with Open.
type Store struct {
	db   *sql.DB
	path string
	// health is the damage the database's connections met (health.go).
	health *health
	// writeSlot holds one token while a write transaction of this Store
	// runs. It is a channel rather than a sync.Mutex so that a writer
	// waiting for its turn gives up when its context ends.
	writeSlot chan struct{}
	// group is the queue of writes waiting for the next group commit
	// (see write).
	group *writeQueue
	// now is the clock that dates changes and settings.
	now   func() time.Time
	stmts *statements
	// tx is the transaction every method runs in, for the Store that
	// Update hands to its fn; nil for the Store Open returns.
	tx *writeTx
}

var _ store.Store = (*Store)(nil)

// An Option configures a Store at Open.
type Option func(*Store)

// WithClock makes the Store date the changes it records and the settings it
// writes with now instead of time.Now. now must return a non-zero time
// between the years 1678 and 2262: every write fails otherwise, Open's
// migration included.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// Open opens the SQLite database at path, creating the file (mode 0600) if
// it is missing, and brings its schema up to date. The directory must exist.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := createPrivateFile(abs); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}

	connector, err := sqlite.NewConnector(dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	// Every connection is watched for damage (health.go), which Ping
	// then reports.
	h := &health{}
	db := sql.OpenDB(watchedConnector{Connector: connector, h: h})
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, path: abs, health: h, writeSlot: make(chan struct{}, 1), group: &writeQueue{}, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if err := s.checkPragmas(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	// The statements name tables the migrations create.
	if s.stmts, err = prepare(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	// The -wal and -shm files exist now that a connection has opened the
	// database in WAL mode. SQLite already gives them the database file's
	// permissions; tighten them anyway in case they predate this process.
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		if err := restrictPerms(p); err != nil {
			s.stmts.close()
			db.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
		}
	}
	return s, nil
}

// Close closes the database. Methods called after Close fail.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("close sqlite store: this Store is bound to a transaction of Update; close the Store Open returned")
	}
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite store %s: %w", s.path, err)
	}
	return nil
}

// dsn builds the modernc.org/sqlite data source name for the database file
// at the absolute path abs. The pragmas are applied by the driver to every
// new connection of the pool. _txlock=immediate makes every read-write
// transaction start with BEGIN IMMEDIATE, so it takes the write lock before
// its first read and cannot fail halfway with a lock-upgrade conflict.
func dsn(abs string) string {
	// A "file:" URI lets SQLite decode percent escapes, so a path holding
	// '?', '#' or '%' still names the right file.
	u := url.URL{Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	// Statement and savepoint journals (every write of a group commit
	// runs under a savepoint) in memory rather than in temporary files:
	// they only ever undo a part of an open transaction, so they need no
	// durability, and as files they cost a write system call per page.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// createPrivateFile creates an empty file at path with mode 0600, whatever
// the umask, unless a file is already there.
func createPrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return nil
}

// restrictPerms removes group and other permission bits from the file at
// path, if it exists.
func restrictPerms(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
		return fmt.Errorf("restrict permissions of %s: %w", path, err)
	}
	return nil
}

// checkPragmas verifies on one connection that the driver applied the
// pragmas of the DSN. journal_mode=WAL can silently fail (for instance on a
// file system without shared memory), and the durability promise of the
// store rests on these settings.
func (s *Store) checkPragmas(ctx context.Context) error {
	var mode string
	var sync, fk int
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	const syncFull = 2
	if mode != "wal" || sync != syncFull || fk != 1 {
		return fmt.Errorf("pragmas not in effect: journal_mode=%s synchronous=%d foreign_keys=%d, want wal, 2 (FULL), 1", mode, sync, fk)
	}
	return nil
}

// querier runs statements: the connection pool (*sql.DB) or one
// transaction (*sql.Tx).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q returns what reads run on: the transaction of a Store that Update bound
// to one, so that reads see its writes, else the pool.
func (s *Store) q() querier {
	if s.tx != nil {
		return s.tx.Tx
	}
	return s.db
}

// prepared returns st ready to run where s reads: st itself on the pool, or
// st bound to the transaction of a bound Store.
func (s *Store) prepared(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	if s.tx != nil {
		return s.tx.StmtContext(ctx, st)
	}
	return st
}

// writeTx is an open write transaction with the time its changes are
// recorded at.
type writeTx struct {
	*sql.Tx
	stmts *statements
	// now is the time of the write running in the transaction, Unix
	// nanoseconds from the Store's clock: every change it records carries
	// it. Each write of a group commit has its own.
	now int64
	// broken is set when undoing a failed write inside the transaction
	// failed, so that the transaction, which may hold part of that write,
	// is never committed.
	broken error
}

// prepared returns st bound to the transaction.
func (tx *writeTx) prepared(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	return tx.StmtContext(ctx, st)
}

// maxGroup bounds how many writes one group commit takes, so that a writer
// that arrives during a long queue still gets its turn soon.
const maxGroup = 128

// writeReq is one write waiting for a group commit.
type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *writeTx) error
	err  error
	pval any           // what fn panicked with, re-raised in the caller
	done chan struct{} // closed once err (or pval) is final
}

// write runs fn in a read-write (BEGIN IMMEDIATE) transaction and returns
// once that transaction has committed, durably, or fn's writes are undone.
// The error of fn is returned unchanged so that callers can inspect it.
//
// Writes are group-committed: the writes of this Store that wait while a
// transaction commits run together in the next one, each fn under a
// savepoint of its own, and one commit (one WAL sync) covers them all. A
// write whose fn fails is rolled back to its savepoint and returns its
// error; the others are committed. A write waits for the transaction
// running when it arrived and then its own group (behind more than
// maxGroup waiting writes, for the groups ahead of it too). A write sees
// the uncommitted writes of the group's earlier writes, as it would have
// seen them committed had it come a moment later; if the commit fails,
// every write of the group fails with it. fn gets a
// context that is not cancelled with ctx: SQLite rolls back the whole
// transaction when a write statement inside it is interrupted, which would
// undo the other writes of the group. ctx is checked before fn starts; once
// fn runs, write waits for its outcome.
//
// On a Store bound to a transaction (inside Update), fn runs in that
// transaction instead, under a savepoint that undoes its writes when it
// fails: a method that fails inside Update writes nothing, as outside, and
// fn may go on.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *writeTx) error) error {
	if s.tx != nil {
		return s.tx.savepoint(ctx, fn)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.group.mu.Lock()
	s.group.queue = append(s.group.queue, req)
	s.group.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.result()
		case s.writeSlot <- struct{}{}:
			// This goroutine leads: it commits the writes queued so far,
			// its own among them unless the queue is longer than a group.
			s.lead()
		case <-ctx.Done():
			if s.group.withdraw(req) {
				return ctx.Err()
			}
			// A leader has taken it: its outcome is coming.
			<-req.done
			return req.result()
		}
	}
}

func (r *writeReq) result() error {
	if r.pval != nil {
		panic(r.pval)
	}
	return r.err
}

// writeQueue holds the writes waiting for a group commit.
type writeQueue struct {
	mu    sync.Mutex
	queue []*writeReq
}

// withdraw removes r from the queue, unless a leader took it already.
func (q *writeQueue) withdraw(r *writeReq) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.Index(q.queue, r); i >= 0 {
		q.queue = slices.Delete(q.queue, i, i+1)
		return true
	}
	return false
}

// take removes up to maxGroup writes from the front of the queue.
func (q *writeQueue) take() []*writeReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.queue), maxGroup)
	if n == 0 {
		return nil
	}
	group := slices.Clone(q.queue[:n])
	// A fresh slice for the rest, so that the taken requests are not kept
	// reachable by the queue's backing array.
	q.queue = slices.Clone(q.queue[n:])
	return group
}

// lead commits one group holding the write slot, and gives the slot back
// however commitGroup ends.
func (s *Store) lead() {
	defer func() { <-s.writeSlot }()
	s.commitGroup()
}

// commitGroup runs one group of queued writes in one transaction and
// commits it. The caller holds the write slot.
func (s *Store) commitGroup() {
	group := s.group.take()
	if len(group) == 0 {
		return
	}
	done := false
	defer func() {
		if done {
			return
		}
		// A fn ended its goroutine (runtime.Goexit, as t.FailNow does),
		// which recover does not stop; the transaction was rolled back
		// by runGroup's deferred Rollback. The group's other writers
		// must not wait forever.
		for _, r := range group {
			if r.err == nil && r.pval == nil {
				r.err = errors.New("a write of the same group commit ended its goroutine; nothing was committed")
			}
			close(r.done)
		}
	}()
	err := s.runGroup(group)
	for _, r := range group {
		if r.err == nil && r.pval == nil {
			r.err = err
		}
		close(r.done)
	}
	done = true
}

// runGroup runs the writes of group in one transaction and commits it if
// any of them succeeded. It sets the err of each write that failed by
// itself, and returns the error of the transaction, which is every other
// write's.
func (s *Store) runGroup(group []*writeReq) error {
	// The transaction belongs to no single write: no caller's context may
	// end it (database/sql rolls back a transaction whose context ends).
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Rollback after Commit is a no-op; this also covers a panic.
	defer tx.Rollback()
	wtx := &writeTx{Tx: tx, stmts: s.stmts}
	ok := 0
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		now, err := encodeTime(s.now())
		switch {
		case err != nil:
			r.err = fmt.Errorf("clock: %w", err)
			continue
		case !now.Valid:
			r.err = errors.New("clock: the zero time")
			continue
		}
		wtx.now = now.Int64
		ctx := context.WithoutCancel(r.ctx)
		if len(group) == 1 {
			// Alone: no savepoint needed, the transaction is the write.
			r.run(ctx, wtx)
		} else {
			wtx.runUnderSavepoint(ctx, r)
		}
		if wtx.broken != nil {
			return wtx.broken
		}
		if r.err == nil && r.pval == nil {
			ok++
		}
	}
	if ok == 0 {
		return nil // nothing to commit; the deferred Rollback ends it
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// run calls r.fn, catching a panic for the caller to re-raise. A write
// whose context ended while fn ran fails even if fn succeeded: it must not
// be committed (the store's contract for a transaction whose context ends
// before it commits).
func (r *writeReq) run(ctx context.Context, tx *writeTx) {
	defer func() {
		if p := recover(); p != nil {
			r.pval = p
		}
	}()
	r.err = r.fn(ctx, tx)
	if r.err == nil {
		r.err = r.ctx.Err()
	}
}

// runUnderSavepoint runs r under a savepoint of its own, undone when it
// fails or panics, so that it leaves nothing behind for the group's commit.
// The savepoint's name differs from the one the methods of Update's tx use,
// so that rolling back to it also undoes any they left open in a panic.
func (tx *writeTx) runUnderSavepoint(ctx context.Context, r *writeReq) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT grp`); err != nil {
		tx.broken = fmt.Errorf("savepoint: %w", err)
		return
	}
	r.run(ctx, tx)
	if tx.broken != nil {
		return
	}
	if r.err != nil || r.pval != nil {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO grp`); err != nil {
			tx.broken = fmt.Errorf("undo a failed write of a group commit: %w", err)
			return
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE grp`); err != nil {
		tx.broken = fmt.Errorf("release savepoint: %w", err)
	}
}

// savepoint runs fn inside the transaction under a savepoint, rolled back
// to when fn fails. Savepoints nest, so Update inside Update works too. fn
// gets a context that ctx's end does not cancel (see write).
func (tx *writeTx) savepoint(ctx context.Context, fn func(ctx context.Context, tx *writeTx) error) error {
	if tx.broken != nil {
		return tx.broken
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Neither fn's statements nor ending the savepoint may depend on
	// ctx: an interrupted write rolls back the whole transaction, and a
	// savepoint left open would be committed with it.
	end := context.WithoutCancel(ctx)
	if _, err := tx.ExecContext(end, `SAVEPOINT write`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := fn(end, tx); err != nil {
		if _, rerr := tx.ExecContext(end, `ROLLBACK TO write`); rerr != nil {
			tx.broken = fmt.Errorf("undo a failed write inside the transaction: %w", rerr)
			return err
		}
		if _, rerr := tx.ExecContext(end, `RELEASE write`); rerr != nil {
			tx.broken = fmt.Errorf("undo a failed write inside the transaction: %w", rerr)
		}
		return err
	}
	if _, err := tx.ExecContext(end, `RELEASE write`); err != nil {
		tx.broken = fmt.Errorf("release savepoint: %w", err)
		return tx.broken
	}
	return nil
}

// Update implements store.Store: fn gets a Store bound to one write
// transaction, whose every method runs in it. fn must call tx from one
// goroutine at a time, and must not use tx once Update has returned (its
// methods then fail).
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.write(ctx, func(_ context.Context, tx *writeTx) error {
		bound := &Store{db: s.db, path: s.path, health: s.health, now: s.now, stmts: s.stmts, tx: tx}
		return fn(bound)
	})
}

// classify maps SQLite errors onto the errors of package store: no rows and
// foreign-key failures (a referenced key is missing) to store.ErrNotFound,
// primary-key and unique violations to store.ErrExists. The original error
// stays in the chain. Other errors are returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w (%w)", store.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w (%w)", store.ErrNotFound, err)
		}
	}
	return err
}

// Times are stored as nanoseconds since the Unix epoch, which int64 holds
// for the years 1678 to 2262.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encodeTime converts t to its column value: NULL for the zero time,
// otherwise Unix nanoseconds.
func encodeTime(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return sql.NullInt64{}, fmt.Errorf("time %s out of the storable range (years 1678 to 2262)", t.Format(time.RFC3339Nano))
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}, nil
}

// boundTime converts t to Unix nanoseconds for a comparison in a query,
// clamping it to the storable range.
func boundTime(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// decodeTime is the inverse of encodeTime; the result is in UTC.
func decodeTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

// sqlLimit converts a List limit to SQLite's LIMIT, where -1 means none.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
