package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// record appends c to the change feed, dated with the transaction's time.
func (tx *writeTx) record(ctx context.Context, c store.Change) error {
	_, err := tx.prepared(ctx, tx.stmts.insertChange).ExecContext(ctx,
		c.Kind, c.ID, c.KeyID, c.Account, c.Region, tx.now)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	return nil
}

// recordForKey appends a change of kind to the record id of key keyID,
// scoped by the key's account and region: store.ErrNotFound if the key does
// not exist.
func (tx *writeTx) recordForKey(ctx context.Context, kind, id, keyID string) error {
	res, err := tx.prepared(ctx, tx.stmts.insertKeyChange).ExecContext(ctx, kind, id, tx.now, keyID)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	if err := expectOneRow(res); err != nil {
		return fmt.Errorf("record change: key %s: %w", keyID, err)
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
	// snapshot. The mark only grows, so a prune that removed changes
	// this read needed shows in the mark read after it; a prune after the
	// read can only make the answer ErrChangesPruned needlessly, which
	// the caller survives (it drops its cache).
	rows, err := q.QueryContext(ctx, `SELECT seq, kind, id, key_id, account, region, time FROM changes
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, sqlLimit(limit))
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
	if err := q.QueryRowContext(ctx, `SELECT seq FROM changes_pruned WHERE id = 1`).Scan(&pruned); err != nil {
		return nil, fmt.Errorf("read prune mark: %w", err)
	}
	if after < pruned {
		return nil, fmt.Errorf("%w: changes up to %d are gone", store.ErrChangesPruned, pruned)
	}
	return changes, nil
}

// LastChange implements store.ChangeFeed. PruneChanges keeps the last
// change, so the highest seq in the table is the highest ever assigned.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.q().QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("last change: %w", err)
	}
	return seq, nil
}

// PruneChanges implements store.ChangeFeed: it deletes the changes dated
// before t but the last one, and raises the prune mark to the highest seq
// it deleted. It records no change itself.
func (s *Store) PruneChanges(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		const prunable = `FROM changes WHERE time < ? AND seq < (SELECT max(seq) FROM changes)`
		var high int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) `+prunable, boundTime(t)).Scan(&high); err != nil {
			return err
		}
		if high == 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE `+prunable, boundTime(t))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE changes_pruned SET seq = max(seq, ?) WHERE id = 1`, high)
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
	var updated int64
	err := s.q().QueryRowContext(ctx, `SELECT value, revision, updated FROM settings WHERE name = ?`, name).
		Scan(&st.Value, &st.Revision, &updated)
	if err != nil {
		return nil, fmt.Errorf("get setting %s: %w", name, classify(err))
	}
	st.Updated = time.Unix(0, updated).UTC()
	return &st, nil
}

// PutSetting implements store.Settings.
func (s *Store) PutSetting(ctx context.Context, name string, value []byte, revision int64) (int64, error) {
	if name == "" {
		return 0, errors.New("put setting: empty name")
	}
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		var err error
		if revision == 0 {
			_, err = tx.ExecContext(ctx, `INSERT INTO settings (name, value, revision, updated) VALUES (?, ?, 1, ?)`,
				name, nonNilBlob(value), tx.now)
			if errors.Is(classify(err), store.ErrExists) {
				return fmt.Errorf("%w: it exists", store.ErrConflict)
			}
			if err != nil {
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, `UPDATE settings SET value = ?, revision = revision + 1, updated = ?
				WHERE name = ? AND revision = ?`, nonNilBlob(value), tx.now, name, revision)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
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
