package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// keyColumns lists the columns of keys in the order scanKey reads them.
const keyColumns = `id, account, region, description, key_spec, key_usage, origin,
	key_manager, state, created, deletion_date, pending_window_days, policy, tags,
	current_material, rotation_enabled, rotation_period_days, next_rotation,
	on_demand_rotations, material_valid_to, expiration_model, custom_key_store_id, revision,
	multi_region_key_id, primary_region`

// rowScanner is the Scan method shared by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanKey reads one row selected with keyColumns.
func scanKey(r rowScanner) (*store.Key, error) {
	var (
		k                 store.Key
		created, deletion sql.NullInt64
		window            int64
		tags              string
		nextRotation      sql.NullInt64
		period, onDemand  int64
		validTo           sql.NullInt64
	)
	err := r.Scan(&k.ID, &k.Account, &k.Region, &k.Description, &k.KeySpec, &k.KeyUsage,
		&k.Origin, &k.KeyManager, &k.State, &created, &deletion, &window,
		&k.Policy, &tags, &k.CurrentMaterial, &k.RotationEnabled, &period, &nextRotation,
		&onDemand, &validTo, &k.ExpirationModel, &k.CustomKeyStoreID, &k.Revision,
		&k.MultiRegionKeyID, &k.PrimaryRegion)
	if err != nil {
		return nil, err
	}
	k.Created = decodeTime(created)
	k.DeletionDate = decodeTime(deletion)
	k.PendingWindowDays = int(window)
	k.RotationPeriodDays = int(period)
	k.NextRotation = decodeTime(nextRotation)
	k.OnDemandRotations = int(onDemand)
	k.MaterialValidTo = decodeTime(validTo)
	if k.Tags, err = decodeTags(tags); err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID, err)
	}
	return &k, nil
}

// keyValues holds the column values of a key that need encoding; the other
// fields of store.Key are stored as they are.
type keyValues struct {
	created, deletion, nextRotation, validTo sql.NullInt64
	tags                                     string
}

// encodeKey computes the encoded column values of k.
func encodeKey(k *store.Key) (keyValues, error) {
	var v keyValues
	var err error
	if v.created, err = encodeTime(k.Created); err != nil {
		return v, fmt.Errorf("created: %w", err)
	}
	if v.deletion, err = encodeTime(k.DeletionDate); err != nil {
		return v, fmt.Errorf("deletion date: %w", err)
	}
	if v.nextRotation, err = encodeTime(k.NextRotation); err != nil {
		return v, fmt.Errorf("next rotation: %w", err)
	}
	if v.validTo, err = encodeTime(k.MaterialValidTo); err != nil {
		return v, fmt.Errorf("material valid to: %w", err)
	}
	if v.tags, err = encodeTags(k.Tags); err != nil {
		return v, err
	}
	return v, nil
}

// jsonTag is the stored form of a store.Tag. It has its own type so that
// renaming a field of store.Tag cannot change the stored format.
type jsonTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func encodeTags(tags []store.Tag) (string, error) {
	js := make([]jsonTag, len(tags))
	for i, t := range tags {
		js[i] = jsonTag(t)
	}
	b, err := json.Marshal(js)
	if err != nil {
		return "", fmt.Errorf("encode tags: %w", err)
	}
	return string(b), nil
}

// decodeTags returns nil for no tags.
func decodeTags(s string) ([]store.Tag, error) {
	var js []jsonTag
	if err := json.Unmarshal([]byte(s), &js); err != nil {
		return nil, fmt.Errorf("decode tags: %w", err)
	}
	if len(js) == 0 {
		return nil, nil
	}
	tags := make([]store.Tag, len(js))
	for i, t := range js {
		tags[i] = store.Tag(t)
	}
	return tags, nil
}

// cloneKey returns a copy of k that shares no memory with it.
func cloneKey(k *store.Key) *store.Key {
	c := *k
	c.Tags = slices.Clone(k.Tags)
	return &c
}

