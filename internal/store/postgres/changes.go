package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// recordRows appends one change per row that query selects, with the
// columns (kind, id, key_id, account, region) in that order, dated with the
// transaction's time, and returns how many it appended. args are query's
// parameters ($1, $2, …).
//
// The Seqs are drawn in the same statement by raising change_seq by the
// number of rows: the transaction already holds that row's lock (see
// lockChangeFeed), so they follow every Seq committed before, and a
// savepoint rolled back takes its Seqs back with its changes. The order of
// the changes of one statement is the row order of query as PostgreSQL
// reads it; the contract leaves it to the backend.
func (tx *writeTx) recordRows(ctx context.Context, query string, args ...any) (int64, error) {
	now := len(args) + 1
	tag, err := tx.q.Exec(ctx, `WITH c AS (
			SELECT s.kind, s.id, s.key_id, s.account, s.region, row_number() OVER () AS n
			FROM (`+query+`) AS s (kind, id, key_id, account, region)
		), total AS (
			SELECT count(*) AS n FROM c
		), drawn AS (
			UPDATE change_seq SET seq = change_seq.seq + total.n FROM total
			WHERE change_seq.id = 1 AND total.n > 0
			RETURNING change_seq.seq - total.n AS base
		)
		INSERT INTO changes (seq, kind, id, key_id, account, region, time)
		SELECT drawn.base + c.n, c.kind, c.id, c.key_id, c.account, c.region, $`+fmt.Sprint(now)+`::bigint
		FROM c CROSS JOIN drawn`,
		append(args, tx.now)...)
	if err != nil {
		return 0, fmt.Errorf("record changes: %w", err)
	}
	tx.changes += tag.RowsAffected()
	return tag.RowsAffected(), nil
}

// record appends c to the change feed, dated with the transaction's time.
func (tx *writeTx) record(ctx context.Context, c store.Change) error {
	_, err := tx.recordRows(ctx, `SELECT $1::text, $2::text, $3::text, $4::text, $5::text`,
		c.Kind, c.ID, c.KeyID, c.Account, c.Region)
	return err
}

// recordForKey appends a change of kind to the record id of key keyID,
// scoped by the key's account and region: store.ErrNotFound if the key does
// not exist.
func (tx *writeTx) recordForKey(ctx context.Context, kind, id, keyID string) error {
	n, err := tx.recordRows(ctx, `SELECT $1::text, $2::text, k.id, k.account, k.region FROM keys k WHERE k.id = $3`,
		kind, id, keyID)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("record change: key %s: %w", keyID, store.ErrNotFound)
	}
	return nil
}

// Changes implements store.ChangeFeed.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	changes, err := s.changes(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("changes after %d: %w", after, err)
	}
	return changes, nil
}

func (s *Store) changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	q := s.q()
	// The changes are read before the prune mark, each in its own
	// snapshot (READ COMMITTED). The mark only grows, so a prune that
	// removed changes this read needed shows in the mark read after it; a
	// prune after the read can only make the answer ErrChangesPruned
	// needlessly, which the caller survives (it drops its cache).
	rows, err := q.Query(ctx, `SELECT seq, kind, id, key_id, account, region, time FROM changes
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, sqlLimit(limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var changes []store.Change
	for rows.Next() {
		var c store.Change
		var t int64
		if err := rows.Scan(&c.Seq, &c.Kind, &c.ID, &c.KeyID, &c.Account, &c.Region, &t); err != nil {
			return nil, err
		}
		c.Time = time.Unix(0, t).UTC()
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	var pruned int64
	if err := q.QueryRow(ctx, `SELECT seq FROM changes_pruned WHERE id = 1`).Scan(&pruned); err != nil {
		return nil, fmt.Errorf("read prune mark: %w", err)
	}
	if after < pruned {
		return nil, fmt.Errorf("%w: changes up to %d are gone", store.ErrChangesPruned, pruned)
	}
	return changes, nil
}

// LastChange implements store.ChangeFeed. PruneChanges keeps the last
// change, so the highest seq in the table is the highest ever committed.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.q().QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last change: %w", err)
	}
	return seq, nil
}

// PruneChanges implements store.ChangeFeed: it deletes the changes dated
// before t but the last one, and raises the prune mark to the highest seq
// it deleted. It records no change itself.
func (s *Store) PruneChanges(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *writeTx) error {
		var high int64
		err := tx.q.QueryRow(ctx, `WITH d AS (
				DELETE FROM changes WHERE time < $1 AND seq < (SELECT max(seq) FROM changes)
				RETURNING seq
			)
			SELECT count(*), coalesce(max(seq), 0) FROM d`, boundTime(t)).Scan(&n, &high)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		_, err = tx.q.Exec(ctx, `UPDATE changes_pruned SET seq = GREATEST(seq, $1) WHERE id = 1`, high)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune changes before %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return int(n), nil
}

// GetSetting implements store.Settings.
func (s *Store) GetSetting(ctx context.Context, name string) (*store.Setting, error) {
	st := store.Setting{Name: name}
	var updated *int64
	err := s.q().QueryRow(ctx, `SELECT value, revision, updated FROM settings WHERE name = $1`, name).
		Scan(&st.Value, &st.Revision, &updated)
	if err != nil {
		return nil, fmt.Errorf("get setting %s: %w", name, classify(err))
	}
	st.Updated = decodeTime(updated)
	return &st, nil
}

// PutSetting implements store.Settings.
func (s *Store) PutSetting(ctx context.Context, name string, value []byte, revision int64) (int64, error) {
	if name == "" {
		return 0, errors.New("put setting: empty name")
	}
	err := s.write(ctx, func(tx *writeTx) error {
		if revision == 0 {
			tag, err := tx.q.Exec(ctx, `INSERT INTO settings (name, value, revision, updated) VALUES ($1, $2, 1, $3)
				ON CONFLICT (name) DO NOTHING`, name, nonNilBlob(value), tx.now)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: it exists", store.ErrConflict)
			}
		} else {
			tag, err := tx.q.Exec(ctx, `UPDATE settings SET value = $1, revision = revision + 1, updated = $2
				WHERE name = $3 AND revision = $4`, nonNilBlob(value), tx.now, name, revision)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("%w: it is missing or not at revision %d", store.ErrConflict, revision)
			}
		}
		return tx.record(ctx, store.Change{Kind: store.ChangeSetting, ID: name})
	})
	if err != nil {
		return 0, fmt.Errorf("put setting %s at revision %d: %w", name, revision, err)
	}
	return revision + 1, nil
}
