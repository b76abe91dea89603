package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/storetest"
)

// openTemp opens a store in a new file of a temporary directory and closes
// it when the test ends.
func openTemp(t *testing.T) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "kmsd.db"))
}

func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func testKey(id string) *store.Key {
	return &store.Key{
		ID: id, Account: "111122223333", Region: "us-east-1",
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
		KeyManager: "CUSTOMER", State: "Enabled",
		Created: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		Tags:    []store.Tag{{Key: "k", Value: "v"}},
	}
}

func testMaterial(keyID string) *store.Material {
	return &store.Material{
		KeyID:   keyID,
		ID:      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
		Wrapped: []byte("wrapped material of " + keyID),
		Created: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
	}
}

// TestPragmas checks the settings of every connection of the pool.
func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	// Hold maxOpenConns connections at once, so that each is a different
	// one and each was set up by the driver from the DSN.
	conns := make([]*sql.Conn, 0, maxOpenConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range maxOpenConns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, p := range []struct {
			name string
			want string
		}{
			{"journal_mode", "wal"},
			{"synchronous", "2"}, // FULL
			{"foreign_keys", "1"},
			{"busy_timeout", fmt.Sprint(busyTimeoutMillis)},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(&got); err != nil {
				t.Fatalf("conn %d: PRAGMA %s: %v", i, p.name, err)
			}
			if got != p.want {
				t.Errorf("conn %d: %s = %s, want %s", i, p.name, got, p.want)
			}
		}
	}
}

// TestWriteTransactionsAreImmediate checks that a read-write transaction
// takes the write lock when it begins, before it writes anything.
func TestWriteTransactionsAreImmediate(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	other, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, "BEGIN IMMEDIATE; ROLLBACK")
	if err == nil {
		t.Fatal("a second writer began while a transaction of the store was open")
	}
	// Reads still go ahead (WAL).
	var n int
	if err := other.QueryRowContext(ctx, "SELECT count(*) FROM keys").Scan(&n); err != nil {
		t.Errorf("read during a write transaction: %v", err)
	}
}

