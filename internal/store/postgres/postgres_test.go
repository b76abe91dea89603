package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/storetest"
)

// openAt opens a Store on the database dsn names and closes it when the
// test ends.
func openAt(t *testing.T, dsn string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openFresh opens a Store on a new, empty database.
func openFresh(t *testing.T) *Store {
	t.Helper()
	return openAt(t, pgtest.DSN(t))
}

// connect opens a plain connection to the database dsn names, for the
// tests to look behind the Store's back.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
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

// TestMigrateConcurrently opens 8 Stores at the same moment on an empty
// database: the advisory lock lets one migrate while the others wait, so
// every Open succeeds and the schema is applied once.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 8
	start := make(chan struct{})
	errs := make(chan error, n)
	stores := make(chan *Store, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			s, err := Open(t.Context(), dsn)
			if err != nil {
				errs <- err
				return
			}
			stores <- s
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	close(stores)
	for s := range stores {
		s.Close()
	}
	for err := range errs {
		t.Errorf("concurrent Open: %v", err)
	}

	conn := connect(t, dsn)
	var version, seqRows, prunedRows int
	if err := conn.QueryRow(t.Context(), `SELECT version FROM schema_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("schema version = %d, want %d", version, len(migrations))
	}
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM change_seq), (SELECT count(*) FROM changes_pruned)`).
		Scan(&seqRows, &prunedRows); err != nil {
		t.Fatal(err)
	}
	if seqRows != 1 || prunedRows != 1 {
		t.Errorf("change_seq has %d rows and changes_pruned %d, want 1 each", seqRows, prunedRows)
	}
}

// TestNewerSchemaRefused: a database a newer kmsd migrated is refused with
// ErrSchemaTooNew, and left as it is.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn := connect(t, dsn)
	if _, err := conn.Exec(t.Context(), `UPDATE schema_version SET version = $1`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprint(len(migrations)+1)) {
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew naming version %d", err, len(migrations)+1)
	}
	t.Log(err)
	var version int
	if err := conn.QueryRow(t.Context(), `SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations)+1 {
		t.Errorf("schema version after the refusal = %d, %v; want %d", version, err, len(migrations)+1)
	}
}

// TestReopen: a second Open of a migrated database applies nothing and
// finds the data.
func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(t.Context(), testKey("k1"), testMaterial("k1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, dsn)
	if _, err := s.GetMaterial(t.Context(), "k1", testMaterial("k1").ID); err != nil {
		t.Error(err)
	}
	if n, err := s.LastChange(t.Context()); err != nil || n != 2 {
		t.Errorf("LastChange = %d, %v; want 2", n, err)
	}
}

// TestFeedOrderUnderConcurrentWriters: two Stores on one database, as two
// nodes, write from 8 goroutines while a reader follows the feed from
// alternating Stores. Every page the reader gets must follow its last Seq,
// and what it collected must be the whole feed: a change whose Seq became
// visible after a higher one would be skipped by the reader for good.
func TestFeedOrderUnderConcurrentWriters(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openAt(t, dsn), openAt(t, dsn)
	ctx := t.Context()
	const writers, writes = 8, 50
	for i := range writers {
		if err := a.CreateKey(ctx, testKey(fmt.Sprintf("k%d", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	last, err := a.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var seen []store.Change
	readerErr := make(chan error, 1)
	go func() {
		after := last
		stores := []*Store{a, b}
		for i := 0; ; i++ {
			finished := false
			select {
			case <-done:
				finished = true // one more read, after every write
			default:
			}
			cs, err := stores[i%2].Changes(ctx, after, 7)
			if err != nil {
				readerErr <- err
				return
			}
			for _, c := range cs {
				if c.Seq <= after {
					readerErr <- fmt.Errorf("Seq %d after %d", c.Seq, after)
					return
				}
				after = c.Seq
			}
			seen = append(seen, cs...)
			if finished && len(cs) == 0 {
				readerErr <- nil
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range writers {
		s := []*Store{a, b}[w%2]
		id := fmt.Sprintf("k%d", w)
		wg.Go(func() {
			for range writes {
				if _, err := s.UpdateKey(ctx, id, func(k *store.Key) error {
					k.PendingWindowDays++
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatalf("reader: %v", err)
	}

	all, err := b.Changes(ctx, last, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*writes {
		t.Errorf("%d changes, want %d", len(all), writers*writes)
	}
	if !slices.Equal(seen, all) {
		t.Errorf("the reader following the feed collected %d changes, the feed holds %d: a Seq became visible after a higher one", len(seen), len(all))
	}
	for i := range writers {
		k, err := a.GetKey(ctx, fmt.Sprintf("k%d", i))
		if err != nil || k.PendingWindowDays != writes || k.Revision != writes+1 {
			t.Errorf("key k%d = %+v, %v; want %d updates", i, k, err, writes)
		}
	}
}

// TestNotify: a commit on one Store wakes a listener on another within a
// bounded time; a write that appends no change does not; Notify returns
// nil when its context ends.
func TestNotify(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openAt(t, dsn), openAt(t, dsn)
	ctx, cancel := context.WithCancel(t.Context())
	wakes := make(chan struct{}, 100)
	result := make(chan error, 1)
	go func() {
		result <- a.Notify(ctx, func() { wakes <- struct{}{} })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case err := <-result:
			t.Fatalf("%s: Notify returned %v", what, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no wake within 10s", what)
		}
	}
	wait("listening")

	start := time.Now()
	if err := b.CreateKey(t.Context(), testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
	wait("CreateKey on the other Store")
	t.Logf("woken %v after the commit began", time.Since(start))

	// A failed write and a write without changes announce nothing.
	if err := b.CreateKey(t.Context(), testKey("k1"), nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateKey of a taken ID: %v", err)
	}
	if err := b.PutImportParams(t.Context(), &store.ImportParams{KeyID: "k1", ID: "p1", WrappedPrivateKey: []byte("w")}); err != nil {
		t.Fatal(err)
	}
	// A commit after them is announced; had they been, their wakes would
	// be queued first.
	if err := b.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.PutSetting(t.Context(), "s", []byte("v"), 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wait("Update on the other Store")
	// The notification of the setting is the only one: give a stray one
	// the time to arrive.
	select {
	case <-wakes:
		t.Error("a write that appended no change woke the listener")
	case <-time.After(200 * time.Millisecond):
	}

	cancel()
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("Notify after its context ended: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not return within 10s of its context ending")
	}
}

// TestNotifyConnectionLost: Notify returns an error when its connection
// ends under it.
func TestNotifyConnectionLost(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openAt(t, dsn)
	wakes := make(chan struct{}, 10)
	result := make(chan error, 1)
	go func() { result <- s.Notify(t.Context(), func() { wakes <- struct{}{} }) }()
	select {
	case <-wakes:
	case err := <-result:
		t.Fatalf("Notify returned %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not listen within 10s")
	}
	conn := connect(t, dsn)
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+notifyChannel+`'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the listener: %d terminated, %v", n, err)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Error("Notify returned nil after its connection ended")
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not return within 10s of its connection ending")
	}
}

