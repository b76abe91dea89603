// Package postgres is the shared backend of package store: one PostgreSQL
// database (release 15, which the tests run against) behind any number of
// kmsd nodes, reached with github.com/jackc/pgx/v5 through a connection
// pool. The contracts it keeps are those of store.Store; what follows is
// specific to this backend.
//
// # Durability and concurrency
//
// Every write is one transaction at READ COMMITTED, committed before its
// method returns. Open refuses a session whose synchronous_commit is off:
// with it on (PostgreSQL's default) a commit returns only once its WAL is
// flushed, so an acknowledged write survives kill -9 of kmsd or of the
// server. Read-modify-write methods (UpdateKey, RotateKey, ReplaceMaterial,
// UpdateCustomKeyStore) read the record with SELECT … FOR UPDATE.
//
// Every write transaction first locks the one row of the table change_seq
// (see lockChangeFeed): write transactions of every node run one at a time,
// as SQLite's do, which is what makes the change feed visible in Seq order
// and rules out deadlocks between them. Unless the DSN sets it otherwise, a
// session idle inside a transaction for 60s is ended by the server, so that
// a node that stalls there does not stop the others' writes. A transaction
// that PostgreSQL aborts anyway with a serialization failure or a deadlock
// (another client of the database may take locks in its own order) is
// retried a few times; so is one whose connection failed before it sent
// anything.
//
// # Change notifications
//
// A transaction that appends changes also runs pg_notify on the channel
// kmsd_changes, which PostgreSQL delivers when (and only if) it commits.
// Notify listens on that channel on a connection of its own (Store
// implements store.Notifier).
//
// # Schema
//
// The schema is created and upgraded by forward-only migrations (see
// schema.go) recorded in the table schema_version, applied under a
// transaction-scoped advisory lock so that nodes starting together apply
// each one once. Open refuses a database whose schema is newer than this
// code knows. The tables live in the first schema of the connection's
// search_path (public by default; set search_path in the DSN to use
// another).
//
// Times are stored as BIGINT nanoseconds since the Unix epoch (NULL for the
// zero time.Time) and come back in UTC, exact to the nanosecond; they must
// lie between the years 1678 and 2262. Tags, grant operations and grant
// constraints are JSON in TEXT columns. Identifiers and names sort in byte
// order (COLLATE "C"), whatever the database's collation, so that paging
// agrees with the SQLite backend. PostgreSQL's TEXT cannot hold a NUL
// character: a string field holding one is refused with an error.
//
// # Secrets
//
// The DSN may hold a password. No error of this package contains it: the
// errors of pgx pass through a filter that masks it (see redact).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kmsd/kmsd/internal/store"
)

// notifyChannel is the channel of LISTEN/NOTIFY that announces commits of
// changes.
const notifyChannel = "kmsd_changes"

// idleInTransactionTimeout is the idle_in_transaction_session_timeout of
// the Store's sessions when the DSN sets none. Every write transaction holds
// the change feed's lock (lockChangeFeed) until it ends, so a node that
// stalls or vanishes inside one would stop the writes of every node: the
// server ends such a session, and its lock, after this long. A transaction
// is idle only while its node runs Go code between two statements (fn of
// UpdateKey, of Update…), which takes far less.
const idleInTransactionTimeout = "60s"

// defaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout, so that an unreachable server fails Open rather than
// hanging for the operating system's TCP timeout.
const defaultConnectTimeout = 10 * time.Second

// maxAttempts is how many times a write transaction runs when PostgreSQL
// aborts it with an error that says a new attempt may succeed.
const maxAttempts = 5

