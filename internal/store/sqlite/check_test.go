package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/sqlite/sqlitetest"
)

// damagedDatabase writes a database with a few hundred keys, closes it
// (which checkpoints the WAL into the file), and overwrites a page of the
// keys table with garbage, as a bad disk or a torn copy would: its root
// page, which every read of the table goes through, or (deep) its last
// leaf page, which only a read of the rows it holds meets.
func damagedDatabase(t *testing.T, deep bool) string {
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
	if deep {
		sqlitetest.DamageLastLeaf(t, path, "keys")
	} else {
		sqlitetest.DamageTable(t, path, "keys")
	}
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

	for _, deep := range []bool{false, true} {
		d, err := Open(t.Context(), damagedDatabase(t, deep))
		if err != nil {
			// The damage is in a table Open does not read: it opens.
			t.Fatalf("Open of the damaged database: %v", err)
		}
		defer d.Close()
		for _, full := range []bool{false, true} {
			if err := d.Check(t.Context(), full); !errors.Is(err, store.ErrDamaged) {
				t.Errorf("check (full %v, deep %v) of a damaged database: %v, want store.ErrDamaged", full, deep, err)
			}
		}
		// Readiness reports what the check found.
		if err := d.Ping(t.Context()); !errors.Is(err, store.ErrDamaged) {
			t.Errorf("Ping of a database whose check failed (deep %v): %v", deep, err)
		}
	}
}

// TestPingReportsDamageMetAnywhere: Ping reads the first row of each
// table only, so damage deeper in a table is not what it meets itself;
// once any statement meets it, Ping reports it, and keeps reporting it
// (a later read that happens to miss the damaged page does not mend it).
func TestPingReportsDamageMetAnywhere(t *testing.T) {
	ctx := t.Context()
	d, err := Open(ctx, damagedDatabase(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("Ping before anything met the damage: %v (the test needs damage that Ping's reads miss)", err)
	}
	if _, err := d.GetKey(ctx, "00000000-0000-4000-8000-000000000000"); err != nil {
		t.Fatalf("a key on a sound page: %v", err)
	}
	_, err = d.ListAllKeys(ctx, "", 1000)
	if !isDamage(err) {
		t.Fatalf("listing every key across the damaged page: %v, want SQLITE_CORRUPT", err)
	}
	for range 2 {
		if err := d.Ping(ctx); !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("Ping after a request met the damage: %v, want store.ErrDamaged naming it", err)
		}
	}
}

// TestHealthForgetsDamageOnlyAfterAFullCheck: the damage a statement met
// is reported until a full check finds the database intact (say, it was
// restored in place); a quick check is not enough.
func TestHealthForgetsDamageOnlyAfterAFullCheck(t *testing.T) {
	ctx := t.Context()
	s := openTemp(t)
	s.health.set(errors.New("database disk image is malformed"))
	if err := s.Check(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Ping after a quick check: %v, want the damage still", err)
	}
	if err := s.Check(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after a full check found the database intact: %v", err)
	}
}
