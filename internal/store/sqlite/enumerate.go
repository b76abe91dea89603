package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kmsd/kmsd/internal/store"
)

// The methods that reach every record whatever its account or region, for
// what spans the whole store (package store/snapshot). Called on a Store
// that Update bound to a transaction they read in its one snapshot (BEGIN
// IMMEDIATE took the write lock, so no other writer commits meanwhile).

// ListAllKeys implements store.Keys.
func (s *Store) ListAllKeys(ctx context.Context, after string, limit int) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE id > ? ORDER BY id LIMIT ?`, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list all keys after %q: %w", after, err)
	}
	return keys, nil
}

// ListImportParams implements store.Materials.
func (s *Store) ListImportParams(ctx context.Context, keyID string) ([]*store.ImportParams, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT id, wrapped_private_key, wrapping_algorithm,
		wrapping_key_spec, created, valid_to FROM import_params WHERE key_id = ? ORDER BY id`, keyID)
	if err != nil {
		return nil, fmt.Errorf("list import parameters of key %s: %w", keyID, err)
	}
	defer rows.Close()
	var out []*store.ImportParams
	for rows.Next() {
		p := &store.ImportParams{KeyID: keyID}
		var created, validTo sql.NullInt64
		if err := rows.Scan(&p.ID, &p.WrappedPrivateKey, &p.WrappingAlgorithm, &p.WrappingKeySpec, &created, &validTo); err != nil {
			return nil, fmt.Errorf("list import parameters of key %s: %w", keyID, err)
		}
		p.Created = decodeTime(created)
		p.ValidTo = decodeTime(validTo)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list import parameters of key %s: %w", keyID, err)
	}
	return out, nil
}

// ListAliasesOfKey implements store.Aliases.
func (s *Store) ListAliasesOfKey(ctx context.Context, keyID string) ([]*store.Alias, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+aliasColumns+` FROM aliases
		WHERE key_id = ? ORDER BY account, region, name`, keyID)
	if err != nil {
		return nil, fmt.Errorf("list aliases of key %s: %w", keyID, err)
	}
	defer rows.Close()
	var out []*store.Alias
	for rows.Next() {
		a, err := scanAlias(rows)
		if err != nil {
			return nil, fmt.Errorf("list aliases of key %s: %w", keyID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list aliases of key %s: %w", keyID, err)
	}
	return out, nil
}

// ListAllAccessKeys implements store.AccessKeys.
func (s *Store) ListAllAccessKeys(ctx context.Context, after string, limit int) ([]*store.AccessKey, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+accessKeyColumns+` FROM access_keys
		WHERE id > ? ORDER BY id LIMIT ?`, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list all access keys after %q: %w", after, err)
	}
	defer rows.Close()
	var out []*store.AccessKey
	for rows.Next() {
		a, err := scanAccessKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list all access keys after %q: %w", after, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list all access keys after %q: %w", after, err)
	}
	return out, nil
}

// ListSettings implements store.Settings.
func (s *Store) ListSettings(ctx context.Context) ([]*store.Setting, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT name, value, revision, updated FROM settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	defer rows.Close()
	var out []*store.Setting
	for rows.Next() {
		st := &store.Setting{}
		var updated sql.NullInt64
		if err := rows.Scan(&st.Name, &st.Value, &st.Revision, &updated); err != nil {
			return nil, fmt.Errorf("list settings: %w", err)
		}
		st.Updated = decodeTime(updated)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	return out, nil
}
