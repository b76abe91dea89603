package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/store/sqlite/sqlitetest"
)

// damagedDatabase writes a database with a few hundred keys, closes it
// (which checkpoints the WAL into the file), and overwrites the root page
// of the keys table with garbage, as a bad disk or a torn copy would.
func damagedDatabase(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		k := testKey(fmt.Sprintf("%08d-0000-4000-8000-000000000000", i))
		k.Description = strings.Repeat("d", 200)
		if err := s.CreateKey(t.Context(), k, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sqlitetest.DamageTable(t, path, "keys")
	return path
}

func TestCheckFindsDamage(t *testing.T) {
	s := openTemp(t)
	if err := s.Check(t.Context(), false); err != nil {
		t.Fatalf("quick check of a sound database: %v", err)
	}
	if err := s.Check(t.Context(), true); err != nil {
		t.Fatalf("full check of a sound database: %v", err)
	}

	path := damagedDatabase(t)
	d, err := Open(t.Context(), path)
	if err != nil {
		// The damage is in a table Open does not read: it opens.
		t.Fatalf("Open of the damaged database: %v", err)
	}
	defer d.Close()
	for _, full := range []bool{false, true} {
		if err := d.Check(t.Context(), full); err == nil {
			t.Errorf("check (full %v) of a damaged database: no error", full)
		}
	}
	// Readiness sees it too: Ping reads every table.
	if err := d.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "keys") {
		t.Errorf("Ping of a damaged database: %v", err)
	}
}
