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
	"time"

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

// DamageLastLeaf overwrites the last leaf page of table in the SQLite
// database at path, which may be in use by a running kmsd: a page that a
// read of one row per table (the readiness probe) never reaches, and that
// only a read of the rows it holds meets. The WAL is first checkpointed
// into the file (so that the page is read from the file, not from the WAL)
// and restarted, which also makes every connection drop the pages it
// cached.
func DamageLastLeaf(tb testing.TB, path, table string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var busy, logged, done int
		if err := db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logged, &done); err != nil {
			tb.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the WAL could not be checkpointed within 10s")
		}
	}
	var pageSize, page, root int64
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		tb.Fatal(err)
	}
	if err := db.QueryRow(`SELECT MAX(pageno) FROM dbstat WHERE name = ? AND pagetype = 'leaf'`, table).Scan(&page); err != nil {
		tb.Fatal(err)
	}
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, table).Scan(&root); err != nil || page <= root {
		tb.Fatalf("table %s: last leaf page %d, root page %d (%v): the test needs a table of several pages", table, page, root, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, int(pageSize)/4), (page-1)*pageSize); err != nil {
		tb.Fatal(err)
	}
}
