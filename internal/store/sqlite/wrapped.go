package sqlite

import (
	"context"
	"fmt"

	"github.com/kmsd/kmsd/internal/store"
)

// ListWrapped implements store.Store.
func (s *Store) ListWrapped(ctx context.Context, kind string, after store.WrappedRef, limit int) ([]*store.Wrapped, error) {
	if limit <= 0 {
		return nil, nil
	}
	var query string
	var args []any
	switch kind {
	case store.WrappedMaterial, store.WrappedImportParams:
		table, col := "materials", "wrapped"
		if kind == store.WrappedImportParams {
			table, col = "import_params", "wrapped_private_key"
		}
		query = `SELECT t.key_id, t.id, k.account, k.region, t.` + col + ` FROM ` + table + ` t
			JOIN keys k ON k.id = t.key_id
			WHERE t.key_id > ? OR (t.key_id = ? AND t.id > ?)
			ORDER BY t.key_id, t.id LIMIT ?`
		args = []any{after.KeyID, after.KeyID, after.ID, limit}
	case store.WrappedAccessKey:
		query = `SELECT '', id, account, '', wrapped_secret FROM access_keys
			WHERE id > ? ORDER BY id LIMIT ?`
		args = []any{after.ID, limit}
	case store.WrappedCustomKeyStorePassword:
		query = `SELECT '', id, account, region, wrapped_password FROM custom_key_stores
			WHERE id > ? ORDER BY id LIMIT ?`
		args = []any{after.ID, limit}
	default:
		return nil, fmt.Errorf("list wrapped: unknown kind %q", kind)
	}
	rows, err := s.q().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list wrapped %s: %w", kind, err)
	}
	defer rows.Close()
	var out []*store.Wrapped
	for rows.Next() {
		w := &store.Wrapped{WrappedRef: store.WrappedRef{Kind: kind}}
		if err := rows.Scan(&w.KeyID, &w.ID, &w.Account, &w.Region, &w.Blob); err != nil {
			return nil, fmt.Errorf("list wrapped %s: %w", kind, err)
		}
		if kind == store.WrappedAccessKey {
			w.Account = "" // access keys' aad is their id alone
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list wrapped %s: %w", kind, err)
	}
	return out, nil
}

// UpdateWrapped implements store.Store. A blob that changed meanwhile is
// store.ErrNotFound, as UpdateWrapped's own documentation says, and also
// store.ErrConflict, as the Store's compare-and-set contract says. The
// change feed records the rewrapped material (ChangeMaterial), access key
// or custom key store (whose Revision goes up: its record changed); import
// parameters are cached nowhere and have no kind of change.
func (s *Store) UpdateWrapped(ctx context.Context, ref store.WrappedRef, old, new []byte) error {
	var update, exists, record string
	args := []any{nonNilBlob(new)}
	switch ref.Kind {
	case store.WrappedMaterial:
		update = `UPDATE materials SET wrapped = ? WHERE key_id = ? AND id = ? AND wrapped = ?`
		exists = `SELECT count(*) FROM materials WHERE key_id = ? AND id = ?`
		args = append(args, ref.KeyID, ref.ID)
	case store.WrappedImportParams:
		update = `UPDATE import_params SET wrapped_private_key = ? WHERE key_id = ? AND id = ? AND wrapped_private_key = ?`
		exists = `SELECT count(*) FROM import_params WHERE key_id = ? AND id = ?`
		args = append(args, ref.KeyID, ref.ID)
	case store.WrappedAccessKey:
		update = `UPDATE access_keys SET wrapped_secret = ? WHERE id = ? AND wrapped_secret = ?`
		exists = `SELECT count(*) FROM access_keys WHERE id = ?`
		record = `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, id, '', account, '', ? FROM access_keys WHERE id = ?`
		args = append(args, ref.ID)
	case store.WrappedCustomKeyStorePassword:
		update = `UPDATE custom_key_stores SET wrapped_password = ?, revision = revision + 1 WHERE id = ? AND wrapped_password = ?`
		exists = `SELECT count(*) FROM custom_key_stores WHERE id = ?`
		record = `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, id, '', account, region, ? FROM custom_key_stores WHERE id = ?`
		args = append(args, ref.ID)
	default:
		return fmt.Errorf("update wrapped: unknown kind %q", ref.Kind)
	}
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		res, err := tx.ExecContext(ctx, update, append(args, nonNilBlob(old))...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			var found int
			if err := tx.QueryRowContext(ctx, exists, args[1:]...).Scan(&found); err != nil {
				return err
			}
			if found == 0 {
				return fmt.Errorf("%w (gone)", store.ErrNotFound)
			}
			return fmt.Errorf("%w: the blob changed meanwhile", store.ErrConflict)
		}
		switch ref.Kind {
		case store.WrappedMaterial:
			return tx.recordForKey(ctx, store.ChangeMaterial, ref.KeyID, ref.KeyID)
		case store.WrappedAccessKey:
			_, err = tx.ExecContext(ctx, record, store.ChangeAccessKey, tx.now, ref.ID)
		case store.WrappedCustomKeyStorePassword:
			_, err = tx.ExecContext(ctx, record, store.ChangeCustomKeyStore, tx.now, ref.ID)
		}
		if err != nil {
			return fmt.Errorf("record change: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update wrapped %s %s/%s: %w", ref.Kind, ref.KeyID, ref.ID, err)
	}
	return nil
}