// Store is a store.Store backed by one PostgreSQL database. It is safe for
// concurrent use. Create it with Open.
type Store struct {
	pool *pgxpool.Pool
	// db runs statements on the pool, masking the secrets in its errors.
	db querier
	// connConfig is what Notify's dedicated connection is made from.
	connConfig *pgx.ConnConfig
	// secrets are the strings no error may contain (see redact).
	secrets []string
	// now is the clock that dates changes and settings.
	now func() time.Time
	// tx is the transaction every method runs in, for the Store that
	// Update hands to its fn; nil for the Store Open returns.
	tx *writeTx
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// An Option configures a Store at Open.
type Option func(*Store)

// WithClock makes the Store date the changes it records and the settings it
// writes with now instead of time.Now. now must return a non-zero time
// between the years 1678 and 2262: every write fails otherwise.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// Open connects to the PostgreSQL database dsn names and brings its schema
// up to date. dsn is a libpq connection string, keyword/value
// ("host=db.example user=kmsd dbname=kmsd sslmode=verify-full") or URL
// ("postgres://kmsd@db.example/kmsd?sslmode=verify-full"), with pgxpool's
// pool_* settings allowed. The password, if the DSN holds one, appears in
// no error.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("open postgres store: empty DSN")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the DSN, masking a password only when it
		// can tell where it is: give none of it.
		return nil, errors.New("open postgres store: the DSN cannot be parsed (it is not shown, as it may hold a password): check its syntax")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransactionTimeout
	}
	s := &Store{connConfig: cfg.ConnConfig, secrets: secretsOf(cfg.ConnConfig), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", redact(err, s.secrets))
	}
	s.db = scrubbed{s.pool, s.secrets}
	if err := s.open(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", describe(cfg.ConnConfig), err)
	}
	return s, nil
}

// open checks the session's settings and migrates the schema.
func (s *Store) open(ctx context.Context) error {
	var sync string
	if err := s.db.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil {
		return err
	}
	if sync == "off" {
		return errors.New("synchronous_commit is off for this session: a write could be lost after kmsd acknowledged it; set it to on (the default) for kmsd's role or database")
	}
	return s.migrate(ctx)
}

// describe names the server and database of c for errors, without the
// password.
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if !strings.HasPrefix(host, "/") {
		host = fmt.Sprintf("%s:%d", host, c.Port)
	}
	return fmt.Sprintf("(user %s, database %s at %s)", c.User, c.Database, host)
}

// secretsOf lists the password of c as it could appear in an error: as
// given, and escaped as in a URL.
func secretsOf(c *pgx.ConnConfig) []string {
	pw := c.Password
	if pw == "" {
		return nil
	}
	var out []string
	for _, v := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), strings.TrimPrefix(url.UserPassword("", pw).String(), ":")} {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// redactedError is an error whose text had secrets masked. It still wraps
// the original error, so that errors.Is and errors.As see through it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with every secret in its text replaced by "xxxxx"; err
// itself when its text holds none. pgx's errors name the user, database
// and address but not the password; this is the guard should a message
// (pgx's or a server's) ever quote it.
func redact(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	masked := msg
	for _, s := range secrets {
		masked = strings.ReplaceAll(masked, s, "xxxxx")
	}
	if masked == msg {
		return err
	}
	return &redactedError{msg: masked, err: err}
}

// Close closes the connection pool. Methods called after Close fail.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("close postgres store: this Store is bound to a transaction of Update; close the Store Open returned")
	}
	s.pool.Close()
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.tx != nil {
		if _, err := s.tx.q.Exec(ctx, `SELECT 1`); err != nil {
			return fmt.Errorf("ping postgres: %w", err)
		}
		return nil
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", redact(err, s.secrets))
	}
	return nil
}

// querier runs statements: the pool (*pgxpool.Pool) or one transaction
// (pgx.Tx).
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// scrubbed masks the secrets in the errors of a querier. The errors worth
// masking (a failed connection attempt) come from acquiring a connection,
// which Exec and Query report directly and QueryRow through Scan;
// the rows of a query that started are read on a connection already made.
type scrubbed struct {
	q       querier
	secrets []string
}

func (s scrubbed) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := s.q.Exec(ctx, sql, args...)
	return tag, redact(err, s.secrets)
}

func (s scrubbed) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := s.q.Query(ctx, sql, args...)
	if err != nil {
		if rows != nil {
			rows.Close()
		}
		return nil, redact(err, s.secrets)
	}
	return scrubbedRows{rows, s.secrets}, nil
}

