package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// CreateAlias inserts an alias: store.ErrExists if its name is taken in its
// account and region, store.ErrNotFound if its key does not exist.
func (s *Store) CreateAlias(ctx context.Context, a *store.Alias) error {
	if a == nil {
		return errors.New("create alias: nil alias")
	}
	created, err := encodeTime(a.Created)
	if err != nil {
		return fmt.Errorf("create alias %s: created: %w", a.Name, err)
	}
	updated, err := encodeTime(a.Updated)
	if err != nil {
		return fmt.Errorf("create alias %s: updated: %w", a.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO aliases (account, region, name, key_id, created, updated)
			VALUES (?, ?, ?, ?, ?, ?)`,
			a.Account, a.Region, a.Name, a.KeyID, created, updated)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("create alias %s in %s/%s for key %s: %w", a.Name, a.Account, a.Region, a.KeyID, err)
	}
	return nil
}

// aliasColumns lists the columns of aliases in the order scanAlias reads
// them.
const aliasColumns = `account, region, name, key_id, created, updated`

func scanAlias(r rowScanner) (*store.Alias, error) {
	var a store.Alias
	var created, updated sql.NullInt64
	if err := r.Scan(&a.Account, &a.Region, &a.Name, &a.KeyID, &created, &updated); err != nil {
		return nil, err
	}
	a.Created = decodeTime(created)
	a.Updated = decodeTime(updated)
	return &a, nil
}

// GetAlias returns an alias by name, or store.ErrNotFound.
func (s *Store) GetAlias(ctx context.Context, account, region, name string) (*store.Alias, error) {
	a, err := scanAlias(s.db.QueryRowContext(ctx, `SELECT `+aliasColumns+` FROM aliases
		WHERE account = ? AND region = ? AND name = ?`, account, region, name))
	if err != nil {
		return nil, fmt.Errorf("get alias %s in %s/%s: %w", name, account, region, classify(err))
	}
	return a, nil
}

// UpdateAlias points an existing alias at keyID and sets its Updated time.
// It returns store.ErrNotFound if the alias or the key does not exist.
func (s *Store) UpdateAlias(ctx context.Context, account, region, name, keyID string, updated time.Time) error {
	u, err := encodeTime(updated)
	if err != nil {
		return fmt.Errorf("update alias %s: updated: %w", name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE aliases SET key_id = ?, updated = ?
			WHERE account = ? AND region = ? AND name = ?`,
			keyID, u, account, region, name)
		if err != nil {
			return classify(err)
		}
		return expectOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("update alias %s in %s/%s to key %s: %w", name, account, region, keyID, err)
	}
	return nil
}

// DeleteAlias removes an alias, or returns store.ErrNotFound.
func (s *Store) DeleteAlias(ctx context.Context, account, region, name string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE account = ? AND region = ? AND name = ?`,
			account, region, name)
		if err != nil {
			return err
		}
		return expectOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("delete alias %s in %s/%s: %w", name, account, region, err)
	}
	return nil
}

// ListAliases lists up to limit aliases of one account and region whose
// name sorts after after, ordered by name; when keyID is not empty only
// those of that key. A limit <= 0 means no limit.
func (s *Store) ListAliases(ctx context.Context, account, region, keyID, after string, limit int) ([]*store.Alias, error) {
	query := `SELECT ` + aliasColumns + ` FROM aliases
		WHERE account = ? AND region = ? AND name > ?
		ORDER BY name LIMIT ?`
	args := []any{account, region, after, sqlLimit(limit)}
	if keyID != "" {
		query = `SELECT ` + aliasColumns + ` FROM aliases
			WHERE key_id = ? AND account = ? AND region = ? AND name > ?
			ORDER BY name LIMIT ?`
		args = append([]any{keyID}, args...)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list aliases of %s/%s: %w", account, region, err)
	}
	defer rows.Close()
	var aliases []*store.Alias
	for rows.Next() {
		a, err := scanAlias(rows)
		if err != nil {
			return nil, fmt.Errorf("list aliases of %s/%s: %w", account, region, err)
		}
		aliases = append(aliases, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list aliases of %s/%s: %w", account, region, err)
	}
	return aliases, nil
}

// CountAliases returns how many aliases point at keyID.
func (s *Store) CountAliases(ctx context.Context, keyID string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM aliases WHERE key_id = ?`, keyID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count aliases of key %s: %w", keyID, err)
	}
	return n, nil
}

// PutAccessKey inserts an access key; store.ErrExists if the ID is taken.
func (s *Store) PutAccessKey(ctx context.Context, a *store.AccessKey) error {
	if a == nil || a.ID == "" {
		return errors.New("put access key: missing access key or ID")
	}
	created, err := encodeTime(a.Created)
	if err != nil {
		return fmt.Errorf("put access key %s: created: %w", a.ID, err)
	}
	secret := a.WrappedSecret
	if secret == nil {
		// A nil []byte would be bound as NULL.
		secret = []byte{}
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO access_keys (id, account, principal_arn, wrapped_secret, created)
			VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.Account, a.PrincipalARN, secret, created)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("put access key %s: %w", a.ID, err)
	}
	return nil
}

const accessKeyColumns = `id, account, principal_arn, wrapped_secret, created`

func scanAccessKey(r rowScanner) (*store.AccessKey, error) {
	var a store.AccessKey
	var created sql.NullInt64
	if err := r.Scan(&a.ID, &a.Account, &a.PrincipalARN, &a.WrappedSecret, &created); err != nil {
		return nil, err
	}
	a.Created = decodeTime(created)
	return &a, nil
}

// GetAccessKey returns an access key by ID, or store.ErrNotFound.
func (s *Store) GetAccessKey(ctx context.Context, id string) (*store.AccessKey, error) {
	a, err := scanAccessKey(s.db.QueryRowContext(ctx, `SELECT `+accessKeyColumns+` FROM access_keys WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get access key %s: %w", id, classify(err))
	}
	return a, nil
}

// ListAccessKeys returns every access key of an account, ordered by ID.
func (s *Store) ListAccessKeys(ctx context.Context, account string) ([]*store.AccessKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+accessKeyColumns+` FROM access_keys
		WHERE account = ? ORDER BY id`, account)
	if err != nil {
		return nil, fmt.Errorf("list access keys of %s: %w", account, err)
	}
	defer rows.Close()
	var keys []*store.AccessKey
	for rows.Next() {
		a, err := scanAccessKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list access keys of %s: %w", account, err)
		}
		keys = append(keys, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list access keys of %s: %w", account, err)
	}
	return keys, nil
}
