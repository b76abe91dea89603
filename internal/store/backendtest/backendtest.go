// Package backendtest chooses the store tests run on: SQLite in the test's
// data folder by default, or a fresh PostgreSQL database when
// KMSD_TEST_STORE=postgres (with KMSD_TEST_POSTGRES_DSN naming the server,
// see package pgtest). .ci/run runs the service and end-to-end tests once
// on each.
package backendtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/sqlite/sqlitetest"
)

// dsnNote is the file in a test's data folder that names its database.
const dsnNote = "test-store-dsn"

// Env is the environment variable that selects the store of the tests.
const Env = "KMSD_TEST_STORE"

// Config returns the store a test with data folder dataDir uses: a new,
// empty PostgreSQL database (dropped when the test ends) when Env is
// "postgres", else the SQLite database in dataDir. Every Open of the
// returned Config opens the same store, so several services of one test
// (nodes of a cluster) can share it.
func Config(tb testing.TB, dataDir string) backend.Config {
	tb.Helper()
	switch t := os.Getenv(Env); t {
	case "", backend.SQLite:
		return backend.Config{Type: backend.SQLite, DataDir: dataDir}
	case backend.Postgres:
		// A test that restarts kmsd on its data folder finds its
		// database again through a note in the folder.
		note := filepath.Join(dataDir, dsnNote)
		dsn, err := os.ReadFile(note)
		if errors.Is(err, os.ErrNotExist) {
			dsn = []byte(pgtest.DSN(tb))
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				tb.Fatal(err)
			}
			err = os.WriteFile(note, dsn, 0o600)
		}
		if err != nil {
			tb.Fatal(err)
		}
		return backend.Config{Type: backend.Postgres, DataDir: dataDir, DSN: string(dsn)}
	default:
		tb.Fatalf("%s=%q: want %s or %s", Env, t, backend.SQLite, backend.Postgres)
		return backend.Config{}
	}
}

// Open opens the store of Config(tb, dataDir) and closes it when the test
// ends.
func Open(tb testing.TB, dataDir string) store.Store {
	tb.Helper()
	st, err := backend.Open(context.Background(), Config(tb, dataDir))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// DamageKeysTable damages the keys table of the store of data folder
// dataDir (closed), as a bad disk would. It reaches into SQLite's file: a
// test whose folder names a PostgreSQL database (Config wrote its note) is
// skipped, since that store's storage belongs to its server.
func DamageKeysTable(tb testing.TB, dataDir string) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, dsnNote)); err == nil {
		tb.Skip("damaging the store's file is a SQLite test: this test's store is a PostgreSQL database, whose storage belongs to its server")
	}
	sqlitetest.DamageTable(tb, filepath.Join(dataDir, backend.DatabaseFile), "keys")
}

// DamageKeysTableLastLeaf damages the last leaf page of the keys table of
// the store of data folder dataDir, which a running kmsd may hold open (see
// sqlitetest.DamageLastLeaf); skipped, as DamageKeysTable, on PostgreSQL.
func DamageKeysTableLastLeaf(tb testing.TB, dataDir string) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dataDir, dsnNote)); err == nil {
		tb.Skip("damaging the store's file is a SQLite test: this test's store is a PostgreSQL database, whose storage belongs to its server")
	}
	sqlitetest.DamageLastLeaf(tb, filepath.Join(dataDir, backend.DatabaseFile), "keys")
}
