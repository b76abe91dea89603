package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// statements are the hottest statements, prepared once. database/sql
// prepares a statement on each connection the first time it runs there and
// keeps it, instead of preparing and finalizing it on every call as an
// unprepared query does; Tx.StmtContext reuses it inside a transaction.
type statements struct {
	getKey, insertKey, updateKey  *sql.Stmt
	getMaterial, insertMaterial   *sql.Stmt
	getAlias                      *sql.Stmt
	insertChange, insertKeyChange *sql.Stmt
}

// prepare prepares the statements on db.
func prepare(ctx context.Context, db *sql.DB) (*statements, error) {
	st := &statements{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&st.getKey, `SELECT ` + keyColumns + ` FROM keys WHERE id = ?`},
		// Revision is 1 on insert, whatever the caller's record says.
		{&st.insertKey, `INSERT INTO keys (` + keyColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`},
		{&st.updateKey, `UPDATE keys SET description = ?, key_spec = ?,
			key_usage = ?, origin = ?, key_manager = ?, state = ?, created = ?,
			deletion_date = ?, pending_window_days = ?, policy = ?, tags = ?,
			current_material = ?, rotation_enabled = ?, rotation_period_days = ?,
			next_rotation = ?, on_demand_rotations = ?, material_valid_to = ?,
			expiration_model = ?, custom_key_store_id = ?, revision = ?,
			primary_region = ?
			WHERE id = ?`},
		{&st.getMaterial, `SELECT wrapped, created, rotation_type FROM materials WHERE key_id = ? AND id = ?`},
		{&st.insertMaterial, `INSERT INTO materials (key_id, id, wrapped, created, rotation_type) VALUES (?, ?, ?, ?, ?)`},
		{&st.getAlias, `SELECT ` + aliasColumns + ` FROM aliases WHERE account = ? AND region = ? AND name = ?`},
		{&st.insertChange, `INSERT INTO changes (kind, id, key_id, account, region, time) VALUES (?, ?, ?, ?, ?, ?)`},
		// A change to a record of a key, scoped like the key.
		{&st.insertKeyChange, `INSERT INTO changes (kind, id, key_id, account, region, time)
			SELECT ?, ?, id, account, region, ? FROM keys WHERE id = ?`},
	} {
		var err error
		if *p.stmt, err = db.PrepareContext(ctx, p.query); err != nil {
			st.close()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
	}
	return st, nil
}

// close closes the statements prepared so far.
func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.getKey, st.insertKey, st.updateKey, st.getMaterial,
		st.insertMaterial, st.getAlias, st.insertChange, st.insertKeyChange} {
		if s != nil {
			s.Close()
		}
	}
}
