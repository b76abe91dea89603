// Package backend opens the store a configuration names, so that no
// command or test outside package store names a backend directly.
package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/sqlite"
)

// Types of store.
const (
	SQLite = "sqlite" // embedded, one file in the data folder (the default)
)

// DatabaseFile is the SQLite database's name in the data folder.
const DatabaseFile = "kmsd.db"

// Config names a store.
type Config struct {
	// Type is SQLite ("" means SQLite).
	Type string
	// DataDir is the data folder; the SQLite database is DatabaseFile in it.
	DataDir string
}

// Open opens (creating when needed) and migrates the store cfg names.
func Open(ctx context.Context, cfg Config) (store.Store, error) {
	switch cfg.Type {
	case "", SQLite:
		if cfg.DataDir == "" {
			return nil, errors.New("open store: no data folder")
		}
		return sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
	default:
		return nil, fmt.Errorf("open store: unknown store type %q (known: %s)", cfg.Type, SQLite)
	}
}
