// Package backend opens the store a configuration names, so that no
// command or test outside package store names a backend directly.
package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/postgres"
	"github.com/kmsd/kmsd/internal/store/sqlite"
)

// Types of store.
const (
	SQLite   = "sqlite"   // embedded, one file in the data folder (the default)
	Postgres = "postgres" // a PostgreSQL database shared by any number of nodes
)

// DatabaseFile is the SQLite database's name in the data folder.
const DatabaseFile = "kmsd.db"

// Config names a store.
type Config struct {
	// Type is SQLite or Postgres ("" means SQLite).
	Type string
	// DataDir is the data folder; the SQLite database is DatabaseFile in it.
	DataDir string
	// DSN is the PostgreSQL connection string (keyword/value or URL) of
	// a Postgres store. It may hold a password: String and GoString leave
	// it out, and no error of Open shows it.
	DSN string
}

// String describes c without its DSN, which may hold a password.
func (c Config) String() string {
	dsn := "unset"
	if c.DSN != "" {
		dsn = "set (not shown)"
	}
	return fmt.Sprintf("{Type:%s DataDir:%s DSN:%s}", c.Type, c.DataDir, dsn)
}

// GoString is String, so that %#v does not show the DSN either.
func (c Config) GoString() string { return "backend.Config" + c.String() }

// InDataFolder reports whether the store lives in the data folder (an
// SQLite database there), rather than outside it and shared by several
// nodes: a data folder is then judged together with its database.
func (c Config) InDataFolder() bool {
	return c.Type == "" || c.Type == SQLite
}

// Open opens (creating when needed) and migrates the store cfg names.
func Open(ctx context.Context, cfg Config) (store.Store, error) {
	switch cfg.Type {
	case "", SQLite:
		if cfg.DataDir == "" {
			return nil, errors.New("open store: no data folder")
		}
		return sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
	case Postgres:
		if cfg.DSN == "" {
			return nil, errors.New("open store: type postgres needs a DSN (the PostgreSQL connection string)")
		}
		return postgres.Open(ctx, cfg.DSN)
	default:
		return nil, fmt.Errorf("open store: unknown store type %q (known: %s, %s)", cfg.Type, SQLite, Postgres)
	}
}