func (s scrubbed) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return scrubbedRow{s.q.QueryRow(ctx, sql, args...), s.secrets}
}

type scrubbedRow struct {
	r       pgx.Row
	secrets []string
}

func (r scrubbedRow) Scan(dest ...any) error { return redact(r.r.Scan(dest...), r.secrets) }

type scrubbedRows struct {
	pgx.Rows
	secrets []string
}

func (r scrubbedRows) Err() error { return redact(r.Rows.Err(), r.secrets) }

// q returns what reads run on: the transaction of a Store that Update bound
// to one, so that reads see its writes, else the pool.
func (s *Store) q() querier {
	if s.tx != nil {
		return s.tx.q
	}
	return s.db
}

// writeTx is an open write transaction with the time its changes are
// recorded at.
type writeTx struct {
	q querier
	// now is the transaction's time, Unix nanoseconds from the Store's
	// clock: every change it records carries it.
	now int64
	// changes counts the changes the transaction appended (those of
	// savepoints rolled back excluded): when there are any, it notifies
	// the listeners before it commits.
	changes int64
	// broken is set when undoing a failed method inside Update failed, so
	// that the transaction, which may hold part of that method's writes,
	// is never committed.
	broken error
}

// write runs fn in a write transaction and commits it when fn returns nil.
// The error of fn is returned unchanged so that callers can inspect it. A
// transaction PostgreSQL aborted with an error that a new attempt may not
// meet (see retryable) runs again, fn included, up to maxAttempts times.
//
// On a Store bound to a transaction (inside Update), fn runs in that
// transaction instead, under a savepoint that undoes its writes when it
// fails: a method that fails inside Update writes nothing, as outside, and
// fn may go on.
func (s *Store) write(ctx context.Context, fn func(tx *writeTx) error) error {
	if s.tx != nil {
		return s.tx.savepoint(ctx, fn)
	}
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || attempt == maxAttempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		// Let the transaction that won go ahead before trying again.
		backoff := time.Duration(attempt) * time.Duration(5+rand.IntN(20)) * time.Millisecond
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
	}
}

// writeOnce is one attempt of write.
func (s *Store) writeOnce(ctx context.Context, fn func(tx *writeTx) error) error {
	now, err := encodeTime(s.now())
	if err != nil {
		return fmt.Errorf("clock: %w", err)
	}
	if now == nil {
		return errors.New("clock: the zero time")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", redact(err, s.secrets))
	}
	// Rollback after Commit is a no-op; this also covers a panic in fn. It
	// must run even when ctx has ended, so that the connection goes back
	// to the pool clean, but not forever on a dead connection.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		tx.Rollback(rctx)
	}()
	wtx := &writeTx{q: scrubbed{tx, s.secrets}, now: *now}
	if err := wtx.lockChangeFeed(ctx); err != nil {
		return err
	}
	if err := fn(wtx); err != nil {
		return err
	}
	if wtx.broken != nil {
		return wtx.broken
	}
	if wtx.changes > 0 {
		// Delivered to the listeners when, and only if, the transaction
		// commits.
		if _, err := wtx.q.Exec(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil {
			return fmt.Errorf("notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", redact(err, s.secrets))
	}
	return nil
}

// lockChangeFeed takes the row lock on change_seq that orders the write
// transactions, first thing in each.
//
// Why: a Seq must become visible in Seq order (store.ChangeFeed). A plain
// sequence does not give that: two transactions can draw 10 and 11 and
// commit 11 first, and a node reading the feed then sees 11, moves past it,
// and never sees 10. Here every Seq is drawn with UPDATE change_seq SET
// seq = seq + n, under this lock, which the transaction holds until it
// ends; PostgreSQL makes a commit visible before it releases the commit's
// locks. So when a transaction draws Seq n, every transaction that drew a
// lower Seq has either committed, and is visible to every snapshot taken
// from then on, or rolled back, and its Seqs are drawn again. A reader
// whose snapshot shows Seq n therefore shows every lower Seq that will ever
// exist.
//
// Taking the lock at the start, rather than at the first change, makes
// every write transaction of every node run one at a time (as SQLite's
// do). Its cost is small, as a write transaction holds the lock until its
// commit is flushed anyway, and it rules out deadlocks between them: none
// can hold a record's lock while waiting for this one.
func (tx *writeTx) lockChangeFeed(ctx context.Context) error {
	if _, err := tx.q.Exec(ctx, `SELECT seq FROM change_seq WHERE id = 1 FOR UPDATE`); err != nil {
		return fmt.Errorf("lock the change feed: %w", err)
	}
	return nil
}

// retryable reports whether a transaction that failed with err may succeed
// when run again from the start: PostgreSQL aborted it as a serialization
// failure or a deadlock victim, or its connection failed before it sent
// anything (pgx's SafeToRetry), which also rules out a lost commit.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err)
}