// TestTwoStoresOneFile runs concurrent updates from two Stores on one file,
// as two processes would: BEGIN IMMEDIATE and the busy timeout serialize
// them without losing an update.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	a, b := openAt(t, path), openAt(t, path)
	if err := a.CreateKey(t.Context(), testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
	const perStore = 10
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		for range perStore {
			wg.Go(func() {
				_, err := s.UpdateKey(t.Context(), "k1", func(k *store.Key) error {
					k.PendingWindowDays++
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	k, err := b.GetKey(t.Context(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if k.PendingWindowDays != 2*perStore {
		t.Errorf("PendingWindowDays = %d, want %d", k.PendingWindowDays, 2*perStore)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	k := testKey("k1")
	if err := s.CreateKey(ctx, k, testMaterial("k1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAlias(ctx, &store.Alias{Account: k.Account, Region: k.Region, Name: "alias/a", KeyID: "k1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccessKey(ctx, &store.AccessKey{ID: "AKIA1", Account: k.Account, WrappedSecret: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path)
	got, err := s.GetKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(k.Created) || got.Tags[0] != k.Tags[0] {
		t.Errorf("key after reopen = %+v, want %+v", got, k)
	}
	if _, err := s.GetMaterial(ctx, "k1", testMaterial("k1").ID); err != nil {
		t.Error(err)
	}
	if _, err := s.GetAlias(ctx, k.Account, k.Region, "alias/a"); err != nil {
		t.Error(err)
	}
	if _, err := s.GetAccessKey(ctx, "AKIA1"); err != nil {
		t.Error(err)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("schema version = %d, want %d", version, len(migrations))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kmsd.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE schema_version SET version = ?", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	t.Log(err)
}

// TestUpgradeFromVersion4 builds a database at schema version 4, the last
// one without custom key stores, with a key in it, and checks that Open
// migrates it: the key keeps its fields and belongs to no custom key store,
// and custom key stores work.
func TestUpgradeFromVersion4(t *testing.T) {
	ctx := t.Context()
	path := databaseAt(t, 4,
		`INSERT INTO keys (id, account, region, state, created, expiration_model)
		VALUES ('k1', '111122223333', 'us-east-1', 'Enabled', 1, 'KEY_MATERIAL_EXPIRES')`)

	s := openAt(t, path)
	k, err := s.GetKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if k.State != "Enabled" || k.ExpirationModel != "KEY_MATERIAL_EXPIRES" || k.CustomKeyStoreID != "" {
		t.Errorf("key after the upgrade = %+v", k)
	}
	cks := &store.CustomKeyStore{ID: "cks-0123456789abcdef0", Account: k.Account, Region: k.Region,
		Name: "s", Type: "AWS_CLOUDHSM", ClusterID: "cluster-1", WrappedPassword: []byte("p")}
	if err := s.CreateCustomKeyStore(ctx, cks); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.CustomKeyStoreID = cks.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountKeysInCustomKeyStore(ctx, cks.ID); err != nil || n != 1 {
		t.Errorf("CountKeysInCustomKeyStore = %d, %v; want 1", n, err)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("schema version = %d, want %d", version, len(migrations))
	}
}

// TestNanosecondTimes checks that this backend keeps times exactly, beyond
// the millisecond the conformance suite asks for.
func TestNanosecondTimes(t *testing.T) {
	s := openTemp(t)
	k := testKey("k1")
	k.Created = time.Now() // with nanoseconds and a monotonic clock reading
	k.DeletionDate = time.Date(1700, 1, 1, 0, 0, 0, 1, time.FixedZone("X", 3600))
	if err := s.CreateKey(t.Context(), k, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetKey(t.Context(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Created != k.Created.Round(0).UTC() || got.DeletionDate != k.DeletionDate.UTC() {
		t.Errorf("times = %v, %v; want %v, %v", got.Created, got.DeletionDate, k.Created, k.DeletionDate)
	}
}

func TestTimeOutOfRange(t *testing.T) {
	s := openTemp(t)
	k := testKey("k1")
	k.DeletionDate = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	err := s.CreateKey(t.Context(), k, nil)
	if err == nil || errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateKey with a year-3000 time: %v, want a range error", err)
	}
	t.Log(err)
}

func TestPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data?#% dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "k?m#s%20d.db")
	s := openAt(t, path)
	if err := s.CreateKey(t.Context(), testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database not at the path given: %v", err)
	}
	if fi.Size() == 0 {
		t.Errorf("database file %s is empty", path)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Log(e.Name())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "kmsd.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// helperEnv names the database file TestHelperProcess writes to. It is set
// only in the child process TestDurableAfterKill starts.
const helperEnv = "KMSD_SQLITE_TEST_HELPER_DB"

// TestHelperProcess is not a real test: run as a child process by
// TestDurableAfterKill, it writes to the database, reports "ok" and waits to
// be killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	k := testKey("k1")
	if err := s.CreateKey(ctx, k, testMaterial("k1")); err != nil {
		fmt.Println("create key:", err)
		os.Exit(1)
	}
	if err := s.CreateAlias(ctx, &store.Alias{Account: k.Account, Region: k.Region, Name: "alias/durable", KeyID: "k1"}); err != nil {
		fmt.Println("create alias:", err)
		os.Exit(1)
	}
	if _, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
		k.Description = "updated before the kill"
		return nil
	}); err != nil {
		fmt.Println("update key:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
	// Wait to be killed; exit if the parent goes away and closes stdin.
	io.Copy(io.Discard, os.Stdin)
	os.Exit(2)
}

// TestDurableAfterKill kills a process with SIGKILL right after it reports
// its writes acknowledged, then finds them all in the database.
func TestDurableAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsd.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	acked := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ok" {
				acked <- nil
				return
			}
			t.Logf("child: %s", sc.Text())
		}
		acked <- fmt.Errorf("child ended without reporting ok: %v", sc.Err())
	}()
	select {
	case err = <-acked:
	case <-time.After(time.Minute):
		err = errors.New("child did not report ok within a minute")
	}
	if killErr := cmd.Process.Kill(); killErr != nil {
		t.Fatalf("kill child: %v", killErr)
	}
	waitErr := cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child: %v", waitErr)
	if fi, err := os.Stat(path + "-wal"); err == nil {
		t.Logf("WAL left behind by the killed child: %d bytes", fi.Size())
	}

	s := openAt(t, path)
	ctx := t.Context()
	k, err := s.GetKey(ctx, "k1")
	if err != nil {
		t.Fatalf("key acknowledged before the kill: %v", err)
	}
	if k.Description != "updated before the kill" {
		t.Errorf("Description = %q, want the update acknowledged before the kill", k.Description)
	}
	if _, err := s.GetMaterial(ctx, "k1", testMaterial("k1").ID); err != nil {
		t.Errorf("material acknowledged before the kill: %v", err)
	}
	if _, err := s.GetAlias(ctx, k.Account, k.Region, "alias/durable"); err != nil {
		t.Errorf("alias acknowledged before the kill: %v", err)
	}
}

// databaseAt builds, in a new folder, the database of an older kmsd: the
// schema at version (the first version migrations), holding rows (SQL
// INSERT statements). It returns the database file's path.
func databaseAt(t *testing.T, version int, rows ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kmsd.db")
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		`CREATE TABLE schema_version (
			id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL
		)`,
		fmt.Sprintf(`INSERT INTO schema_version (id, version) VALUES (1, %d)`, version),
	}
	for _, m := range migrations[:version] {
		stmts = append(stmts, m...)
	}
	for _, stmt := range append(stmts, rows...) {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("build a version %d database: %v", version, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
