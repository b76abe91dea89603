package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmsd/kmsd/internal/store"
)

// keyColumns lists the columns of keys in the order scanKey reads them.
const keyColumns = `id, account, region, description, key_spec, key_usage, origin,
	key_manager, state, created, deletion_date, pending_window_days, policy, tags,
	current_material, rotation_enabled, rotation_period_days, next_rotation,
	on_demand_rotations, material_valid_to, expiration_model, custom_key_store_id, revision,
	multi_region_key_id, primary_region`

// rowScanner is the Scan method shared by pgx.Row and pgx.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanKey reads one row selected with keyColumns.
func scanKey(r rowScanner) (*store.Key, error) {
	var (
		k                                        store.Key
		created, deletion, nextRotation, validTo *int64
		tags                                     string
		window, period, onDemand                 int32
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
	created, deletion, nextRotation, validTo *int64
	window, period, onDemand                 int32
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
	if v.window, err = int32Field("pending window days", k.PendingWindowDays); err != nil {
		return v, err
	}
	if v.period, err = int32Field("rotation period days", k.RotationPeriodDays); err != nil {
		return v, err
	}
	if v.onDemand, err = int32Field("on-demand rotations", k.OnDemandRotations); err != nil {
		return v, err
	}
	if v.tags, err = encodeTags(k.Tags); err != nil {
		return v, err
	}
	return v, nil
}

// int32Field checks that n fits an INTEGER column.
func int32Field(what string, n int) (int32, error) {
	if int(int32(n)) != n {
		return 0, fmt.Errorf("%s %d out of range", what, n)
	}
	return int32(n), nil
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
	err = s.write(ctx, func(tx *writeTx) error {
		_, err := tx.q.Exec(ctx, `INSERT INTO keys (`+keyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 1, $23, $24)`,
			k.ID, k.Account, k.Region, k.Description, k.KeySpec, k.KeyUsage, k.Origin,
			k.KeyManager, k.State, v.created, v.deletion, v.window, k.Policy,
			v.tags, k.CurrentMaterial, k.RotationEnabled, v.period,
			v.nextRotation, v.onDemand, v.validTo, k.ExpirationModel, k.CustomKeyStoreID,
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
	k, err := scanKey(s.q().QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get key %s: %w", id, classify(err))
	}
	return k, nil
}

// UpdateKey reads the key with SELECT … FOR UPDATE, calls fn on a copy and
// writes the copy back with the next Revision, in one transaction. An
// error from fn is returned unchanged (not wrapped) and nothing is written.
func (s *Store) UpdateKey(ctx context.Context, id string, fn func(*store.Key) error) (*store.Key, error) {
	return s.updateKey(ctx, id, fn, nil)
}

// updateKey is UpdateKey; when also is not nil it runs in the same
// transaction after the key k is written.
func (s *Store) updateKey(ctx context.Context, id string, fn func(*store.Key) error, also func(tx *writeTx, k *store.Key) error) (*store.Key, error) {
	var updated *store.Key
	var fnErr error
	err := s.write(ctx, func(tx *writeTx) error {
		fnErr = nil // a retried transaction calls fn again
		k, err := scanKey(tx.q.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = $1 FOR UPDATE`, id))
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
		tag, err := tx.q.Exec(ctx, `UPDATE keys SET description = $1, key_spec = $2,
			key_usage = $3, origin = $4, key_manager = $5, state = $6, created = $7,
			deletion_date = $8, pending_window_days = $9, policy = $10, tags = $11,
			current_material = $12, rotation_enabled = $13, rotation_period_days = $14,
			next_rotation = $15, on_demand_rotations = $16, material_valid_to = $17,
			expiration_model = $18, custom_key_store_id = $19, revision = $20,
			primary_region = $21
			WHERE id = $22`,
			c.Description, c.KeySpec, c.KeyUsage, c.Origin, c.KeyManager, c.State,
			v.created, v.deletion, v.window, c.Policy, v.tags, c.CurrentMaterial,
			c.RotationEnabled, v.period, v.nextRotation, v.onDemand,
			v.validTo, c.ExpirationModel, c.CustomKeyStoreID, c.Revision, c.PrimaryRegion, id)
		if err != nil {
			return err
		}
		if err := expectOneRow(tag); err != nil {
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

// DeleteKey removes a key if its revision is still revision; its
// materials, aliases, grants and import parameters go with it (ON DELETE
// CASCADE). The change feed records the key and every material, alias and
// grant the cascade removes; import parameters are cached nowhere and
// have no kind of change.
func (s *Store) DeleteKey(ctx context.Context, id string, revision int64) error {
	err := s.write(ctx, func(tx *writeTx) error {
		k := store.Key{ID: id}
		err := tx.q.QueryRow(ctx, `SELECT account, region, revision FROM keys WHERE id = $1 FOR UPDATE`, id).
			Scan(&k.Account, &k.Region, &k.Revision)
		if err != nil {
			return classify(err)
		}
		if k.Revision != revision {
			return fmt.Errorf("%w: revision %d, not %d", store.ErrConflict, k.Revision, revision)
		}
		// The key, then what the cascade removes. An alias has its own
		// account and region: the store does not check that they are its
		// key's.
		if _, err := tx.recordRows(ctx, `
			SELECT $1::text, $2::text, $2::text, $3::text, $4::text
			UNION ALL
			(SELECT $5::text, key_id, key_id, $3::text, $4::text FROM materials WHERE key_id = $2 ORDER BY added)
			UNION ALL
			(SELECT $6::text, name, key_id, account, region FROM aliases WHERE key_id = $2 ORDER BY name)
			UNION ALL
			(SELECT $7::text, id, key_id, $3::text, $4::text FROM grants WHERE key_id = $2 ORDER BY id)`,
			store.ChangeKey, id, k.Account, k.Region, store.ChangeMaterial, store.ChangeAlias, store.ChangeGrant); err != nil {
			return err
		}
		tag, err := tx.q.Exec(ctx, `DELETE FROM keys WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return expectOneRow(tag)
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
		WHERE account = $1 AND region = $2 AND id > $3
		ORDER BY id LIMIT $4`,
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
		WHERE multi_region_key_id = $1 ORDER BY region`, multiRegionKeyID)
	if err != nil {
		return nil, fmt.Errorf("list multi-Region keys of %s: %w", multiRegionKeyID, err)
	}
	return keys, nil
}

// KeysPendingDeletion returns the keys of every account in state
// PendingDeletion whose DeletionDate is at or before t, earliest first.
func (s *Store) KeysPendingDeletion(ctx context.Context, t time.Time) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE state = 'PendingDeletion' AND deletion_date <= $1
		ORDER BY deletion_date, id`,
		boundTime(t))
	if err != nil {
		return nil, fmt.Errorf("keys pending deletion at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return keys, nil
}

// CountKeysByState implements store.Store.
func (s *Store) CountKeysByState(ctx context.Context) (map[string]int, error) {
	rows, err := s.q().Query(ctx, `SELECT state, count(*) FROM keys GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count keys by state: %w", err)
	}
	defer rows.Close()
	counts := make(map[string]int)
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count keys by state: %w", err)
		}
		counts[state] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count keys by state: %w", err)
	}
	return counts, nil
}

// unservedKeyRegionPairs lists the distinct (account, region) pairs of keys
// whose region is not in $1, walking the index keys_by_account (account,
// region, id) with one index search per pair (a loose index scan), never
// reading the keys of a pair: the next pair is the next region of the same
// account, else the first region of the next account.
const unservedKeyRegionPairs = `WITH RECURSIVE pairs(account, region) AS (
		(SELECT account, region FROM keys ORDER BY account, region LIMIT 1)
		UNION ALL
		SELECT
			CASE WHEN (SELECT min(k.region) FROM keys k WHERE k.account = p.account AND k.region > p.region) IS NULL
				THEN (SELECT min(k.account) FROM keys k WHERE k.account > p.account)
				ELSE p.account END,
			coalesce((SELECT min(k.region) FROM keys k WHERE k.account = p.account AND k.region > p.region),
				(SELECT min(k.region) FROM keys k WHERE k.account =
					(SELECT min(k2.account) FROM keys k2 WHERE k2.account > p.account)))
		FROM pairs p WHERE p.account IS NOT NULL
	)
	SELECT account, region FROM pairs WHERE account IS NOT NULL AND region <> ALL ($1::text[])`

// CountKeysOutsideRegions implements store.Store.
//
// It lists the pairs, then counts each one's keys: one statement doing both
// would be planned at the cost of counting every pair, and that estimate
// turns on PostgreSQL's JIT compilation, which takes longer than the query.
// Outside Update both run in one read-only transaction, so that they see
// one state of the store.
func (s *Store) CountKeysOutsideRegions(ctx context.Context, regions []string) (map[string]int, error) {
	if regions == nil {
		regions = []string{} // NULL would make <> ALL unknown for every row
	}
	q := s.q()
	if s.tx == nil {
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, fmt.Errorf("count keys outside regions: begin: %w", redact(err, s.secrets))
		}
		defer func() {
			// As in writeOnce: the connection goes back to the pool clean
			// even when ctx has ended.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			tx.Rollback(rctx)
		}()
		q = scrubbed{tx, s.secrets}
	}
	rows, err := q.Query(ctx, unservedKeyRegionPairs, regions)
	if err != nil {
		return nil, fmt.Errorf("count keys outside regions: %w", err)
	}
	type pair struct{ account, region string }
	var pairs []pair
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.account, &p.region); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count keys outside regions: %w", err)
		}
		pairs = append(pairs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count keys outside regions: %w", err)
	}
	counts := make(map[string]int)
	for _, p := range pairs {
		var n int64
		if err := q.QueryRow(ctx, `SELECT count(*) FROM keys WHERE account = $1 AND region = $2`,
			p.account, p.region).Scan(&n); err != nil {
			return nil, fmt.Errorf("count keys outside regions: keys of %s: %w", p.region, err)
		}
		counts[p.region] += int(n) // a region holds keys of several accounts
	}
	return counts, nil
}

func (s *Store) queryKeys(ctx context.Context, query string, args ...any) ([]*store.Key, error) {
	rows, err := s.q().Query(ctx, query, args...)
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
	err := s.write(ctx, func(tx *writeTx) error {
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
	_, err = tx.q.Exec(ctx, `INSERT INTO materials (key_id, id, wrapped, created, rotation_type) VALUES ($1, $2, $3, $4, $5)`,
		keyID, m.ID, nonNilBlob(m.Wrapped), created, m.RotationType)
	return classify(err)
}

// GetMaterial returns one material of a key, or store.ErrNotFound.
func (s *Store) GetMaterial(ctx context.Context, keyID, materialID string) (*store.Material, error) {
	m := store.Material{KeyID: keyID, ID: materialID}
	var created *int64
	err := s.q().QueryRow(ctx, `SELECT wrapped, created, rotation_type FROM materials WHERE key_id = $1 AND id = $2`,
		keyID, materialID).Scan(&m.Wrapped, &created, &m.RotationType)
	if err != nil {
		return nil, fmt.Errorf("get material %s of key %s: %w", materialID, keyID, classify(err))
	}
	m.Created = decodeTime(created)
	return &m, nil
}
