package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// migrations upgrade the schema one version at a time: migrations[i] takes
// the database from version i to version i+1. They are forward-only and,
// once released, never edited: to change the schema, append a migration.
// Version n holds the same records as version n of the SQLite backend.
// Open applies the missing ones in order, in one transaction, and records
// the new version in schema_version.
//
// Column conventions: times are BIGINT Unix nanoseconds (NULL for the zero
// time), secrets are BYTEA already wrapped by the keystore, tags and grant
// operations and constraints are JSON in TEXT (JSONB would refuse a "\u0000"
// escape, which encoding/json writes for a NUL in a tag). Every column that
// identifies, pages or sorts records is COLLATE "C": byte order, the
// SQLite backend's, whatever the database's default collation.
var migrations = [][]string{
	// Version 1: keys, their materials, aliases and access keys.
	{
		`CREATE TABLE keys (
			id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			account             TEXT COLLATE "C" NOT NULL,
			region              TEXT COLLATE "C" NOT NULL,
			description         TEXT    NOT NULL DEFAULT '',
			key_spec            TEXT    NOT NULL DEFAULT '',
			key_usage           TEXT    NOT NULL DEFAULT '',
			origin              TEXT    NOT NULL DEFAULT '',
			key_manager         TEXT    NOT NULL DEFAULT '',
			state               TEXT    NOT NULL DEFAULT '',
			created             BIGINT,
			deletion_date       BIGINT,
			pending_window_days INTEGER NOT NULL DEFAULT 0,
			policy              TEXT    NOT NULL DEFAULT '',
			tags                TEXT    NOT NULL DEFAULT '[]',
			current_material    TEXT    NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX keys_by_account ON keys (account, region, id)`,
		`CREATE INDEX keys_by_state_deletion ON keys (state, deletion_date)`,

		// added orders a key's materials as they were added (SQLite's
		// rowid does that there).
		`CREATE TABLE materials (
			key_id  TEXT COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			id      TEXT COLLATE "C" NOT NULL,
			wrapped BYTEA  NOT NULL,
			created BIGINT,
			added   BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY,
			PRIMARY KEY (key_id, id)
		)`,

		`CREATE TABLE aliases (
			account TEXT COLLATE "C" NOT NULL,
			region  TEXT COLLATE "C" NOT NULL,
			name    TEXT COLLATE "C" NOT NULL,
			key_id  TEXT COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			created BIGINT,
			updated BIGINT,
			PRIMARY KEY (account, region, name)
		)`,
		// Serves CountAliases, ListAliases of one key and the cascade
		// from keys.
		`CREATE INDEX aliases_by_key ON aliases (key_id, name)`,

		`CREATE TABLE access_keys (
			id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			account        TEXT COLLATE "C" NOT NULL,
			principal_arn  TEXT   NOT NULL,
			wrapped_secret BYTEA  NOT NULL,
			created        BIGINT
		)`,
		`CREATE INDEX access_keys_by_account ON access_keys (account, id)`,
	},
	// Version 2: grants. Operations and the encryption context constraints
	// are JSON; the grant token itself is never stored, only its SHA-256.
	{
		`CREATE TABLE grants (
			id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			key_id             TEXT COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			name               TEXT COLLATE "C" NOT NULL DEFAULT '',
			grantee_principal  TEXT   NOT NULL DEFAULT '',
			retiring_principal TEXT COLLATE "C" NOT NULL DEFAULT '',
			issuing_account    TEXT   NOT NULL DEFAULT '',
			operations         TEXT   NOT NULL DEFAULT '[]',
			constraints        TEXT   NOT NULL DEFAULT '{}',
			token_hash         BYTEA  NOT NULL,
			created            BIGINT
		)`,
		`CREATE INDEX grants_by_key ON grants (key_id, name, id)`,
		`CREATE INDEX grants_by_retiring ON grants (retiring_principal, id)`,
	},
	// Version 3: key rotation. The rotation settings of a key, and how
	// each material came to be (its rotation date is its created time).
	{
		`ALTER TABLE keys ADD COLUMN rotation_enabled BOOLEAN NOT NULL DEFAULT false`,
		`ALTER TABLE keys ADD COLUMN rotation_period_days INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE keys ADD COLUMN next_rotation BIGINT`,
		`ALTER TABLE keys ADD COLUMN on_demand_rotations INTEGER NOT NULL DEFAULT 0`,
		`CREATE INDEX keys_by_next_rotation ON keys (rotation_enabled, next_rotation)`,
		`ALTER TABLE materials ADD COLUMN rotation_type TEXT NOT NULL DEFAULT ''`,
	},
	// Version 4: imported key material. When a key's material expires,
	// and the parameters of each GetParametersForImport (the RSA wrapping
	// private key wrapped by the keystore; the import token only hashed).
	{
		`ALTER TABLE keys ADD COLUMN material_valid_to BIGINT`,
		`ALTER TABLE keys ADD COLUMN expiration_model TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX keys_by_material_valid_to ON keys (material_valid_to)`,
		`CREATE TABLE import_params (
			key_id              TEXT COLLATE "C" NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
			id                  TEXT COLLATE "C" NOT NULL,
			wrapped_private_key BYTEA  NOT NULL,
			wrapping_algorithm  TEXT   NOT NULL DEFAULT '',
			wrapping_key_spec   TEXT   NOT NULL DEFAULT '',
			created             BIGINT,
			valid_to            BIGINT,
			PRIMARY KEY (key_id, id)
		)`,
		// Serves DeleteExpiredImportParams.
		`CREATE INDEX import_params_by_valid_to ON import_params (valid_to)`,
	},
	// Version 5: custom key stores (PKCS#11 tokens standing in for AWS
	// CloudHSM clusters) and the custom key store of each key. As in the
	// SQLite schema the key's column has no foreign key (it is '' for keys
	// outside a custom key store): DeleteCustomKeyStore checks for keys
	// itself.
	{
		`ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT COLLATE "C" NOT NULL DEFAULT ''`,
		// Serves CountKeysInCustomKeyStore and the in-use check of
		// DeleteCustomKeyStore.
		`CREATE INDEX keys_by_custom_key_store ON keys (custom_key_store_id)`,
		`CREATE TABLE custom_key_stores (
			id                    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			account               TEXT COLLATE "C" NOT NULL,
			region                TEXT COLLATE "C" NOT NULL,
			name                  TEXT COLLATE "C" NOT NULL,
			type                  TEXT   NOT NULL DEFAULT '',
			cluster_id            TEXT COLLATE "C" NOT NULL,
			trust_anchor          TEXT   NOT NULL DEFAULT '',
			wrapped_password      BYTEA  NOT NULL,
			created               BIGINT,
			connection_state      TEXT   NOT NULL DEFAULT '',
			connection_error_code TEXT   NOT NULL DEFAULT '',
			UNIQUE (account, region, name),
			UNIQUE (cluster_id)
		)`,
	},
	// Version 6: revisions, the change feed and shared settings. Every
	// mutable record carries the revision the store bumps on each write
	// (existing rows start at 1). Every write appends one row per record it
	// wrote to changes, in its own transaction, with a seq drawn from the
	// one row of change_seq, which only grows (a seq is never reused, even
	// once pruned) and whose row lock orders the write transactions (see
	// lockChangeFeed). changes_pruned holds the highest seq PruneChanges
	// deleted: a reader asking for changes after an earlier seq has missed
	// some (store.ErrChangesPruned).
	{
		`ALTER TABLE keys ADD COLUMN revision BIGINT NOT NULL DEFAULT 1`,
		`ALTER TABLE aliases ADD COLUMN revision BIGINT NOT NULL DEFAULT 1`,
		`ALTER TABLE custom_key_stores ADD COLUMN revision BIGINT NOT NULL DEFAULT 1`,
		`CREATE TABLE changes (
			seq     BIGINT NOT NULL PRIMARY KEY,
			kind    TEXT   NOT NULL,
			id      TEXT   NOT NULL,
			key_id  TEXT   NOT NULL DEFAULT '',
			account TEXT   NOT NULL DEFAULT '',
			region  TEXT   NOT NULL DEFAULT '',
			time    BIGINT NOT NULL
		)`,
		// Serves PruneChanges.
		`CREATE INDEX changes_by_time ON changes (time)`,
		`CREATE TABLE change_seq (
			id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			seq BIGINT  NOT NULL
		)`,
		`INSERT INTO change_seq (id, seq) VALUES (1, 0)`,
		`CREATE TABLE changes_pruned (
			id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			seq BIGINT  NOT NULL
		)`,
		`INSERT INTO changes_pruned (id, seq) VALUES (1, 0)`,
		`CREATE TABLE settings (
			name     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
			value    BYTEA  NOT NULL,
			revision BIGINT NOT NULL,
			updated  BIGINT
		)`,
	},
	// Version 7: multi-Region keys and key usage. Each key of a
	// multi-Region key (one per Region, each its own row) names the key id
	// they share and the Region of their primary. key_usage holds the last
	// cryptographic use of each key; key_usage_since the time this schema
	// began recording it (whole seconds).
	{
		`ALTER TABLE keys ADD COLUMN multi_region_key_id TEXT COLLATE "C" NOT NULL DEFAULT ''`,
		`ALTER TABLE keys ADD COLUMN primary_region TEXT COLLATE "C" NOT NULL DEFAULT ''`,
		// Serves ListMultiRegionKeys; single-Region keys stay out of it.
		`CREATE INDEX keys_by_multi_region_key ON keys (multi_region_key_id, region) WHERE multi_region_key_id <> ''`,
		`CREATE TABLE key_usage (
			key_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES keys (id) ON DELETE CASCADE,
			operation  TEXT   NOT NULL,
			time       BIGINT NOT NULL,
			request_id TEXT   NOT NULL DEFAULT '',
			event_id   TEXT   NOT NULL DEFAULT ''
		)`,
		`CREATE TABLE key_usage_since (
			id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			since BIGINT  NOT NULL
		)`,
		`INSERT INTO key_usage_since (id, since) VALUES (1, FLOOR(EXTRACT(EPOCH FROM now()))::BIGINT * 1000000000)`,
	},
}

