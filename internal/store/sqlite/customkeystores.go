package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/kmsd/kmsd/internal/store"
)

// customKeyStoreColumns lists the columns of custom_key_stores in the order
// scanCustomKeyStore reads them.
const customKeyStoreColumns = `id, account, region, name, type, cluster_id, trust_anchor,
	wrapped_password, created, connection_state, connection_error_code, revision`

func scanCustomKeyStore(r rowScanner) (*store.CustomKeyStore, error) {
	var c store.CustomKeyStore
	var created sql.NullInt64
	err := r.Scan(&c.ID, &c.Account, &c.Region, &c.Name, &c.Type, &c.ClusterID, &c.TrustAnchor,
		&c.WrappedPassword, &created, &c.ConnectionState, &c.ConnectionErrorCode, &c.Revision)
	if err != nil {
		return nil, err
	}
	c.Created = decodeTime(created)
	return &c, nil
}

// cloneCustomKeyStore returns a copy of c that shares no memory with it.
func cloneCustomKeyStore(c *store.CustomKeyStore) *store.CustomKeyStore {
	d := *c
	d.WrappedPassword = slices.Clone(c.WrappedPassword)
	return &d
}

// nonNilBlob returns b, or an empty slice for nil: a nil []byte would be
// bound as NULL, which the NOT NULL blob columns refuse.
func nonNilBlob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// customKeyStoreChange is the change to the custom key store id.
func customKeyStoreChange(id, account, region string) store.Change {
	return store.Change{Kind: store.ChangeCustomKeyStore, ID: id, Account: account, Region: region}
}