// TestDeadlockRetried: a transaction PostgreSQL picks as a deadlock victim
// is run again. Another client holds the key's row and then asks for the
// change feed's lock, which UpdateKey holds while it waits for that row;
// the other client's session waits longer before it looks for deadlocks,
// so UpdateKey's is the one aborted.
func TestDeadlockRetried(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openAt(t, dsn)
	ctx := t.Context()
	if err := s.CreateKey(ctx, testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
	other := connect(t, dsn)
	if _, err := other.Exec(ctx, `SET deadlock_timeout = '30s'`); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM keys WHERE id = 'k1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	calls := 0
	updated := make(chan error, 1)
	go func() {
		_, err := s.UpdateKey(ctx, "k1", func(k *store.Key) error {
			calls++
			k.Description = "updated"
			return nil
		})
		updated <- err
	}()
	// Wait until UpdateKey holds the feed's lock and waits for the row.
	conn := connect(t, dsn)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("UpdateKey never waited for the locked row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The cycle: UpdateKey is aborted after 1s (deadlock_timeout's
	// default), which grants this lock.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM change_seq WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatalf("the other client's lock: %v (it should have won the deadlock)", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-updated:
		if err != nil {
			t.Fatalf("UpdateKey after a deadlock: %v, want it retried", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("UpdateKey did not return within 30s")
	}
	k, err := s.GetKey(ctx, "k1")
	if err != nil || k.Description != "updated" || k.Revision != 2 {
		t.Errorf("key = %+v, %v; want the update at revision 2", k, err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want once (the victim was aborted before it read the key)", calls)
	}
}

// TestByteOrder: IDs and names page in byte order, as in the SQLite
// backend, even in a database whose collation sorts otherwise (ICU en-US
// puts "_" before letters and ignores case at first).
func TestByteOrder(t *testing.T) {
	dsn := pgtest.DSNWith(t, `LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`)
	s := openAt(t, dsn)
	ctx := t.Context()
	ids := []string{"a", "B", "_", "Z", "b0"}
	for _, id := range ids {
		if err := s.CreateKey(ctx, testKey(id), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAlias(ctx, &store.Alias{Account: "111122223333", Region: "us-east-1", Name: "alias/" + id, KeyID: id}); err != nil {
			t.Fatal(err)
		}
	}
	want := slices.Clone(ids)
	slices.Sort(want) // byte order: B Z _ a b0
	var got []string
	after := ""
	for {
		keys, err := s.ListKeys(ctx, "111122223333", "us-east-1", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			got = append(got, k.ID)
		}
		after = keys[len(keys)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListKeys in pages of 2 = %v, want %v", got, want)
	}
	aliases, err := s.ListAliases(ctx, "111122223333", "us-east-1", "", "alias/Z", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range aliases {
		names = append(names, a.Name)
	}
	if wantNames := []string{"alias/_", "alias/a", "alias/b0"}; !slices.Equal(names, wantNames) {
		t.Errorf("ListAliases after alias/Z = %v, want %v", names, wantNames)
	}
}

// TestNanosecondTimes: times round-trip exactly, beyond the millisecond the
// conformance suite asks for.
func TestNanosecondTimes(t *testing.T) {
	s := openFresh(t)
	k := testKey("k1")
	k.Created = time.Now() // with nanoseconds and a monotonic clock reading
	k.DeletionDate = time.Date(1700, 1, 1, 0, 0, 0, 1, time.FixedZone("X", 3600))
	k.NextRotation = time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC)
	if err := s.CreateKey(t.Context(), k, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetKey(t.Context(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Created != k.Created.Round(0).UTC() || got.DeletionDate != k.DeletionDate.UTC() || got.NextRotation != k.NextRotation {
		t.Errorf("times = %v, %v, %v; want %v, %v, %v", got.Created, got.DeletionDate, got.NextRotation,
			k.Created, k.DeletionDate, k.NextRotation)
	}
	k.ID = "k2"
	k.DeletionDate = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.CreateKey(t.Context(), k, nil); err == nil || errors.Is(err, store.ErrExists) {
		t.Errorf("CreateKey with a year-3000 time: %v, want a range error", err)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TestClock checks that the Store dates changes and settings with its
// clock, and that PruneChanges compares with those dates.
func TestClock(t *testing.T) {
	ctx := t.Context()
	day := 24 * time.Hour
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	clock := &fakeClock{now: t0}
	s := openAt(t, pgtest.DSN(t), WithClock(clock.Now))
	for i, id := range []string{"k0", "k1", "k2", "k3"} {
		clock.Set(t0.Add(time.Duration(i) * day))
		if err := s.CreateKey(ctx, testKey(id), nil); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(t0.Add(10 * day))
	if _, err := s.PutSetting(ctx, "s", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	st, err := s.GetSetting(ctx, "s")
	if err != nil || st.Updated != t0.Add(10*day).UTC() {
		t.Errorf("GetSetting = %+v, %v; want Updated %v", st, err, t0.Add(10*day).UTC())
	}
	cs, err := s.Changes(ctx, 0, 0)
	if err != nil || len(cs) != 5 {
		t.Fatalf("Changes = %+v, %v; want 5", cs, err)
	}
	for i, c := range cs[:4] {
		if want := t0.Add(time.Duration(i) * day).UTC(); c.Time != want {
			t.Errorf("change %d Time = %v, want %v", i, c.Time, want)
		}
	}
	if n, err := s.PruneChanges(ctx, t0.Add(2*day)); err != nil || n != 2 {
		t.Fatalf("PruneChanges(day 2) = %d, %v; want 2", n, err)
	}
	if _, err := s.Changes(ctx, cs[0].Seq, 0); !errors.Is(err, store.ErrChangesPruned) {
		t.Errorf("Changes after the first change = %v, want ErrChangesPruned", err)
	}
	if got, err := s.Changes(ctx, cs[1].Seq, 0); err != nil || len(got) != 3 {
		t.Errorf("Changes after the second change = %+v, %v; want the last 3", got, err)
	}
	// A clock set back does not lower the mark.
	if n, err := s.PruneChanges(ctx, t0); err != nil || n != 0 {
		t.Errorf("PruneChanges(day 0) = %d, %v; want 0", n, err)
	}
	if _, err := s.Changes(ctx, cs[0].Seq, 0); !errors.Is(err, store.ErrChangesPruned) {
		t.Errorf("Changes after the first change = %v, want ErrChangesPruned", err)
	}
	clock.Set(time.Time{})
	if err := s.CreateKey(ctx, testKey("k9"), nil); err == nil {
		t.Error("CreateKey with a zero clock succeeded")
	}
}

// TestUpdateContextCancelled: a transaction whose context ends before it
// commits writes nothing, even when fn returns nil, and the Store goes on.
func TestUpdateContextCancelled(t *testing.T) {
	s := openFresh(t)
	ctx, cancel := context.WithCancel(t.Context())
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateKey(ctx, testKey("k1"), testMaterial("k1")); err != nil {
			return err
		}
		cancel()
		tx.CreateKey(ctx, testKey("k2"), nil)
		return nil
	})
	if err == nil {
		t.Fatal("Update whose context ended succeeded")
	}
	for _, id := range []string{"k1", "k2"} {
		if _, err := s.GetKey(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetKey(%s) after a cancelled Update: %v, want ErrNotFound", id, err)
		}
	}
	if n, err := s.LastChange(t.Context()); err != nil || n != 0 {
		t.Errorf("LastChange after a cancelled Update = %d, %v; want 0", n, err)
	}
	if err := s.CreateKey(t.Context(), testKey("k1"), nil); err != nil {
		t.Fatal(err)
	}
}

// TestTxAfterUpdate: the Tx given to fn is good only until Update returns,
// and cannot close the Store.
func TestTxAfterUpdate(t *testing.T) {
	s := openFresh(t)
	ctx := t.Context()
	var kept store.Tx
	if err := s.Update(ctx, func(tx store.Tx) error {
		kept = tx
		if err := tx.(*Store).Close(); err == nil {
			t.Error("Close of the Store bound to a transaction succeeded")
		}
		return tx.CreateKey(ctx, testKey("k1"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.GetKey(ctx, "k1"); err == nil {
		t.Error("GetKey on a Tx after its Update returned succeeded")
	}
	if err := kept.CreateKey(ctx, testKey("k2"), nil); err == nil {
		t.Error("CreateKey on a Tx after its Update returned succeeded")
	}
	if _, err := s.GetKey(ctx, "k2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey of a key written through a stale Tx: %v, want ErrNotFound", err)
	}
}

// TestSynchronousCommitOffRefused: a session that would acknowledge
// commits before they are durable is refused.
func TestSynchronousCommitOffRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(t.Context(), withParam(dsn, "synchronous_commit", "off"))
	if err == nil {
		s.Close()
		t.Fatal("Open accepted synchronous_commit=off")
	}
	if !strings.Contains(err.Error(), "synchronous_commit") {
		t.Errorf("Open with synchronous_commit=off: %v, want an error naming it", err)
	}
	t.Log(err)
}

// withParam returns dsn (URL or keyword/value) with the setting key=value
// added (value must need no quoting).
func withParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + key + "=" + value
	}
	return dsn + " " + key + "=" + value
}

// TestNULInText: PostgreSQL's TEXT cannot hold NUL; such a key is refused
// with an error and nothing is written.
func TestNULInText(t *testing.T) {
	s := openFresh(t)
	k := testKey("k1")
	k.Description = "nul\x00here"
	if err := s.CreateKey(t.Context(), k, nil); err == nil {
		t.Fatal("CreateKey with a NUL in the description succeeded")
	}
	if _, err := s.GetKey(t.Context(), "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey after the refused CreateKey: %v, want ErrNotFound", err)
	}
	// A NUL in a tag is JSON-escaped and round-trips.
	k.Description = ""
	k.Tags = []store.Tag{{Key: "k\x00", Value: "v\x00"}}
	if err := s.CreateKey(t.Context(), k, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetKey(t.Context(), "k1"); err != nil || !slices.Equal(got.Tags, k.Tags) {
		t.Errorf("GetKey = %+v, %v; want tags %q", got, err, k.Tags)
	}
}

// TestIdleInTransactionTimeout: the Store's sessions end a transaction
// left idle (60s unless the DSN says otherwise), so that a stalled node
// cannot hold the change feed's lock for ever.
func TestIdleInTransactionTimeout(t *testing.T) {
	dsn := pgtest.DSN(t)
	for _, c := range []struct{ dsn, want string }{
		{dsn, "1min"},
		{withParam(dsn, "idle_in_transaction_session_timeout", "5s"), "5s"},
	} {
		s := openAt(t, c.dsn)
		var got string
		if err := s.db.QueryRow(t.Context(), `SHOW idle_in_transaction_session_timeout`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("idle_in_transaction_session_timeout = %s, want %s", got, c.want)
		}
	}
}
