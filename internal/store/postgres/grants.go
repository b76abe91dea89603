package postgres

import (
	"context"
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
	err = s.write(ctx, func(tx *writeTx) error {
		_, err := tx.q.Exec(ctx, `INSERT INTO grants (id, key_id, name, grantee_principal, retiring_principal,
			issuing_account, operations, constraints, token_hash, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
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
	var created *int64
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
	g, err := scanGrant(s.q().QueryRow(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("get grant %s: %w", id, classify(err))
	}
	return g, nil
}

// ListGrants implements store.Store.
func (s *Store) ListGrants(ctx context.Context, keyID, name, after string, limit int) ([]*store.Grant, error) {
	q := `SELECT ` + grantColumns + ` FROM grants WHERE key_id = $1 AND id > $2 ORDER BY id LIMIT $3`
	args := []any{keyID, after, sqlLimit(limit)}
	if name != "" {
		q = `SELECT ` + grantColumns + ` FROM grants WHERE key_id = $1 AND id > $2 AND name = $4 ORDER BY id LIMIT $3`
		args = append(args, name)
	}
	gs, err := s.queryGrants(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", keyID, err)
	}
	return gs, nil
}

// ListRetirableGrants implements store.Store.
func (s *Store) ListRetirableGrants(ctx context.Context, principal, after string, limit int) ([]*store.Grant, error) {
	gs, err := s.queryGrants(ctx, `SELECT `+grantColumns+` FROM grants WHERE retiring_principal = $1 AND id > $2
		ORDER BY id LIMIT $3`, principal, after, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list grants retirable by %s: %w", principal, err)
	}
	return gs, nil
}

func (s *Store) queryGrants(ctx context.Context, q string, args ...any) ([]*store.Grant, error) {
	rows, err := s.q().Query(ctx, q, args...)
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
	err := s.write(ctx, func(tx *writeTx) error {
		// Record the change first, while the grant still names its key:
		// no row recorded means no such grant.
		n, err := tx.recordRows(ctx, `SELECT $1::text, g.id, g.key_id, k.account, k.region
			FROM grants g JOIN keys k ON k.id = g.key_id WHERE g.id = $2`, store.ChangeGrant, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		tag, err := tx.q.Exec(ctx, `DELETE FROM grants WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return expectOneRow(tag)
	})
	if err != nil {
		return fmt.Errorf("delete grant %s: %w", id, err)
	}
	return nil
}
