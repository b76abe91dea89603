package postgres

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/kmsd/kmsd/internal/pgtest"
)

// checkNoSecret fails unless err is an error whose text holds none of
// secrets and holds every one of want.
func checkNoSecret(t *testing.T, what string, err error, secrets []string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error", what)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error shows the password %q: %v", what, s, err)
		}
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestWrongPassword: a wrong password gives one clear error, which wraps
// the server's and shows neither password.
func TestWrongPassword(t *testing.T) {
	const role, right, wrong = "kmsd_password_test", "Right-Passw0rd", "Wr0ng-S3cret-pw"
	dsn := pgtest.DSN(t)
	admin := connect(t, dsn)
	for _, stmt := range []string{
		`DO $$ BEGIN CREATE ROLE ` + role + ` LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`ALTER ROLE ` + role + ` PASSWORD '` + right + `'`,
	} {
		if _, err := admin.Exec(t.Context(), stmt); err != nil {
			t.Fatal(err)
		}
	}
	// The server must ask this role for its password (test/pg/start.sh's
	// does), or a wrong one is no test at all.
	if _, err := Open(t.Context(), withParam(withParam(dsn, "user", role), "password", wrong)); err == nil {
		msg := "the test server lets " + role + " in with a wrong password: start it with test/pg/start.sh, whose pg_hba.conf asks that role for its password"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	} else {
		checkNoSecret(t, "Open with a wrong password", err, []string{wrong, right}, "password authentication failed", role)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("Open with a wrong password: %v does not wrap the server's invalid_password error", err)
		}
	}
}

// TestUnreachable: a server that does not answer gives one clear error,
// which wraps the cause and shows no password.
func TestUnreachable(t *testing.T) {
	const secret = "S3cret-Unreachable"
	// Nothing listens on port 1 of the loopback address.
	_, err := Open(t.Context(), "host=127.0.0.1 port=1 user=kmsd password="+secret+" dbname=kmsd sslmode=disable connect_timeout=5")
	checkNoSecret(t, "Open of an unreachable server", err, []string{secret}, "127.0.0.1", "connect")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Open of an unreachable server: %v does not wrap ECONNREFUSED", err)
	}
	_, err = Open(t.Context(), "postgres://kmsd:"+secret+"@127.0.0.1:1/kmsd?sslmode=disable&connect_timeout=5")
	checkNoSecret(t, "Open of an unreachable server (URL)", err, []string{secret}, "127.0.0.1")
	_, err = Open(t.Context(), "host="+t.TempDir()+" user=kmsd password="+secret+" dbname=kmsd")
	checkNoSecret(t, "Open of a missing socket", err, []string{secret}, "connect")
}

// TestUnparsableDSN: a DSN pgx cannot parse is refused without quoting it.
func TestUnparsableDSN(t *testing.T) {
	const secret = "S3cret:Unparsable"
	for _, dsn := range []string{
		"postgres://kmsd:" + secret + "@db.example:notaport/kmsd",
		"host=db.example password='" + secret + " dbname=kmsd",
		"host=db.example password=" + secret + " port=x",
	} {
		_, err := Open(t.Context(), dsn)
		checkNoSecret(t, "Open of an unparsable DSN", err, []string{secret, "S3cret"}, "DSN")
	}
	if _, err := Open(t.Context(), ""); err == nil {
		t.Error("Open of an empty DSN succeeded")
	}
}

// TestServerQuotesPassword: should a server's message ever quote the
// password (this fake one does, after asking for it in cleartext), the
// error masks it, here and in Notify.
func TestServerQuotesPassword(t *testing.T) {
	const secret = "Qu0ted-S3cret pw/?&"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				be := pgproto3.NewBackend(conn, conn)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
				if be.Flush() != nil {
					return
				}
				be.SetAuthType(pgproto3.AuthTypeCleartextPassword)
				msg, err := be.Receive()
				if err != nil {
					return
				}
				pw, _ := msg.(*pgproto3.PasswordMessage)
				if pw == nil {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01",
					Message: `password authentication failed for user "kmsd" (password given: ` + pw.Password + `)`})
				be.Flush()
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	escaped := strings.NewReplacer(" ", "%20", "/", "%2F", "?", "%3F", "&", "%26").Replace(secret)
	for _, dsn := range []string{
		"host=127.0.0.1 port=" + port + " user=kmsd password='" + secret + "' dbname=kmsd sslmode=disable",
		"postgres://kmsd:" + escaped + "@127.0.0.1:" + port + "/kmsd?sslmode=disable",
	} {
		_, err := Open(t.Context(), dsn)
		checkNoSecret(t, "Open", err, []string{secret, escaped}, "password authentication failed", "xxxxx")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("Open: %v does not wrap the server's error", err)
		}
	}

	// A Store whose server later quotes the password: Notify's and the
	// pool's connection attempts are masked too.
	s := openFresh(t)
	cfg := s.connConfig.Copy()
	cfg.Host, cfg.Port, cfg.Password = "127.0.0.1", uint16(mustAtoi(t, port)), secret
	cfg.TLSConfig = nil
	s.connConfig = cfg
	s.secrets = secretsOf(cfg)
	err = s.Notify(t.Context(), func() {})
	checkNoSecret(t, "Notify", err, []string{secret}, "password authentication failed")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
