package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kmsd/kmsd/internal/store"
)

// grantConstraints is the stored form of a grant's constraints.
type grantConstraints struct {
	Equals map[string]string `json:"EncryptionContextEquals,omitempty"`
	Subset map[string]string `json:"EncryptionContextSubset,omitempty"`
}

// CreateGrant implements store.Store.
func (s *Store) CreateGrant(ctx context.Context, g *store.Grant) error {
	if g == nil || g.ID == "" || g.KeyID == "" {
		return errors.New("create grant: missing grant, ID or key ID")
	}
	created, err := encodeTime(g.Created)
	if err != nil {
		return fmt.Errorf("create grant %s: created: %w", g.ID, err)
	}
	ops, err := json.Marshal(append([]string{}, g.Operations...))
	if err != nil {
		return fmt.Errorf("create grant %s: %w", g.ID, err)
	}
	cons, err := json.Marshal(grantConstraints{g.EncryptionContextEquals, g.EncryptionContextSubset})
	if err != nil {
		return fmt.Errorf("create grant %s: %w", g.ID, err)
	}
	hash := g.TokenHash
	if hash == nil {
		hash = []byte{}
	}
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, key_id, name, grantee_principal, retiring_principal,
			issuing_account, operations, constraints, token_hash, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.KeyID, g.Name, g.GranteePrincipal, g.RetiringPrincipal, g.IssuingAccount, string(ops), string(cons), hash, created)
		if err != nil {
			return classify(err)
		}
		return tx.recordForKey(ctx, store.ChangeGrant, g.ID, g.KeyID)
	})
	if err != nil {
		return fmt.Errorf("create grant %s: %w", g.ID, err)
	}
	return nil
}

const grantColumns = `id, key_id, name, grantee_principal, retiring_principal, issuing_account, operations, constraints, token_hash, created`

func scanGrant(r rowScanner) (*store.Grant, error) {
	var g store.Grant
	var ops, cons string
	var created sql.NullInt64
	if err := r.Scan(&g.ID, &g.KeyID, &g.Name, &g.GranteePrincipal, &g.RetiringPrincipal, &g.IssuingAccount, &ops, &cons, &g.TokenHash, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ops), &g.Operations); err != nil {
		return nil, fmt.Errorf("grant %s: operations: %w", g.ID, err)
	}
	var c grantConstraints
	if err := json.Unmarshal([]byte(cons), &c); err != nil {
		return nil, fmt.Errorf("grant %s: constraints: %w", g.ID, err)
	}
	g.EncryptionContextEquals, g.EncryptionContextSubset = c.Equals, c.Subset
	g.Created = decodeTime(created)
	return &g, nil
}

// GetGrant implements store.Store.
func (s *Store) GetGrant(ctx context.Context, id string) (*store.Grant, error) {
	g, err := scanGrant(s.q().QueryRowContext(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get grant %s: %w", id, classify(err))
	}
	return g, nil
}

// ListGrants implements store.Store.
func (s *Store) ListGrants(ctx context.Context, keyID, name, after string, limit int) ([]*store.Grant, error) {
	q := `SELECT ` + grantColumns + ` FROM grants WHERE key_id = ? AND id > ?`
	args := []any{keyID, after}
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	gs, err := s.queryGrants(ctx, q, limit, args...)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", keyID, err)
	}
	return gs, nil
}

// ListRetirableGrants implements store.Store.
func (s *Store) ListRetirableGrants(ctx context.Context, principal, after string, limit int) ([]*store.Grant, error) {
	gs, err := s.queryGrants(ctx, `SELECT `+grantColumns+` FROM grants WHERE retiring_principal = ? AND id > ?`, limit, principal, after)
	if err != nil {
		return nil, fmt.Errorf("list grants retirable by %s: %w", principal, err)
	}
	return gs, nil
}

func (s *Store) queryGrants(ctx context.Context, q string, limit int, args ...any) ([]*store.Grant, error) {
	q += ` ORDER BY id`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.q().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gs []*store.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, rows.Err()
}

// DeleteGrant implements store.Store.
func (s *Store) DeleteGrant(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		// Record the change first, while the grant still names its key:
		// no row recorded means no such grant.
		res, err := tx.ExecContext(ctx, `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, g.id, g.key_id, k.account, k.region, ? FROM grants g JOIN keys k ON k.id = g.key_id
			WHERE g.id = ?`, store.ChangeGrant, tx.now, id)
		if err != nil {
			return fmt.Errorf("record change: %w", err)
		}
		if err := expectOneRow(res); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM grants WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return expectOneRow(res)
	})
	if err != nil {
		return fmt.Errorf("delete grant %s: %w", id, err)
	}
	return nil
}
