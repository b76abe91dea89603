package pgtest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"host=/tmp/pg user=postgres dbname=postgres sslmode=disable", "host=/tmp/pg user=postgres dbname=postgres sslmode=disable dbname=kmsd_test_x"},
		{"postgres://u:p%40ss@db:5433/postgres?sslmode=disable", "postgres://u:p%40ss@db:5433/kmsd_test_x?sslmode=disable"},
		{"postgresql://db", "postgresql://db/kmsd_test_x"},
	} {
		got, err := WithDatabase(c.dsn, "kmsd_test_x")
		if err != nil || got != c.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", c.dsn, got, err, c.want)
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "kmsd_test_x" {
			t.Errorf("pgx reads %q as database %q, %v; want kmsd_test_x", got, cfg.Database, err)
		}
	}
}

// recorder is a testing.TB that records Skip and Fatal, which end its
// goroutine as they would a test's, instead of ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

// serverDSN runs ServerDSN with a recorder.
func serverDSN(t *testing.T) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ServerDSN(r)
	}()
	<-done
	return r
}

// TestWithoutServer: without the variable a test skips, and under CI fails.
func TestWithoutServer(t *testing.T) {
	t.Setenv(EnvDSN, "")
	t.Setenv("CI", "")
	r := serverDSN(t)
	if r.failed != "" || !strings.Contains(r.skipped, "test/pg/start.sh") {
		t.Errorf("locally: skipped %q, failed %q; want a skip naming test/pg/start.sh", r.skipped, r.failed)
	}
	t.Setenv("CI", "true")
	r = serverDSN(t)
	if r.skipped != "" || !strings.Contains(r.failed, EnvDSN) {
		t.Errorf("under CI: skipped %q, failed %q; want a failure naming %s", r.skipped, r.failed, EnvDSN)
	}
}

// TestDSN: each call gives an empty database of its own, dropped when its
// test ends.
func TestDSN(t *testing.T) {
	server := ServerDSN(t)
	var names []string
	t.Run("create", func(t *testing.T) {
		for range 2 {
			conn, err := pgx.Connect(t.Context(), DSN(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var name string
			var tables int
			if err := conn.QueryRow(t.Context(), `SELECT current_database(),
				(SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, DatabasePrefix) || tables != 0 {
				t.Errorf("database %s with %d tables, want an empty %s… one", name, tables, DatabasePrefix)
			}
			if _, err := conn.Exec(t.Context(), `CREATE TABLE t (x int)`); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two different ones", names)
	}
	conn, err := pgx.Connect(t.Context(), server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the databases %v remain after their test ended", left, names)
	}
}
