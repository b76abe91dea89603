package backend

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/store"
)

// roundTrip writes a key to s and reads it back.
func roundTrip(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateKey(ctx, &store.Key{ID: "k1", Account: "111122223333", Region: "us-east-1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenSQLite(t *testing.T) {
	for _, typ := range []string{"", SQLite} {
		s, err := Open(t.Context(), Config{Type: typ, DataDir: t.TempDir()})
		if err != nil {
			t.Fatalf("Open(%q): %v", typ, err)
		}
		roundTrip(t, s)
	}
}

func TestOpenPostgres(t *testing.T) {
	s, err := Open(t.Context(), Config{Type: Postgres, DSN: pgtest.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(store.Notifier); !ok {
		t.Error("the postgres store is no store.Notifier")
	}
	roundTrip(t, s)
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Type: SQLite}, "data folder"},
		{Config{Type: Postgres}, "DSN"},
		{Config{Type: "mysql"}, "unknown store type"},
	} {
		if _, err := Open(t.Context(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%v) = %v, want an error mentioning %q", c.cfg, err, c.want)
		}
	}
	const secret = "S3cret-Backend"
	_, err := Open(t.Context(), Config{Type: Postgres, DSN: "host=127.0.0.1 port=1 user=kmsd password=" + secret + " connect_timeout=5"})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Open of an unreachable server = %v, want an error without the password", err)
	}
}

func TestConfigHidesDSN(t *testing.T) {
	const secret = "S3cret-Printed"
	c := Config{Type: Postgres, DSN: "host=db user=kmsd password=" + secret}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, c); strings.Contains(out, secret) {
			t.Errorf("Sprintf(%q) = %s, shows the password", format, out)
		}
	}
	if out := fmt.Sprintf("%+v", struct{ Store Config }{c}); strings.Contains(out, secret) {
		t.Errorf("a struct holding the config prints as %s, with the password", out)
	}
}