// savepoint runs fn inside the transaction under a savepoint, rolled back
// to when fn fails. Savepoints nest, so Update inside Update works too.
func (tx *writeTx) savepoint(ctx context.Context, fn func(tx *writeTx) error) error {
	if tx.broken != nil {
		return tx.broken
	}
	if _, err := tx.q.Exec(ctx, `SAVEPOINT write`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	// Ending the savepoint must not depend on ctx: a savepoint left open
	// would be committed with the transaction.
	end := context.WithoutCancel(ctx)
	changes := tx.changes
	if err := fn(tx); err != nil {
		tx.changes = changes
		if _, rerr := tx.q.Exec(end, `ROLLBACK TO SAVEPOINT write`); rerr != nil {
			tx.broken = fmt.Errorf("undo a failed write inside the transaction: %w", rerr)
			return err
		}
		if _, rerr := tx.q.Exec(end, `RELEASE SAVEPOINT write`); rerr != nil {
			tx.broken = fmt.Errorf("undo a failed write inside the transaction: %w", rerr)
		}
		return err
	}
	if _, err := tx.q.Exec(end, `RELEASE SAVEPOINT write`); err != nil {
		tx.broken = fmt.Errorf("release savepoint: %w", err)
		return tx.broken
	}
	return nil
}

// Update implements store.Store: fn gets a Store bound to one write
// transaction, whose every method runs in it. fn must call tx from one
// goroutine at a time, and must not use tx once Update has returned (its
// methods then fail). When PostgreSQL aborts the transaction with a
// serialization failure or a deadlock, Update runs fn again in a new one,
// so fn must have no effect outside tx.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.write(ctx, func(tx *writeTx) error {
		bound := &Store{pool: s.pool, db: s.db, connConfig: s.connConfig, secrets: s.secrets, now: s.now, tx: tx}
		return fn(bound)
	})
}

// SQLSTATE codes classify maps.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// classify maps PostgreSQL errors onto the errors of package store: no rows
// and foreign-key violations (a referenced key is missing) to
// store.ErrNotFound, unique violations to store.ErrExists. The original
// error stays in the chain. Other errors are returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case uniqueViolation:
			return fmt.Errorf("%w (%w)", store.ErrExists, err)
		case foreignKeyViolation:
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

// encodeTime converts t to its column value: nil (NULL) for the zero time,
// otherwise Unix nanoseconds.
func encodeTime(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("time %s out of the storable range (years 1678 to 2262)", t.Format(time.RFC3339Nano))
	}
	ns := t.UnixNano()
	return &ns, nil
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
func decodeTime(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return time.Unix(0, *v).UTC()
}

// sqlLimit converts a List limit to a LIMIT parameter: nil (LIMIT NULL, no
// limit) for limit <= 0.
func sqlLimit(limit int) any {
	if limit <= 0 {
		return nil
	}
	return int64(limit)
}

// nonNilBlob returns b, or an empty slice for nil: a nil []byte would be
// bound as NULL, which the NOT NULL blob columns refuse.
func nonNilBlob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// expectOneRow returns store.ErrNotFound unless tag reports an affected row.
func expectOneRow(tag pgconn.CommandTag) error {
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
