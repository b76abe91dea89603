// Package pgtest gives tests fresh, empty PostgreSQL databases: each test
// gets a database of its own, created on the server that
// KMSD_TEST_POSTGRES_DSN names and dropped when the test ends.
//
// test/pg/start.sh starts a private server for that and prints the line
// that sets the variable. Without the variable a test skips, or fails when
// CI=true: .ci/run starts the server, so a skip there would hide a gap.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the DSN of a PostgreSQL
// server where the tests may create and drop databases (its role needs
// CREATEDB).
const EnvDSN = "KMSD_TEST_POSTGRES_DSN"

// DatabasePrefix starts the name of every database DSN creates.
const DatabasePrefix = "kmsd_test_"

const startMsg = EnvDSN + " is unset: start a test server with test/pg/start.sh (PostgreSQL 15: apt-get install postgresql) and export the line it prints"

// ServerDSN returns the DSN of the test server, skipping tb (failing it
// under CI=true) when there is none.
func ServerDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal(startMsg)
		}
		tb.Skip(startMsg)
	}
	return dsn
}

// DSN creates a new, empty database on the test server and returns a DSN
// that names it (the server's DSN with its database replaced). The database
// is dropped, with whatever connections remain, when tb ends.
func DSN(tb testing.TB) string {
	tb.Helper()
	return DSNWith(tb, "")
}

// DSNWith is DSN with options appended to CREATE DATABASE, such as
// "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" for a database whose
// default collation is not byte order.
func DSNWith(tb testing.TB, options string) string {
	tb.Helper()
	server := ServerDSN(tb)
	name := DatabasePrefix + randomSuffix(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: connect to the test server (%s): %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	// template0: nothing a test left in template1 leaks into the new one.
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8' `+options); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("pgtest: drop database %s: connect: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := WithDatabase(server, name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// WithDatabase returns dsn (a URL or keyword/value DSN) naming database
// name instead of its own.
func WithDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s as a URL: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In a keyword/value DSN the last value of a keyword wins.
	return dsn + " dbname=" + name, nil
}

// randomSuffix returns 16 random lowercase hex characters: a database name
// no other test (of this process or another) picks.
func randomSuffix(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
