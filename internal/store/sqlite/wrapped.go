package sqlite

import (
	"context"
	"database/sql"
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
	rows, err := s.db.QueryContext(ctx, query, args...)
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

// UpdateWrapped implements store.Store.
func (s *Store) UpdateWrapped(ctx context.Context, ref store.WrappedRef, old, new []byte) error {
	var query string
	var args []any
	switch ref.Kind {
	case store.WrappedMaterial:
		query = `UPDATE materials SET wrapped = ? WHERE key_id = ? AND id = ? AND wrapped = ?`
		args = []any{new, ref.KeyID, ref.ID, old}
	case store.WrappedImportParams:
		query = `UPDATE import_params SET wrapped_private_key = ? WHERE key_id = ? AND id = ? AND wrapped_private_key = ?`
		args = []any{new, ref.KeyID, ref.ID, old}
	case store.WrappedAccessKey:
		query = `UPDATE access_keys SET wrapped_secret = ? WHERE id = ? AND wrapped_secret = ?`
		args = []any{new, ref.ID, old}
	case store.WrappedCustomKeyStorePassword:
		query = `UPDATE custom_key_stores SET wrapped_password = ? WHERE id = ? AND wrapped_password = ?`
		args = []any{new, ref.ID, old}
	default:
		return fmt.Errorf("update wrapped: unknown kind %q", ref.Kind)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("update wrapped %s %s/%s: %w", ref.Kind, ref.KeyID, ref.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("update wrapped %s %s/%s: %w", ref.Kind, ref.KeyID, ref.ID, err)
		}
		if n == 0 {
			return fmt.Errorf("update wrapped %s %s/%s: %w (gone or changed meanwhile)", ref.Kind, ref.KeyID, ref.ID, store.ErrNotFound)
		}
		return nil
	})
}
