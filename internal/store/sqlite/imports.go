package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// ReplaceMaterial implements store.Store.
func (s *Store) ReplaceMaterial(ctx context.Context, id string, add *store.Material, removeID string, fn func(*store.Key) error) (*store.Key, error) {
	if add != nil && add.KeyID != "" && add.KeyID != id {
		return nil, fmt.Errorf("replace material of key %s: material belongs to key %s", id, add.KeyID)
	}
	return s.updateKey(ctx, id, fn, func(tx *writeTx, k *store.Key) error {
		if removeID != "" {
			res, err := tx.ExecContext(ctx, `DELETE FROM materials WHERE key_id = ? AND id = ?`, id, removeID)
			if err != nil {
				return fmt.Errorf("remove material %s: %w", removeID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("remove material %s: %w", removeID, err)
			} else if n > 0 {
				if err := tx.record(ctx, keyChange(store.ChangeMaterial, k)); err != nil {
					return err
				}
			}
		}
		if add != nil {
			if err := insertMaterial(ctx, tx, id, add); err != nil {
				return fmt.Errorf("material %s: %w", add.ID, err)
			}
			if err := tx.record(ctx, keyChange(store.ChangeMaterial, k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// KeysWithExpiredMaterial implements store.Store, earliest expiry first.
func (s *Store) KeysWithExpiredMaterial(ctx context.Context, t time.Time) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE material_valid_to IS NOT NULL AND material_valid_to <= ? AND state != 'PendingImport'
		ORDER BY material_valid_to, id`,
		boundTime(t))
	if err != nil {
		return nil, fmt.Errorf("keys with material expired at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return keys, nil
}

// PutImportParams implements store.Store.
func (s *Store) PutImportParams(ctx context.Context, p *store.ImportParams) error {
	if p == nil || p.ID == "" || p.KeyID == "" {
		return errors.New("put import parameters: missing parameters, ID or key ID")
	}
	created, err := encodeTime(p.Created)
	if err != nil {
		return fmt.Errorf("put import parameters: created: %w", err)
	}
	validTo, err := encodeTime(p.ValidTo)
	if err != nil {
		return fmt.Errorf("put import parameters: valid to: %w", err)
	}
	// Import parameters are cached nowhere and have no kind of change.
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO import_params (key_id, id, wrapped_private_key,
			wrapping_algorithm, wrapping_key_spec, created, valid_to) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.KeyID, p.ID, nonNilBlob(p.WrappedPrivateKey), p.WrappingAlgorithm, p.WrappingKeySpec, created, validTo)
		return classify(err)
	})
	if err != nil {
		return fmt.Errorf("put import parameters of key %s: %w", p.KeyID, err)
	}
	return nil
}

// GetImportParams implements store.Store.
func (s *Store) GetImportParams(ctx context.Context, keyID, id string) (*store.ImportParams, error) {
	p := store.ImportParams{KeyID: keyID, ID: id}
	var created, validTo sql.NullInt64
	err := s.q().QueryRowContext(ctx, `SELECT wrapped_private_key, wrapping_algorithm, wrapping_key_spec,
		created, valid_to FROM import_params WHERE key_id = ? AND id = ?`, keyID, id).
		Scan(&p.WrappedPrivateKey, &p.WrappingAlgorithm, &p.WrappingKeySpec, &created, &validTo)
	if err != nil {
		return nil, fmt.Errorf("get import parameters of key %s: %w", keyID, classify(err))
	}
	p.Created = decodeTime(created)
	p.ValidTo = decodeTime(validTo)
	return &p, nil
}

// DeleteExpiredImportParams implements store.Store. It records no change:
// import parameters are cached nowhere.
func (s *Store) DeleteExpiredImportParams(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM import_params WHERE valid_to <= ?`, boundTime(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete import parameters expired at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return int(n), nil
}
