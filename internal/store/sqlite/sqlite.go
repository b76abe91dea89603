// Package sqlite is the embedded backend of package store: one SQLite
// database file, opened with the pure-Go driver modernc.org/sqlite (no cgo).
//
// # Durability and concurrency
//
// Every connection runs with journal_mode=WAL, synchronous=FULL,
// foreign_keys=ON and a busy timeout, so a write is on stable storage before
// its method returns and survives kill -9 or a power loss. Readers never block
// the writer and the writer never blocks readers (WAL). Every write is one
// BEGIN IMMEDIATE transaction, and the Store lets only one of its own write
// transactions run at a time; a second process writing to the same file waits
// for the busy timeout.
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
// {"Key","Value"} objects, in the order given.
//
// # Conventions callers must know
//
//   - A limit <= 0 in ListKeys, ListAliases and ListCustomKeyStores means no
//     limit.
//   - DeleteKey returns store.ErrNotFound for a missing key.
//   - The fn given to UpdateKey must not change ID, Account or Region (an
//     error is returned and nothing is written) and must not write to the
//     Store itself: it runs inside the write transaction, so a write from fn
//     would wait for itself until its context ends. The same holds for the
//     fn given to UpdateCustomKeyStore, whose changes to ID, Account,
//     Region, Type and Created are dropped instead.
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
	// writeSlot holds one token while a write transaction of this Store
	// runs. It is a channel rather than a sync.Mutex so that a writer
	// waiting for its turn gives up when its context ends.
	writeSlot chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file (mode 0600) if
// it is missing, and brings its schema up to date. The directory must exist.
func Open(ctx context.Context, path string) (*Store, error) {
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

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, path: abs, writeSlot: make(chan struct{}, 1)}
	if err := s.checkPragmas(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	// The -wal and -shm files exist now that a connection has opened the
	// database in WAL mode. SQLite already gives them the database file's
	// permissions; tighten them anyway in case they predate this process.
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		if err := restrictPerms(p); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
		}
	}
	return s, nil
}

// Close closes the database. Methods called after Close fail.
func (s *Store) Close() error {
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

// write runs fn in a read-write (BEGIN IMMEDIATE) transaction and commits
// it when fn returns nil. Only one write of this Store runs at a time. The
// error of fn is returned unchanged so that callers can inspect it.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.writeSlot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.writeSlot }()

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Rollback after Commit is a no-op; this also covers a panic in fn.
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
