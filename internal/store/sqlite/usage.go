package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// RecordKeyUsage stores each use as its key's last use unless a later one
// is stored, in one transaction. It records no change: key usage is cached
// nowhere.
func (s *Store) RecordKeyUsage(ctx context.Context, uses []*store.KeyUse) error {
	if len(uses) == 0 {
		return nil
	}
	// Rows are written in key order, as the PostgreSQL backend does.
	sorted := slices.SortedFunc(slices.Values(uses), func(a, b *store.KeyUse) int { return cmp.Compare(a.KeyID, b.KeyID) })
	err := s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		for _, u := range sorted {
			at, err := encodeTime(u.Time)
			if err != nil || !at.Valid {
				return fmt.Errorf("use of key %s: time %v: %v", u.KeyID, u.Time, err)
			}
			// The SELECT skips a key that does not exist; the upsert keeps
			// the later use.
			_, err = tx.ExecContext(ctx, `INSERT INTO key_usage (key_id, operation, time, request_id, event_id)
				SELECT id, ?, ?, ?, ? FROM keys WHERE id = ?
				ON CONFLICT (key_id) DO UPDATE SET operation = excluded.operation, time = excluded.time,
					request_id = excluded.request_id, event_id = excluded.event_id
				WHERE excluded.time > key_usage.time`,
				u.Operation, at.Int64, u.RequestID, u.EventID, u.KeyID)
			if err != nil {
				return fmt.Errorf("use of key %s: %w", u.KeyID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record key usage: %w", err)
	}
	return nil
}

// GetKeyUsage returns the last recorded use of a key, or store.ErrNotFound.
func (s *Store) GetKeyUsage(ctx context.Context, keyID string) (*store.KeyUse, error) {
	u := store.KeyUse{KeyID: keyID}
	var at sql.NullInt64
	err := s.q().QueryRowContext(ctx, `SELECT operation, time, request_id, event_id FROM key_usage WHERE key_id = ?`, keyID).
		Scan(&u.Operation, &at, &u.RequestID, &u.EventID)
	if err != nil {
		return nil, fmt.Errorf("get usage of key %s: %w", keyID, classify(err))
	}
	u.Time = decodeTime(at)
	return &u, nil
}

// KeyUsageSince returns when schema version 7 began recording key usage.
func (s *Store) KeyUsageSince(ctx context.Context) (time.Time, error) {
	var since sql.NullInt64
	if err := s.q().QueryRowContext(ctx, `SELECT since FROM key_usage_since WHERE id = 1`).Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("key usage tracking start: %w", classify(err))
	}
	return decodeTime(since), nil
}

// SetKeyUsageSince sets when the store began recording key usage (kmsd
// restore).
func (s *Store) SetKeyUsageSince(ctx context.Context, since time.Time) error {
	at, err := encodeTime(since)
	if err != nil || !at.Valid {
		return fmt.Errorf("set key usage tracking start: time %v: %v", since, err)
	}
	err = s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `UPDATE key_usage_since SET since = ? WHERE id = 1`, at.Int64)
		return err
	})
	if err != nil {
		return fmt.Errorf("set key usage tracking start: %w", err)
	}
	return nil
}