// CreateCustomKeyStore implements store.Store. The UNIQUE constraints of
// custom_key_stores turn a taken ID, name or cluster into store.ErrExists.
func (s *Store) CreateCustomKeyStore(ctx context.Context, cks *store.CustomKeyStore) error {
	if cks == nil || cks.ID == "" {
		return errors.New("create custom key store: missing custom key store or ID")
	}
	created, err := encodeTime(cks.Created)
	if err != nil {
		return fmt.Errorf("create custom key store %s: created: %w", cks.ID, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO custom_key_stores (`+customKeyStoreColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			cks.ID, cks.Account, cks.Region, cks.Name, cks.Type, cks.ClusterID, cks.TrustAnchor,
			nonNilBlob(cks.WrappedPassword), created, cks.ConnectionState, cks.ConnectionErrorCode)
		if err != nil {
			return classify(err)
		}
		return tx.record(ctx, customKeyStoreChange(cks.ID, cks.Account, cks.Region))
	})
	if err != nil {
		return fmt.Errorf("create custom key store %s (%s) in %s/%s: %w", cks.ID, cks.Name, cks.Account, cks.Region, err)
	}
	return nil
}

// GetCustomKeyStore implements store.Store.
func (s *Store) GetCustomKeyStore(ctx context.Context, id string) (*store.CustomKeyStore, error) {
	c, err := scanCustomKeyStore(s.q().QueryRowContext(ctx, `SELECT `+customKeyStoreColumns+`
		FROM custom_key_stores WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get custom key store %s: %w", id, classify(err))
	}
	return c, nil
}

// ListCustomKeyStores implements store.Store. A limit <= 0 means no limit.
func (s *Store) ListCustomKeyStores(ctx context.Context, account, region, after string, limit int) ([]*store.CustomKeyStore, error) {
	query := `SELECT ` + customKeyStoreColumns + ` FROM custom_key_stores
		WHERE account = ? AND region = ? AND id > ?
		ORDER BY id LIMIT ?`
	args := []any{account, region, after, sqlLimit(limit)}
	if account == "" {
		query = `SELECT ` + customKeyStoreColumns + ` FROM custom_key_stores
			WHERE id > ?
			ORDER BY id LIMIT ?`
		args = []any{after, sqlLimit(limit)}
	}
	rows, err := s.q().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list custom key stores of %s/%s after %q: %w", account, region, after, err)
	}
	defer rows.Close()
	var out []*store.CustomKeyStore
	for rows.Next() {
		c, err := scanCustomKeyStore(rows)
		if err != nil {
			return nil, fmt.Errorf("list custom key stores of %s/%s after %q: %w", account, region, after, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list custom key stores of %s/%s after %q: %w", account, region, after, err)
	}
	return out, nil
}

// UpdateCustomKeyStore implements store.Store in one BEGIN IMMEDIATE
// transaction. An error from fn is returned unchanged (not wrapped) and
// nothing is written. Unlike UpdateKey, changes fn makes to ID, Account,
// Region, Type or Created are silently dropped, as the interface promises:
// the record returned carries the stored values, and the next Revision.
func (s *Store) UpdateCustomKeyStore(ctx context.Context, id string, fn func(*store.CustomKeyStore) error) (*store.CustomKeyStore, error) {
	var updated *store.CustomKeyStore
	var fnErr error
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		old, err := scanCustomKeyStore(tx.QueryRowContext(ctx, `SELECT `+customKeyStoreColumns+`
			FROM custom_key_stores WHERE id = ?`, id))
		if err != nil {
			return classify(err)
		}
		c := cloneCustomKeyStore(old)
		if fnErr = fn(c); fnErr != nil {
			return fnErr
		}
		c.ID, c.Account, c.Region, c.Type, c.Created = old.ID, old.Account, old.Region, old.Type, old.Created
		c.Revision = old.Revision + 1
		res, err := tx.ExecContext(ctx, `UPDATE custom_key_stores SET name = ?, cluster_id = ?,
			trust_anchor = ?, wrapped_password = ?, connection_state = ?, connection_error_code = ?,
			revision = ?
			WHERE id = ?`,
			c.Name, c.ClusterID, c.TrustAnchor, nonNilBlob(c.WrappedPassword), c.ConnectionState,
			c.ConnectionErrorCode, c.Revision, id)
		if err != nil {
			// A new name or cluster that another store has: ErrExists.
			return classify(err)
		}
		if err := expectOneRow(res); err != nil {
			return err
		}
		if err := tx.record(ctx, customKeyStoreChange(c.ID, c.Account, c.Region)); err != nil {
			return err
		}
		// Hand back a copy, so that fn keeping its pointer cannot alter
		// what the caller receives.
		updated = cloneCustomKeyStore(c)
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update custom key store %s: %w", id, err)
	}
	return updated, nil
}

// DeleteCustomKeyStore implements store.Store. Keys do not reference
// custom_key_stores with a foreign key (see migration 5), so the in-use check
// is a count, made in the write transaction so that no key can join the
// store between the check and the delete.
func (s *Store) DeleteCustomKeyStore(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		var account, region string
		err := tx.QueryRowContext(ctx, `SELECT account, region FROM custom_key_stores WHERE id = ?`, id).Scan(&account, &region)
		if err != nil {
			return classify(err)
		}
		var keys int
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE custom_key_store_id = ?`, id).Scan(&keys)
		if err != nil {
			return fmt.Errorf("count keys: %w", err)
		}
		if keys > 0 {
			return fmt.Errorf("%w: %d keys belong to it", store.ErrInUse, keys)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM custom_key_stores WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if err := expectOneRow(res); err != nil {
			return err
		}
		return tx.record(ctx, customKeyStoreChange(id, account, region))
	})
	if err != nil {
		return fmt.Errorf("delete custom key store %s: %w", id, err)
	}
	return nil
}

// CountKeysInCustomKeyStore implements store.Store, counting keys in every
// state.
func (s *Store) CountKeysInCustomKeyStore(ctx context.Context, id string) (int, error) {
	if id == "" {
		// custom_key_store_id is empty for every key outside a custom key
		// store; no custom key store has the empty ID.
		return 0, nil
	}
	var n int
	if err := s.q().QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE custom_key_store_id = ?`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys in custom key store %s: %w", id, err)
	}
	return n, nil
}