// CreateKey inserts k (with Revision 1, whatever k.Revision says) and,
// when m is not nil, its first material, in one transaction. m.KeyID may be
// empty; otherwise it must equal k.ID.
func (s *Store) CreateKey(ctx context.Context, k *store.Key, m *store.Material) error {
	if k == nil || k.ID == "" {
		return errors.New("create key: missing key or key ID")
	}
	if m != nil && m.KeyID != "" && m.KeyID != k.ID {
		return fmt.Errorf("create key %s: material belongs to key %s", k.ID, m.KeyID)
	}
	v, err := encodeKey(k)
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.prepared(ctx, tx.stmts.insertKey).ExecContext(ctx,
			k.ID, k.Account, k.Region, k.Description, k.KeySpec, k.KeyUsage, k.Origin,
			k.KeyManager, k.State, v.created, v.deletion, k.PendingWindowDays, k.Policy,
			v.tags, k.CurrentMaterial, k.RotationEnabled, k.RotationPeriodDays,
			v.nextRotation, k.OnDemandRotations, v.validTo, k.ExpirationModel, k.CustomKeyStoreID,
			k.MultiRegionKeyID, k.PrimaryRegion)
		if err != nil {
			return classify(err)
		}
		if err := tx.record(ctx, keyChange(store.ChangeKey, k)); err != nil {
			return err
		}
		if m != nil {
			if err := insertMaterial(ctx, tx, k.ID, m); err != nil {
				return fmt.Errorf("material %s: %w", m.ID, err)
			}
			if err := tx.record(ctx, keyChange(store.ChangeMaterial, k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

// keyChange is the change of kind (ChangeKey or ChangeMaterial) to key k.
func keyChange(kind string, k *store.Key) store.Change {
	return store.Change{Kind: kind, ID: k.ID, KeyID: k.ID, Account: k.Account, Region: k.Region}
}

// GetKey returns the key with the given ID, or store.ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (*store.Key, error) {
	k, err := scanKey(s.prepared(ctx, s.stmts.getKey).QueryRowContext(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("get key %s: %w", id, classify(err))
	}
	return k, nil
}

// UpdateKey reads the key, calls fn on a copy and writes the copy back with
// the next Revision, in one BEGIN IMMEDIATE transaction. An error from fn is
// returned unchanged (not wrapped) and nothing is written.
func (s *Store) UpdateKey(ctx context.Context, id string, fn func(*store.Key) error) (*store.Key, error) {
	return s.updateKey(ctx, id, fn, nil)
}

// updateKey is UpdateKey; when also is not nil it runs in the same
// transaction after the key k is written.
func (s *Store) updateKey(ctx context.Context, id string, fn func(*store.Key) error, also func(tx *writeTx, k *store.Key) error) (*store.Key, error) {
	var updated *store.Key
	var fnErr error
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		k, err := scanKey(tx.prepared(ctx, tx.stmts.getKey).QueryRowContext(ctx, id))
		if err != nil {
			return classify(err)
		}
		c := cloneKey(k)
		if fnErr = fn(c); fnErr != nil {
			return fnErr
		}
		if c.ID != k.ID || c.Account != k.Account || c.Region != k.Region || c.MultiRegionKeyID != k.MultiRegionKeyID {
			return errors.New("the update changed the key's ID, Account, Region or MultiRegionKeyID")
		}
		c.Revision = k.Revision + 1
		v, err := encodeKey(c)
		if err != nil {
			return err
		}
		res, err := tx.prepared(ctx, tx.stmts.updateKey).ExecContext(ctx,
			c.Description, c.KeySpec, c.KeyUsage, c.Origin, c.KeyManager, c.State,
			v.created, v.deletion, c.PendingWindowDays, c.Policy, v.tags, c.CurrentMaterial,
			c.RotationEnabled, c.RotationPeriodDays, v.nextRotation, c.OnDemandRotations,
			v.validTo, c.ExpirationModel, c.CustomKeyStoreID, c.Revision, c.PrimaryRegion, id)
		if err != nil {
			return err
		}
		if err := expectOneRow(res); err != nil {
			return err
		}
		if err := tx.record(ctx, keyChange(store.ChangeKey, c)); err != nil {
			return err
		}
		if also != nil {
			if err := also(tx, c); err != nil {
				return err
			}
		}
		// Hand back a copy, so that fn keeping its pointer cannot alter
		// what the caller receives.
		updated = cloneKey(c)
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update key %s: %w", id, err)
	}
	return updated, nil
}

// expectOneRow returns store.ErrNotFound unless res affected a row.
func expectOneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteKey removes a key if its revision is still revision; its
// materials, aliases, grants and import parameters go with it (ON DELETE
// CASCADE). The change feed records the key and every material, alias and
// grant the cascade removes; import parameters are cached nowhere and
// have no kind of change.
func (s *Store) DeleteKey(ctx context.Context, id string, revision int64) error {
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		k := store.Key{ID: id}
		err := tx.QueryRowContext(ctx, `SELECT account, region, revision FROM keys WHERE id = ?`, id).
			Scan(&k.Account, &k.Region, &k.Revision)
		if err != nil {
			return classify(err)
		}
		if k.Revision != revision {
			return fmt.Errorf("%w: revision %d, not %d", store.ErrConflict, k.Revision, revision)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, key_id, key_id, ?, ?, ? FROM materials WHERE key_id = ? ORDER BY rowid`,
			store.ChangeMaterial, k.Account, k.Region, tx.now, id); err != nil {
			return fmt.Errorf("record changes of materials: %w", err)
		}
		// An alias has its own account and region: the store does not
		// check that they are its key's.
		if _, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, name, key_id, account, region, ? FROM aliases WHERE key_id = ? ORDER BY name`,
			store.ChangeAlias, tx.now, id); err != nil {
			return fmt.Errorf("record changes of aliases: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, id, key_id, ?, ?, ? FROM grants WHERE key_id = ? ORDER BY id`,
			store.ChangeGrant, k.Account, k.Region, tx.now, id); err != nil {
			return fmt.Errorf("record changes of grants: %w", err)
		}
		if err := tx.record(ctx, keyChange(store.ChangeKey, &k)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return expectOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("delete key %s: %w", id, err)
	}
	return nil
}

// ListKeys lists up to limit keys of one account and region whose ID sorts
// after after, ordered by ID. A limit <= 0 means no limit.
func (s *Store) ListKeys(ctx context.Context, account, region, after string, limit int) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE account = ? AND region = ? AND id > ?
		ORDER BY id LIMIT ?`,
		account, region, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list keys of %s/%s after %q: %w", account, region, after, err)
	}
	return keys, nil
}

// ListMultiRegionKeys returns the keys that share multiRegionKeyID, ordered
// by Region.
func (s *Store) ListMultiRegionKeys(ctx context.Context, multiRegionKeyID string) ([]*store.Key, error) {
	if multiRegionKeyID == "" {
		return nil, errors.New("list multi-Region keys: empty multi-Region key id")
	}
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE multi_region_key_id = ? ORDER BY region`, multiRegionKeyID)
	if err != nil {
		return nil, fmt.Errorf("list multi-Region keys of %s: %w", multiRegionKeyID, err)
	}
	return keys, nil
}

// KeysPendingDeletion returns the keys of every account in state
// PendingDeletion whose DeletionDate is at or before t, earliest first.
func (s *Store) KeysPendingDeletion(ctx context.Context, t time.Time) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE state = 'PendingDeletion' AND deletion_date <= ?
		ORDER BY deletion_date, id`,
		boundTime(t))
	if err != nil {
		return nil, fmt.Errorf("keys pending deletion at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return keys, nil
}

// CountKeysByState implements store.Store.
func (s *Store) CountKeysByState(ctx context.Context) (map[string]int, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT state, COUNT(*) FROM keys GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count keys by state: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int)
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count keys by state: %w", err)
		}
		counts[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count keys by state: %w", err)
	}
	return counts, nil
}

// keyRegionPairs walks the distinct (account, region) pairs of keys along
// the index keys_by_account (account, region, id) with one index search per
// pair (a loose index scan), never reading the keys of a pair: the next pair
// is the next region of the same account, else the first region of the next
// account. SQLite allows the recursive table in no subquery, hence the
// repeated searches of the recursive step.
const keyRegionPairs = `WITH RECURSIVE pairs(account, region) AS (
		SELECT * FROM (SELECT account, region FROM keys ORDER BY account, region LIMIT 1)
		UNION ALL
		SELECT
			iif((SELECT min(k.region) FROM keys k WHERE k.account = p.account AND k.region > p.region) IS NULL,
				(SELECT min(k.account) FROM keys k WHERE k.account > p.account),
				p.account),
			coalesce((SELECT min(k.region) FROM keys k WHERE k.account = p.account AND k.region > p.region),
				(SELECT min(k.region) FROM keys k WHERE k.account =
					(SELECT min(k2.account) FROM keys k2 WHERE k2.account > p.account)))
		FROM pairs p WHERE p.account IS NOT NULL
	)`

// countKeysOutsideRegions counts, in one statement, the keys of each
// (account, region) pair whose region is not in the JSON array ?1: the
// count runs only for those pairs, each an index range.
const countKeysOutsideRegions = keyRegionPairs + `
	SELECT p.region, (SELECT count(*) FROM keys k WHERE k.account = p.account AND k.region = p.region)
	FROM pairs p
	WHERE p.account IS NOT NULL AND p.region NOT IN (SELECT value FROM json_each(?1))`

// CountKeysOutsideRegions implements store.Store.
func (s *Store) CountKeysOutsideRegions(ctx context.Context, regions []string) (map[string]int, error) {
	served, err := json.Marshal(nonNilStrings(regions))
	if err != nil {
		return nil, fmt.Errorf("count keys outside regions: %w", err)
	}
	rows, err := s.q().QueryContext(ctx, countKeysOutsideRegions, string(served))
	if err != nil {
		return nil, fmt.Errorf("count keys outside regions: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int)
	for rows.Next() {
		var region string
		var n int
		if err := rows.Scan(&region, &n); err != nil {
			return nil, fmt.Errorf("count keys outside regions: %w", err)
		}
		counts[region] += n // a region holds keys of several accounts
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count keys outside regions: %w", err)
	}
	return counts, nil
}

// nonNilStrings returns ss, or an empty slice for nil (which JSON encodes
// as null, not []).
func nonNilStrings(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// Ping implements store.Store.
//
// It reports the damage any statement of the Store met since it opened
// (health.go), wrapping store.ErrDamaged, until a Check finds the
// database intact. Beyond that and a connection, it reads the first row
// of every table, so that a database whose first pages were damaged is
// reported before a request meets it. Reading one row touches a table's
// root page and one leaf: cheap enough for every readiness probe. Damage
// deeper in a table is reported once a statement reads it.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.health.err(); err != nil {
		return fmt.Errorf("ping sqlite %s: %w", s.path, err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	for _, table := range pingTables {
		if err := s.readFirstRow(ctx, table); err != nil {
			if isDamage(err) {
				err = fmt.Errorf("%w: %w", store.ErrDamaged, err)
			}
			return fmt.Errorf("ping sqlite %s: reading table %s: %w", s.path, table, err)
		}
	}
	return nil
}

// readFirstRow reads the first row of a table. Every column is selected,
// so that SQLite reads the table itself rather than a smaller index that
// covers a narrower query.
func (s *Store) readFirstRow(ctx context.Context, table string) error {
	rows, err := s.db.QueryContext(ctx, `SELECT * FROM `+table+` LIMIT 1`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// pingTables are the tables Ping reads a row of.
var pingTables = []string{"schema_version", "keys", "materials", "aliases", "access_keys", "grants",
	"import_params", "custom_key_stores", "changes", "settings"}

var _ store.Checker = (*Store)(nil)

// maxCheckProblems bounds the problems Check reports.
const maxCheckProblems = 20

// Check runs SQLite's quick_check (O(N) in the size of the database: every
// page is read and checked, but indexes are not compared with their
// tables), or with full, integrity_check, which also compares every index
// with its table. The error lists the problems SQLite found.
//
// The outcome is what Ping reports from then on: damage found is
// reported (wrapping store.ErrDamaged), and a full check that finds the
// database intact forgets the damage statements met before.
func (s *Store) Check(ctx context.Context, full bool) error {
	problems, err := s.check(ctx, full)
	switch {
	case isDamage(err):
		// SQLite met damage it could not even step past (the driver
		// noted it for Ping).
		return fmt.Errorf("check sqlite %s: %w: %w", s.path, store.ErrDamaged, err)
	case err != nil:
		return fmt.Errorf("check sqlite %s: %w", s.path, err)
	case len(problems) > 0:
		found := errors.New("the integrity check found: " + strings.Join(problems, "; "))
		s.health.set(found)
		return fmt.Errorf("check sqlite %s: %w: %w", s.path, store.ErrDamaged, found)
	}
	if full {
		s.health.clear()
	}
	return nil
}

// check runs quick_check or integrity_check and returns the problems it
// lists.
func (s *Store) check(ctx context.Context, full bool) ([]string, error) {
	pragma := fmt.Sprintf("PRAGMA quick_check(%d)", maxCheckProblems)
	if full {
		pragma = fmt.Sprintf("PRAGMA integrity_check(%d)", maxCheckProblems)
	}
	rows, err := s.db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	return problems, rows.Err()
}

func (s *Store) queryKeys(ctx context.Context, query string, args ...any) ([]*store.Key, error) {
	rows, err := s.q().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []*store.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// AddMaterial stores another generation of a key's material:
// store.ErrNotFound if the key does not exist, store.ErrExists if the key
// already has a material with that ID.
func (s *Store) AddMaterial(ctx context.Context, m *store.Material) error {
	if m == nil {
		return errors.New("add material: nil material")
	}
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		if err := insertMaterial(ctx, tx, m.KeyID, m); err != nil {
			return err
		}
		return tx.recordForKey(ctx, store.ChangeMaterial, m.KeyID, m.KeyID)
	})
	if err != nil {
		return fmt.Errorf("add material %s of key %s: %w", m.ID, m.KeyID, err)
	}
	return nil
}

// insertMaterial inserts m as a material of keyID. The caller records the
// change.
func insertMaterial(ctx context.Context, tx *writeTx, keyID string, m *store.Material) error {
	if m.ID == "" {
		return errors.New("empty material ID")
	}
	created, err := encodeTime(m.Created)
	if err != nil {
		return fmt.Errorf("created: %w", err)
	}
	_, err = tx.prepared(ctx, tx.stmts.insertMaterial).ExecContext(ctx,
		keyID, m.ID, nonNilBlob(m.Wrapped), created, m.RotationType)
	return classify(err)
}

// GetMaterial returns one material of a key, or store.ErrNotFound.
func (s *Store) GetMaterial(ctx context.Context, keyID, materialID string) (*store.Material, error) {
	m := store.Material{KeyID: keyID, ID: materialID}
	var created sql.NullInt64
	err := s.prepared(ctx, s.stmts.getMaterial).QueryRowContext(ctx, keyID, materialID).
		Scan(&m.Wrapped, &created, &m.RotationType)
	if err != nil {
		return nil, fmt.Errorf("get material %s of key %s: %w", materialID, keyID, classify(err))
	}
	m.Created = decodeTime(created)
	return &m, nil
}
