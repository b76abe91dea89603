package postgres

import (
	"context"
	"fmt"

	"github.com/kmsd/kmsd/internal/store"
)

// The methods that reach every record whatever its account or region, for
// what spans the whole store (package store/snapshot). Update's transaction
// runs at READ COMMITTED, where each statement reads the latest commits;
// its statements still see one state of the store because the transaction
// holds the change feed's row lock from its start (lockChangeFeed), which
// every write transaction of every node takes first: none commits until
// it ends.

// ListAllKeys implements store.Keys.
func (s *Store) ListAllKeys(ctx context.Context, after string, limit int) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE id > $1 ORDER BY id LIMIT $2`, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list all keys after %q: %w", after, err)
	}
	return keys, nil
}

// ListImportParams implements store.Materials.
func (s *Store) ListImportParams(ctx context.Context, keyID string) ([]*store.ImportParams, error) {
	rows, err := s.q().Query(ctx, `SELECT id, wrapped_private_key, wrapping_algorithm,
		wrapping_key_spec, created, valid_to FROM import_params WHERE key_id = $1 ORDER BY id`, keyID)
	if err != nil {
		return nil, fmt.Errorf("list import parameters of key %s: %w", keyID, err)
	}
	defer rows.Close()
	var out []*store.ImportParams
	for rows.Next() {
		p := &store.ImportParams{KeyID: keyID}
		var created, validTo *int64
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
	rows, err := s.q().Query(ctx, `SELECT `+aliasColumns+` FROM aliases
		WHERE key_id = $1 ORDER BY account, region, name`, keyID)
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
	rows, err := s.q().Query(ctx, `SELECT `+accessKeyColumns+` FROM access_keys
		WHERE id > $1 ORDER BY id LIMIT $2`, after, sqlLimit(limit))
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
	rows, err := s.q().Query(ctx, `SELECT name, value, revision, updated FROM settings ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	defer rows.Close()
	var out []*store.Setting
	for rows.Next() {
		st := &store.Setting{}
		var updated *int64
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
