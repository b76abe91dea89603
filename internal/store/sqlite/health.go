package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kmsd/kmsd/internal/store"
)

// A database can be damaged anywhere: a page that no request has read
// since kmsd started, or that a readiness probe never reads (Ping reads
// one row per table, to stay cheap). So the Store remembers the damage
// its statements meet, wherever they meet it — a request, the reaper,
// the change feed — and Ping reports it from then on: readiness then
// says what requests meet, and a load balancer stops sending requests to
// a node whose every answer would be an internal error.
//
// The damage is seen below database/sql, on the driver's connections
// (watchedConn and the statements, rows and transactions it makes), so
// that no query of the Store can forget to report it, whether its error
// comes from Prepare, Exec, a row of Next or Commit.

// health is what the Store knows of its database's damage.
type health struct {
	mu     sync.Mutex
	damage error // the first damage met, or the failed Check; nil when none
}

// isDamage reports whether err says that the database file is damaged
// (SQLITE_CORRUPT, "database disk image is malformed", and its extended
// codes) or is no database at all (SQLITE_NOTADB). Other errors (a busy
// lock, a full disk, an interrupted statement) pass by themselves.
func isDamage(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	// The primary result code is the low byte of an extended one.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// note remembers err if it is damage, and returns it unchanged.
func (h *health) note(err error) error {
	if err != nil && isDamage(err) {
		h.set(err)
	}
	return err
}

// set remembers err as the damage, unless damage was met already: the
// first is the one to report.
func (h *health) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.damage == nil {
		h.damage = err
	}
}

// err returns the damage met, as an error wrapping store.ErrDamaged, or
// nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.damage == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", store.ErrDamaged, h.damage)
}

// clear forgets the damage: a full check found the database intact
// (restored in place, say) since it was met.
func (h *health) clear() {
	h.mu.Lock()
	h.damage = nil
	h.mu.Unlock()
}

// watchedConnector opens the driver's connections wrapped in watchedConn.
type watchedConnector struct {
	driver.Connector
	h *health
}

func (c watchedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		// The DSN's pragmas run here: a file that is not a database
		// fails now.
		return nil, c.h.note(err)
	}
	return &watchedConn{Conn: conn, h: c.h}, nil
}

// watchedConn is a connection of the driver whose errors h sees. It
// forwards every optional interface the driver's connections implement
// (modernc.org/sqlite's NewConnector lists them): hiding one would make
// database/sql fall back to context-free calls.
type watchedConn struct {
	driver.Conn
	h *health
}

var (
	_ driver.ConnBeginTx        = (*watchedConn)(nil)
	_ driver.ConnPrepareContext = (*watchedConn)(nil)
	_ driver.ExecerContext      = (*watchedConn)(nil)
	_ driver.QueryerContext     = (*watchedConn)(nil)
	_ driver.Pinger             = (*watchedConn)(nil)
	_ driver.SessionResetter    = (*watchedConn)(nil)
	_ driver.Validator          = (*watchedConn)(nil)
)

// Unwrap returns the driver's connection (modernc.org/sqlite's Limit and
// the like look through a wrapper this way).
func (c *watchedConn) Unwrap() driver.Conn { return c.Conn }

func (c *watchedConn) Prepare(query string) (driver.Stmt, error) {
	s, err := c.Conn.Prepare(query)
	if err != nil {
		return nil, c.h.note(err)
	}
	return &watchedStmt{Stmt: s, h: c.h}, nil
}

func (c *watchedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	p, ok := c.Conn.(driver.ConnPrepareContext)
	if !ok {
		return c.Prepare(query)
	}
	s, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil, c.h.note(err)
	}
	return &watchedStmt{Stmt: s, h: c.h}, nil
}

func (c *watchedConn) Begin() (driver.Tx, error) {
	tx, err := c.Conn.Begin()

	if err != nil {
		return nil, c.h.note(err)
	}
	return &watchedTx{Tx: tx, h: c.h}, nil
}

func (c *watchedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.Conn.(driver.ConnBeginTx)
	if !ok {
		return c.Begin()
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, c.h.note(err)
	}
	return &watchedTx{Tx: tx, h: c.h}, nil
}

func (c *watchedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares it instead
	}
	r, err := e.ExecContext(ctx, query, args)
	return r, c.h.note(err)
}

func (c *watchedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares it instead
	}
	r, err := q.QueryContext(ctx, query, args)
	if err != nil {
		return nil, c.h.note(err)
	}
	return &watchedRows{Rows: r, h: c.h}, nil
}

func (c *watchedConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return c.h.note(p.Ping(ctx))
	}
	return nil
}

func (c *watchedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *watchedConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// watchedStmt is a prepared statement whose errors h sees.
type watchedStmt struct {
	driver.Stmt
	h *health
}

var (
	_ driver.StmtExecContext  = (*watchedStmt)(nil)
	_ driver.StmtQueryContext = (*watchedStmt)(nil)
)

func (s *watchedStmt) Exec(args []driver.Value) (driver.Result, error) {
	r, err := s.Stmt.Exec(args)
	return r, s.h.note(err)
}

func (s *watchedStmt) Query(args []driver.Value) (driver.Rows, error) {
	r, err := s.Stmt.Query(args)
	if err != nil {
		return nil, s.h.note(err)
	}
	return &watchedRows{Rows: r, h: s.h}, nil
}

func (s *watchedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.Stmt.(driver.StmtExecContext)
	if !ok {
		vs, err := positional(args)
		if err != nil {
			return nil, err
		}
		return s.Exec(vs)
	}
	r, err := e.ExecContext(ctx, args)
	return r, s.h.note(err)
}

func (s *watchedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		vs, err := positional(args)
		if err != nil {
			return nil, err
		}
		return s.Query(vs)
	}
	r, err := q.QueryContext(ctx, args)
	if err != nil {
		return nil, s.h.note(err)
	}
	return &watchedRows{Rows: r, h: s.h}, nil
}

// positional turns arguments into the values of a driver without
// contexts, as database/sql itself does for such a driver.
func positional(args []driver.NamedValue) ([]driver.Value, error) {
	vs := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("sqlite: named arguments need the driver's StmtExecContext and StmtQueryContext")
		}
		vs[i] = a.Value
	}
	return vs, nil
}

// watchedRows are rows whose errors h sees: a damaged page past the
// first is met while stepping, in Next.
type watchedRows struct {
	driver.Rows
	h *health
}

func (r *watchedRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && err != io.EOF {
		r.h.note(err)
	}
	return err
}

func (r *watchedRows) Close() error { return r.h.note(r.Rows.Close()) }

// watchedTx is a transaction whose errors h sees.
type watchedTx struct {
	driver.Tx
	h *health
}

func (t *watchedTx) Commit() error   { return t.h.note(t.Tx.Commit()) }
func (t *watchedTx) Rollback() error { return t.h.note(t.Tx.Rollback()) }
