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
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO aliases (account, region, name, key_id, created, updated, revision)
			VALUES (?, ?, ?, ?, ?, ?, 1)`,
			a.Account, a.Region, a.Name, a.KeyID, created, updated)
		if err != nil {
			return classify(err)
		}
		return tx.record(ctx, aliasChange(a.Account, a.Region, a.Name, a.KeyID))
	})
	if err != nil {
		return fmt.Errorf("create alias %s in %s/%s for key %s: %w", a.Name, a.Account, a.Region, a.KeyID, err)
	}
	return nil
}

// aliasColumns lists the columns of aliases in the order scanAlias reads
// them.
const aliasColumns = `account, region, name, key_id, created, updated, revision`

func scanAlias(r rowScanner) (*store.Alias, error) {
	var a store.Alias
	var created, updated sql.NullInt64
	if err := r.Scan(&a.Account, &a.Region, &a.Name, &a.KeyID, &created, &updated, &a.Revision); err != nil {
		return nil, err
	}
	a.Created = decodeTime(created)
	a.Updated = decodeTime(updated)
	return &a, nil
}

// GetAlias returns an alias by name, or store.ErrNotFound.
func (s *Store) GetAlias(ctx context.Context, account, region, name string) (*store.Alias, error) {
	a, err := scanAlias(s.prepared(ctx, s.stmts.getAlias).QueryRowContext(ctx, account, region, name))
	if err != nil {
		return nil, fmt.Errorf("get alias %s in %s/%s: %w", name, account, region, classify(err))
	}
	return a, nil
}

// aliasChange is the change to an alias, which names the key it points at
// (now).
func aliasChange(account, region, name, keyID string) store.Change {
	return store.Change{Kind: store.ChangeAlias, ID: name, KeyID: keyID, Account: account, Region: region}
}

// aliasMismatch explains why a compare-and-set write of an alias changed no
// row: store.ErrNotFound when the alias is missing, store.ErrConflict when it
// points at another key than keyID.
func aliasMismatch(ctx context.Context, tx *writeTx, account, region, name, keyID string) error {
	var current string
	err := tx.QueryRowContext(ctx, `SELECT key_id FROM aliases WHERE account = ? AND region = ? AND name = ?`,
		account, region, name).Scan(&current)
	if err != nil {
		return classify(err)
	}
	return fmt.Errorf("%w: it points at key %s, not %s", store.ErrConflict, current, keyID)
}

// UpdateAlias points an alias at toKeyID and sets its Updated time, if it
// still points at fromKeyID.
func (s *Store) UpdateAlias(ctx context.Context, account, region, name, fromKeyID, toKeyID string, updated time.Time) error {
	u, err := encodeTime(updated)
	if err != nil {
		return fmt.Errorf("update alias %s: updated: %w", name, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE aliases SET key_id = ?, updated = ?, revision = revision + 1
			WHERE account = ? AND region = ? AND name = ? AND key_id = ?`,
			toKeyID, u, account, region, name, fromKeyID)
		if err != nil {
			// The foreign key: toKeyID is missing.
			return classify(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return aliasMismatch(ctx, tx, account, region, name, fromKeyID)
		}
		return tx.record(ctx, aliasChange(account, region, name, toKeyID))
	})
	if err != nil {
		return fmt.Errorf("update alias %s in %s/%s from key %s to key %s: %w", name, account, region, fromKeyID, toKeyID, err)
	}
	return nil
}

// DeleteAlias removes an alias if it still points at keyID.
func (s *Store) DeleteAlias(ctx context.Context, account, region, name, keyID string) error {
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE account = ? AND region = ? AND name = ? AND key_id = ?`,
			account, region, name, keyID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return aliasMismatch(ctx, tx, account, region, name, keyID)
		}
		return tx.record(ctx, aliasChange(account, region, name, keyID))
	})
	if err != nil {
		return fmt.Errorf("delete alias %s in %s/%s of key %s: %w", name, account, region, keyID, err)
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
	rows, err := s.q().QueryContext(ctx, query, args...)
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
	if err := s.q().QueryRowContext(ctx, `SELECT count(*) FROM aliases WHERE key_id = ?`, keyID).Scan(&n); err != nil {
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
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO access_keys (id, account, principal_arn, wrapped_secret, created)
			VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.Account, a.PrincipalARN, nonNilBlob(a.WrappedSecret), created)
		if err != nil {
			return classify(err)
		}
		return tx.record(ctx, accessKeyChange(a.ID, a.Account))
	})
	if err != nil {
		return fmt.Errorf("put access key %s: %w", a.ID, err)
	}
	return nil
}

// accessKeyChange is the change to an access key; access keys have no
// region.
func accessKeyChange(id, account string) store.Change {
	return store.Change{Kind: store.ChangeAccessKey, ID: id, Account: account}
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
	a, err := scanAccessKey(s.q().QueryRowContext(ctx, `SELECT `+accessKeyColumns+` FROM access_keys WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get access key %s: %w", id, classify(err))
	}
	return a, nil
}

// ListAccessKeys returns every access key of an account, ordered by ID.
func (s *Store) ListAccessKeys(ctx context.Context, account string) ([]*store.AccessKey, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+accessKeyColumns+` FROM access_keys
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