// migrationLock is the key of the advisory lock that migrations hold: the
// first 8 bytes of "kmsd-migrate" read as a big-endian number, a constant
// no other application is likely to pick.
const migrationLock int64 = 0x6b6d73642d6d6967

// ErrSchemaTooNew is returned by Open for a database whose schema version is
// newer than this code knows (a newer kmsd migrated it).
var ErrSchemaTooNew = errors.New("the database schema is newer than this kmsd supports: upgrade kmsd")

// migrate creates the schema_version table if needed and applies the
// migrations the database lacks, all in one transaction.
//
// Several nodes may start at the same moment on an empty database. Each
// takes pg_advisory_xact_lock(migrationLock) before it even looks at
// schema_version: the others wait at that statement until the first
// commits (the lock is released at the end of its transaction), then find
// the schema up to date and apply nothing. Without the lock two nodes
// would both see no schema_version, and one would fail on a duplicate
// table (a unique violation in the catalog) instead of starting.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin transaction: %w", redact(err, s.secrets))
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		tx.Rollback(rctx)
	}()
	q := scrubbed{tx, s.secrets}
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	// Look before creating: a role that may not create tables can still
	// open a database that is up to date.
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look for schema_version: %w", err)
	}
	if !exists {
		if _, err := q.Exec(ctx, `CREATE TABLE schema_version (
			id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_version: %w", err)
		}
		if _, err := q.Exec(ctx, `INSERT INTO schema_version (id, version) VALUES (1, 0)`); err != nil {
			return fmt.Errorf("migrate: init schema_version: %w", err)
		}
	}
	var version int
	if err := q.QueryRow(ctx, `SELECT version FROM schema_version WHERE id = 1`).Scan(&version); err != nil {
		return fmt.Errorf("migrate: read schema_version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("%w (database at schema version %d, this kmsd knows up to %d)", ErrSchemaTooNew, version, len(migrations))
	}
	if version == len(migrations) {
		return nil // nothing to commit; the deferred rollback ends the transaction
	}
	for v := version; v < len(migrations); v++ {
		for i, stmt := range migrations[v] {
			if _, err := q.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate to schema version %d, statement %d: %w", v+1, i, err)
			}
		}
	}
	if _, err := q.Exec(ctx, `UPDATE schema_version SET version = $1 WHERE id = 1`, len(migrations)); err != nil {
		return fmt.Errorf("migrate: record schema version %d: %w", len(migrations), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", redact(err, s.secrets))
	}
	return nil
}
