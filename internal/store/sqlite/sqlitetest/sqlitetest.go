// Package sqlitetest is test support that reaches into a SQLite store's
// file, below the store interface: damage as a bad disk would do it.
// Tests outside internal/store reach it through backendtest, which knows
// which backend a test runs on.
package sqlitetest

import (
	"bytes"
	"database/sql"
	"os"
	"testing"

	_ "modernc.org/sqlite" // the driver the sqlite store uses
)

// DamageTable overwrites the root page of table in the closed SQLite
// database at path with garbage, as a bad disk or a torn copy would:
// every read of the table goes through that page.
func DamageTable(tb testing.TB, path, table string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		tb.Fatal(err)
	}
	var pageSize, root int64
	err = db.QueryRow(`PRAGMA page_size`).Scan(&pageSize)
	if err == nil {
		err = db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&root)
	}
	db.Close()
	if err != nil {
		tb.Fatalf("find table %s in %s: %v", table, path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, int(pageSize)/4), (root-1)*pageSize); err != nil {
		tb.Fatal(err)
	}
}
