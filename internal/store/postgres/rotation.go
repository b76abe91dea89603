package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// ListMaterials returns every material of a key in the order they were
// added: the identity column added grows with every insert into materials.
func (s *Store) ListMaterials(ctx context.Context, keyID string) ([]*store.Material, error) {
	rows, err := s.q().Query(ctx, `SELECT id, wrapped, created, rotation_type FROM materials
		WHERE key_id = $1 ORDER BY added`, keyID)
	if err != nil {
		return nil, fmt.Errorf("list materials of key %s: %w", keyID, err)
	}
	defer rows.Close()
	var ms []*store.Material
	for rows.Next() {
		m := &store.Material{KeyID: keyID}
		var created *int64
		if err := rows.Scan(&m.ID, &m.Wrapped, &created, &m.RotationType); err != nil {
			return nil, fmt.Errorf("list materials of key %s: %w", keyID, err)
		}
		m.Created = decodeTime(created)
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list materials of key %s: %w", keyID, err)
	}
	return ms, nil
}

// RotateKey implements store.Store: the key update and the new material
// are written in one transaction that reads the key with SELECT … FOR
// UPDATE, so that of two nodes rotating the same key at once the second
// sees the first's rotation in fn.
func (s *Store) RotateKey(ctx context.Context, id string, m *store.Material, fn func(*store.Key) error) (*store.Key, error) {
	if m == nil {
		return nil, errors.New("rotate key: nil material")
	}
	if m.KeyID != "" && m.KeyID != id {
		return nil, fmt.Errorf("rotate key %s: material belongs to key %s", id, m.KeyID)
	}
	return s.updateKey(ctx, id, fn, func(tx *writeTx, k *store.Key) error {
		if err := insertMaterial(ctx, tx, id, m); err != nil {
			return fmt.Errorf("material %s: %w", m.ID, err)
		}
		return tx.record(ctx, keyChange(store.ChangeMaterial, k))
	})
}

// KeysDueForRotation implements store.Store, earliest due first.
func (s *Store) KeysDueForRotation(ctx context.Context, t time.Time) ([]*store.Key, error) {
	keys, err := s.queryKeys(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE rotation_enabled AND next_rotation <= $1
		ORDER BY next_rotation, id`,
		boundTime(t))
	if err != nil {
		return nil, fmt.Errorf("keys due for rotation at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return keys, nil
}
