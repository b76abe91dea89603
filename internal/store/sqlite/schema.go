package sqlite

import (
	"context"
	"fmt"
)

// migrations upgrade the schema one version at a time: migrations[i] takes
// the database from version i to version i+1. They are forward-only and,
// once released, never edited: to change the schema, append a migration.
// Open applies the missing ones in order, in one transaction, and records
// the new version in schema_version.
//
// Column conventions: times are INTEGER Unix nanoseconds (NULL for the zero
// time), secrets are BLOBs already wrapped by the keystore, tags are a JSON
// array of {"Key","Value"} objects.
var migrations = [][]string{
	// Version 1: keys, their materials, aliases and access keys.
	{
		`CREATE TABLE keys (
			id                  TEXT    NOT NULL PRIMARY KEY,
			account             TEXT    NOT NULL,
			region              TEXT    NOT NULL,
			description         TEXT    NOT NULL DEFAULT '',
			key_spec            TEXT    NOT NULL DEFAULT '',
			key_usage           TEXT    NOT NULL DEFAULT '',
			origin              TEXT    NOT NULL DEFAULT '',
			key_manager         TEXT    NOT NULL DEFAULT '',
			state               TEXT    NOT NULL DEFAULT '',
			created             INTEGER,
			deletion_date       INTEGER,
			pending_window_days INTEGER NOT NULL DEFAULT 0,
			policy              TEXT    NOT NULL DEFAULT '',
			tags                TEXT    NOT NULL DEFAULT '[]',
			current_material    TEXT    NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX keys_by_account ON keys (account, region, id)`,
		`CREATE INDEX keys_by_state_deletion ON keys (state, deletion_date)`,

		`CREATE TABLE materials (
			key_id  TEXT    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			id      TEXT    NOT NULL,
			wrapped BLOB    NOT NULL,
			created INTEGER,
			PRIMARY KEY (key_id, id)
		)`,

		`CREATE TABLE aliases (
			account TEXT    NOT NULL,
			region  TEXT    NOT NULL,
			name    TEXT    NOT NULL,
			key_id  TEXT    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			created INTEGER,
			updated INTEGER,
			PRIMARY KEY (account, region, name)
		)`,
		// Serves CountAliases, ListAliases of one key and the cascade
		// from keys.
		`CREATE INDEX aliases_by_key ON aliases (key_id, name)`,

		`CREATE TABLE access_keys (
			id             TEXT    NOT NULL PRIMARY KEY,
			account        TEXT    NOT NULL,
			principal_arn  TEXT    NOT NULL,
			wrapped_secret BLOB    NOT NULL,
			created        INTEGER
		)`,
		`CREATE INDEX access_keys_by_account ON access_keys (account, id)`,
	},
	// Version 2: grants. Operations and the encryption context constraints
	// are JSON; the grant token itself is never stored, only its SHA-256.
	{
		`CREATE TABLE grants (
			id                 TEXT    NOT NULL PRIMARY KEY,
			key_id             TEXT    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			name               TEXT    NOT NULL DEFAULT '',
			grantee_principal  TEXT    NOT NULL DEFAULT '',
			retiring_principal TEXT    NOT NULL DEFAULT '',
			issuing_account    TEXT    NOT NULL DEFAULT '',
			operations         TEXT    NOT NULL DEFAULT '[]',
			constraints        TEXT    NOT NULL DEFAULT '{}',
			token_hash         BLOB    NOT NULL,
			created            INTEGER
		)`,
		`CREATE INDEX grants_by_key ON grants (key_id, name, id)`,
		`CREATE INDEX grants_by_retiring ON grants (retiring_principal, id)`,
	},
	// Version 3: key rotation. The rotation settings of a key, and how
	// each material came to be (its rotation date is its created time).
	{
		`ALTER TABLE keys ADD COLUMN rotation_enabled INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE keys ADD COLUMN rotation_period_days INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE keys ADD COLUMN next_rotation INTEGER`,
		`ALTER TABLE keys ADD COLUMN on_demand_rotations INTEGER NOT NULL DEFAULT 0`,
		`CREATE INDEX keys_by_next_rotation ON keys (rotation_enabled, next_rotation)`,
		`ALTER TABLE materials ADD COLUMN rotation_type TEXT NOT NULL DEFAULT ''`,
	},
	// Version 4: imported key material. When a key's material expires,
	// and the parameters of each GetParametersForImport (the RSA wrapping
	// private key wrapped by the keystore; the import token only hashed).
	{
		`ALTER TABLE keys ADD COLUMN material_valid_to INTEGER`,
		`ALTER TABLE keys ADD COLUMN expiration_model TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX keys_by_material_valid_to ON keys (material_valid_to)`,
		`CREATE TABLE import_params (
			key_id              TEXT    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			id                  TEXT    NOT NULL,
			wrapped_private_key BLOB    NOT NULL,
			wrapping_algorithm  TEXT    NOT NULL DEFAULT '',
			wrapping_key_spec   TEXT    NOT NULL DEFAULT '',
			created             INTEGER,
			valid_to            INTEGER,
			PRIMARY KEY (key_id, id)
		)`,
	},
	// Version 5: custom key stores (PKCS#11 tokens standing in for AWS
	// CloudHSM clusters) and the custom key store of each key. The key's
	// column has no foreign key: SQLite cannot add a REFERENCES column with
	// a non-NULL default, so DeleteCustomKeyStore checks for keys itself.
	{
		`ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT NOT NULL DEFAULT ''`,
		// Serves CountKeysInCustomKeyStore and the in-use check of
		// DeleteCustomKeyStore.
		`CREATE INDEX keys_by_custom_key_store ON keys (custom_key_store_id)`,
		`CREATE TABLE custom_key_stores (
			id                    TEXT    NOT NULL PRIMARY KEY,
			account               TEXT    NOT NULL,
			region                TEXT    NOT NULL,
			name                  TEXT    NOT NULL,
			type                  TEXT    NOT NULL DEFAULT '',
			cluster_id            TEXT    NOT NULL,
			trust_anchor          TEXT    NOT NULL DEFAULT '',
			wrapped_password      BLOB    NOT NULL,
			created               INTEGER,
			connection_state      TEXT    NOT NULL DEFAULT '',
			connection_error_code TEXT    NOT NULL DEFAULT '',
			UNIQUE (account, region, name),
			UNIQUE (cluster_id)
		)`,
	},
	// Version 6: revisions, the change feed and shared settings. Every
	// mutable record carries the revision the store bumps on each write
	// (existing rows start at 1). Every write appends one row per record it
	// wrote to changes, in its own transaction; seq is AUTOINCREMENT so
	// that a seq is never reused, even once pruned. changes_pruned holds
	// the highest seq PruneChanges deleted: a reader asking for changes
	// after an earlier seq has missed some (store.ErrChangesPruned).
	{
		`ALTER TABLE keys ADD COLUMN revision INTEGER NOT NULL DEFAULT 1`,
		`ALTER TABLE aliases ADD COLUMN revision INTEGER NOT NULL DEFAULT 1`,
		`ALTER TABLE custom_key_stores ADD COLUMN revision INTEGER NOT NULL DEFAULT 1`,
		`CREATE TABLE changes (
			seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
			kind    TEXT    NOT NULL,
			id      TEXT    NOT NULL,
			key_id  TEXT    NOT NULL DEFAULT '',
			account TEXT    NOT NULL DEFAULT '',
			region  TEXT    NOT NULL DEFAULT '',
			time    INTEGER NOT NULL
		)`,
		// Serves PruneChanges.
		`CREATE INDEX changes_by_time ON changes (time)`,
		`CREATE TABLE changes_pruned (
			id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			seq INTEGER NOT NULL
		)`,
		`INSERT INTO changes_pruned (id, seq) VALUES (1, 0)`,
		`CREATE TABLE settings (
			name     TEXT    NOT NULL PRIMARY KEY,
			value    BLOB    NOT NULL,
			revision INTEGER NOT NULL,
			updated  INTEGER
		)`,
	},
	// Version 7: multi-Region keys and key usage. Each key of a
	// multi-Region key (one per Region, each its own row) names the key id
	// they share and the Region of their primary. key_usage holds the last
	// cryptographic use of each key; key_usage_since the time this schema
	// began recording it (whole seconds).
	{
		`ALTER TABLE keys ADD COLUMN multi_region_key_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE keys ADD COLUMN primary_region TEXT NOT NULL DEFAULT ''`,
		// Serves ListMultiRegionKeys; single-Region keys stay out of it.
		`CREATE INDEX keys_by_multi_region_key ON keys (multi_region_key_id, region) WHERE multi_region_key_id <> ''`,
		`CREATE TABLE key_usage (
			key_id     TEXT    NOT NULL PRIMARY KEY REFERENCES keys (id) ON DELETE CASCADE,
			operation  TEXT    NOT NULL,
			time       INTEGER NOT NULL,
			request_id TEXT    NOT NULL DEFAULT '',
			event_id   TEXT    NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE key_usage_since (
			id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			since INTEGER NOT NULL
		)`,
		`INSERT INTO key_usage_since (id, since) VALUES (1, CAST(strftime('%s', 'now') AS INTEGER) * 1000000000)`,
	},
}

// migrate creates the schema_version table if needed and applies the
// migrations the database lacks, all in one write transaction, so that two
// processes opening a new database at once cannot both migrate it.
func (s *Store) migrate(ctx context.Context) error {
	return s.write(ctx, func(ctx context.Context, tx *writeTx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO schema_version (id, version) VALUES (1, 0)`); err != nil {
			return fmt.Errorf("init schema_version: %w", err)
		}
		var version int
		if err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE id = 1`).Scan(&version); err != nil {
			return fmt.Errorf("read schema_version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this kmsd supports (%d)", version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			for i, stmt := range migrations[v] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate to schema version %d, statement %d: %w", v+1, i, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ? WHERE id = 1`, len(migrations)); err != nil {
			return fmt.Errorf("record schema version %d: %w", len(migrations), err)
		}
		return nil
	})
}
