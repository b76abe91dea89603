// Package snapshot takes a consistent copy of every record of a store
// (Take), writes and reads it in a backend-neutral format of JSON lines
// (Encode, Decode; see format.go and docs/operations.md), and loads it into
// an empty store of either backend (Restore). kmsd backup and kmsd restore
// are built on it; SQLite to PostgreSQL is how a deployment grows.
//
// A snapshot holds the records as the store holds them: key material,
// secret access keys, import wrapping keys and custom key store passwords
// stay wrapped by the root of trust, which is not in the snapshot. So a
// snapshot reveals no secret on its own, and is useless without the root
// key, which must be backed up separately.
//
// What a snapshot does not hold: the change feed (a store's record of its
// own writes, for the caches of the nodes that share it, meaningless to
// another store) and the schema version (the format is the contract, not
// either backend's tables).
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/store"
)

// Snapshot is every record of a store at one point in time. Each list is in
// the order the format requires, which Take produces and Encode and Restore
// check: settings by Name, custom key stores, access keys and keys by ID
// (byte order, all unique and not empty).
type Snapshot struct {
	// Created is when the snapshot was taken.
	Created time.Time
	// KeyUsageSince is when the store began recording key usage (zero in a
	// snapshot of format version 1, which holds no key usage).
	KeyUsageSince   time.Time
	Settings        []*store.Setting
	CustomKeyStores []*store.CustomKeyStore
	AccessKeys      []*store.AccessKey
	Keys            []*Key
}

// Key is a key with the records that belong to it, each naming it as its
// KeyID.
type Key struct {
	Key *store.Key
	// Materials are in the order ListMaterials gives (the order they were
	// added), which Restore keeps: the last ones are the newest, and a
	// pending imported material is the last.
	Materials []*store.Material
	// ImportParams are ordered by ID, Grants by ID, Aliases by (Account,
	// Region, Name).
	ImportParams []*store.ImportParams
	Grants       []*store.Grant
	Aliases      []*store.Alias
	// Usage is the key's last recorded use (GetKeyLastUsage), nil when
	// none was recorded.
	Usage *store.KeyUse
}

// pageSize is how many keys, access keys or custom key stores Take asks
// the store for at a time.
const pageSize = 500

// Take reads every record of st in one transaction (st.Update), so that the
// snapshot is one state of the store: every write transaction of both
// backends waits for the one running (SQLite: BEGIN IMMEDIATE and one
// writer per Store; PostgreSQL: the change feed's row lock every write
// transaction of every node takes first), and none commits while Take
// reads. Writers wait for the whole read (about 0.2 s per thousand keys on
// SQLite), so it is kept to reading: the caller encodes the snapshot once
// Take has returned.
func Take(ctx context.Context, st store.Store) (*Snapshot, error) {
	var s *Snapshot
	err := st.Update(ctx, func(tx store.Tx) error {
		// PostgreSQL may run fn again (a serialization failure): start
		// afresh each time.
		var err error
		s, err = take(ctx, tx, time.Now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take a snapshot: %w", err)
	}
	return s, nil
}

func take(ctx context.Context, tx store.Tx, now time.Time) (*Snapshot, error) {
	s := &Snapshot{Created: now.UTC()}
	var err error
	if s.Settings, err = tx.ListSettings(ctx); err != nil {
		return nil, err
	}
	if s.KeyUsageSince, err = tx.KeyUsageSince(ctx); err != nil {
		return nil, err
	}
	if s.CustomKeyStores, err = pages(func(after string) ([]*store.CustomKeyStore, string, error) {
		cs, err := tx.ListCustomKeyStores(ctx, "", "", after, pageSize)
		return cs, lastID(cs, func(c *store.CustomKeyStore) string { return c.ID }), err
	}); err != nil {
		return nil, err
	}
	if s.AccessKeys, err = pages(func(after string) ([]*store.AccessKey, string, error) {
		as, err := tx.ListAllAccessKeys(ctx, after, pageSize)
		return as, lastID(as, func(a *store.AccessKey) string { return a.ID }), err
	}); err != nil {
		return nil, err
	}
	keys, err := pages(func(after string) ([]*store.Key, string, error) {
		ks, err := tx.ListAllKeys(ctx, after, pageSize)
		return ks, lastID(ks, func(k *store.Key) string { return k.ID }), err
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		e := &Key{Key: k}
		if e.Materials, err = tx.ListMaterials(ctx, k.ID); err != nil {
			return nil, err
		}
		if e.ImportParams, err = tx.ListImportParams(ctx, k.ID); err != nil {
			return nil, err
		}
		if e.Grants, err = tx.ListGrants(ctx, k.ID, "", "", 0); err != nil {
			return nil, err
		}
		if e.Aliases, err = tx.ListAliasesOfKey(ctx, k.ID); err != nil {
			return nil, err
		}
		switch e.Usage, err = tx.GetKeyUsage(ctx, k.ID); {
		case errors.Is(err, store.ErrNotFound):
			e.Usage = nil
		case err != nil:
			return nil, err
		}
		s.Keys = append(s.Keys, e)
	}
	// What the store gave must be what the format requires; a store that
	// broke its ordering contract fails here rather than in a restore.
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// pages calls list with the last ID of each page until a page is short.
func pages[T any](list func(after string) ([]T, string, error)) ([]T, error) {
	var all []T
	after := ""
	for {
		page, last, err := list(after)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < pageSize {
			return all, nil
		}
		after = last
	}
}

func lastID[T any](list []T, id func(T) string) string {
	if len(list) == 0 {
		return ""
	}
	return id(list[len(list)-1])
}

// Counts returns how many records of each kind s holds.
func (s *Snapshot) Counts() Counts {
	c := Counts{Settings: len(s.Settings), CustomKeyStores: len(s.CustomKeyStores), AccessKeys: len(s.AccessKeys), Keys: len(s.Keys)}
	for _, k := range s.Keys {
		c.Materials += len(k.Materials)
		c.ImportParams += len(k.ImportParams)
		c.Grants += len(k.Grants)
		c.Aliases += len(k.Aliases)
		if k.Usage != nil {
			c.KeyUsage++
		}
	}
	return c
}

// ErrNotEmpty is returned by Restore for a store that already holds
// records.
var ErrNotEmpty = errors.New("the store is not empty")

// Restore writes every record of s into st, which must be empty (no key,
// access key, custom key store or setting; aliases and grants need keys),
// in one transaction: on any error nothing is written.
//
// Records are written with the store's ordinary methods, so that a
// restored store is exactly a store to which those records were written:
//   - every Revision starts again at 1, and a setting's Updated is the time
//     of the restore (revisions order the writes of one store for its
//     compare-and-set writes; no reader holds one across stores, and the
//     target, being empty, was read by none);
//   - the change feed holds the restore's own changes, one per record as
//     each create method records (the source's feed is not in a snapshot);
//   - each key's materials are added in the snapshot's order, so
//     ListMaterials lists them as the source did.
func Restore(ctx context.Context, st store.Store, s *Snapshot) error {
	if err := s.check(); err != nil {
		return err
	}
	err := st.Update(ctx, func(tx store.Tx) error {
		if err := checkEmpty(ctx, tx); err != nil {
			return err
		}
		return restore(ctx, tx, s)
	})
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

// checkEmpty refuses a store that holds anything a snapshot restores,
// naming what it holds.
func checkEmpty(ctx context.Context, tx store.Tx) error {
	var found []string
	if ks, err := tx.ListAllKeys(ctx, "", 1); err != nil {
		return err
	} else if len(ks) > 0 {
		found = append(found, "keys")
	}
	if as, err := tx.ListAllAccessKeys(ctx, "", 1); err != nil {
		return err
	} else if len(as) > 0 {
		found = append(found, "access keys")
	}
	if cs, err := tx.ListCustomKeyStores(ctx, "", "", "", 1); err != nil {
		return err
	} else if len(cs) > 0 {
		found = append(found, "custom key stores")
	}
	if ss, err := tx.ListSettings(ctx); err != nil {
		return err
	} else if len(ss) > 0 {
		found = append(found, "settings")
	}
	if len(found) > 0 {
		return fmt.Errorf("%w: it holds %s; a snapshot is restored only into an empty store, never merged", ErrNotEmpty, strings.Join(found, ", "))
	}
	return nil
}

func restore(ctx context.Context, tx store.Tx, s *Snapshot) error {
	for _, st := range s.Settings {
		if st.Name == store.SettingRestored {
			continue // this restore writes its own, below
		}
		if _, err := tx.PutSetting(ctx, st.Name, st.Value, 0); err != nil {
			return err
		}
	}
	// The restored store may start a new audit log once (the audit logs of
	// the snapshot's source stay with their nodes).
	marker := fmt.Sprintf("restored from a snapshot of %s", s.Created.UTC().Format(time.RFC3339))
	if _, err := tx.PutSetting(ctx, store.SettingRestored, []byte(marker), 0); err != nil {
		return err
	}
	// GetKeyLastUsage reports the start of tracking of the store the
	// uses were recorded in, not the restore's (a version 1 snapshot has
	// none: the new store's own stays).
	if !s.KeyUsageSince.IsZero() {
		if err := tx.SetKeyUsageSince(ctx, s.KeyUsageSince); err != nil {
			return err
		}
	}
	for _, c := range s.CustomKeyStores {
		if err := tx.CreateCustomKeyStore(ctx, c); err != nil {
			return err
		}
	}
	for _, a := range s.AccessKeys {
		if err := tx.PutAccessKey(ctx, a); err != nil {
			return err
		}
	}
	for _, k := range s.Keys {
		var first *store.Material
		if len(k.Materials) > 0 {
			first = k.Materials[0]
		}
		if err := tx.CreateKey(ctx, k.Key, first); err != nil {
			return err
		}
		for _, m := range k.Materials[min(1, len(k.Materials)):] {
			if err := tx.AddMaterial(ctx, m); err != nil {
				return err
			}
		}
		for _, p := range k.ImportParams {
			if err := tx.PutImportParams(ctx, p); err != nil {
				return err
			}
		}
		for _, g := range k.Grants {
			if err := tx.CreateGrant(ctx, g); err != nil {
				return err
			}
		}
		for _, a := range k.Aliases {
			if err := tx.CreateAlias(ctx, a); err != nil {
				return err
			}
		}
		if k.Usage != nil {
			if err := tx.RecordKeyUsage(ctx, []*store.KeyUse{k.Usage}); err != nil {
				return err
			}
		}
	}
	return nil
}

// check checks every rule of the format's order on s.
func (s *Snapshot) check() error {
	for i := range s.Settings {
		if err := checkSetting(s.Settings, i); err != nil {
			return err
		}
	}
	for i := range s.CustomKeyStores {
		if err := checkCustomKeyStore(s.CustomKeyStores, i); err != nil {
			return err
		}
	}
	for i := range s.AccessKeys {
		if err := checkAccessKey(s.AccessKeys, i); err != nil {
			return err
		}
	}
	for i, k := range s.Keys {
		if err := checkKey(s.Keys, i); err != nil {
			return err
		}
		for j := range k.Materials {
			if err := checkMaterial(k, j); err != nil {
				return err
			}
		}
		for j := range k.ImportParams {
			if err := checkImportParams(k, j); err != nil {
				return err
			}
		}
		for j := range k.Grants {
			if err := checkGrant(k, j); err != nil {
				return err
			}
		}
		for j := range k.Aliases {
			if err := checkAlias(k, j); err != nil {
				return err
			}
		}
		if err := checkUsage(k); err != nil {
			return err
		}
	}
	return nil
}

// checkLast checks the record of kind that Decode just appended to s.
func (s *Snapshot) checkLast(kind string) error {
	var k *Key
	if len(s.Keys) > 0 {
		k = s.Keys[len(s.Keys)-1]
	}
	switch kind {
	case kindSetting:
		return checkSetting(s.Settings, len(s.Settings)-1)
	case kindCustomKeyStore:
		return checkCustomKeyStore(s.CustomKeyStores, len(s.CustomKeyStores)-1)
	case kindAccessKey:
		return checkAccessKey(s.AccessKeys, len(s.AccessKeys)-1)
	case kindKey:
		return checkKey(s.Keys, len(s.Keys)-1)
	case kindMaterial:
		return checkMaterial(k, len(k.Materials)-1)
	case kindImportParams:
		return checkImportParams(k, len(k.ImportParams)-1)
	case kindGrant:
		return checkGrant(k, len(k.Grants)-1)
	case kindAlias:
		return checkAlias(k, len(k.Aliases)-1)
	case kindKeyUsage:
		return checkUsage(k)
	}
	return fmt.Errorf("unknown kind %q", kind)
}

// increasing checks that the sort key of list[i] is not empty and greater
// than that of list[i-1].
func increasing[T any](what string, list []T, i int, sortKey func(T) string) error {
	cur := sortKey(list[i])
	if cur == "" {
		return fmt.Errorf("%s with an empty id or name", what)
	}
	if i > 0 && cur <= sortKey(list[i-1]) {
		return fmt.Errorf("%s %q after %q: out of order or repeated", what, cur, sortKey(list[i-1]))
	}
	return nil
}

func checkSetting(l []*store.Setting, i int) error {
	return increasing("setting", l, i, func(s *store.Setting) string { return s.Name })
}

func checkCustomKeyStore(l []*store.CustomKeyStore, i int) error {
	return increasing("custom key store", l, i, func(c *store.CustomKeyStore) string { return c.ID })
}

func checkAccessKey(l []*store.AccessKey, i int) error {
	return increasing("access key", l, i, func(a *store.AccessKey) string { return a.ID })
}

func checkKey(l []*Key, i int) error {
	if l[i] == nil || l[i].Key == nil {
		return errors.New("a key without its record")
	}
	return increasing("key", l, i, func(k *Key) string { return k.Key.ID })
}

// belongs checks that a record of key k names it.
func belongs(what, id, keyID string, k *Key) error {
	if keyID != k.Key.ID {
		return fmt.Errorf("%s %q of key %q follows key %q", what, id, keyID, k.Key.ID)
	}
	return nil
}

func checkMaterial(k *Key, i int) error {
	m := k.Materials[i]
	if err := belongs("material", m.ID, m.KeyID, k); err != nil {
		return err
	}
	if m.ID == "" {
		return errors.New("material with an empty id")
	}
	// Materials keep the store's order, which is not by ID: only
	// repeats are wrong.
	if slices.ContainsFunc(k.Materials[:i], func(o *store.Material) bool { return o.ID == m.ID }) {
		return fmt.Errorf("material %q repeated", m.ID)
	}
	return nil
}

func checkImportParams(k *Key, i int) error {
	p := k.ImportParams[i]
	if err := belongs("import parameters", p.ID, p.KeyID, k); err != nil {
		return err
	}
	return increasing("import parameters", k.ImportParams, i, func(p *store.ImportParams) string { return p.ID })
}

func checkGrant(k *Key, i int) error {
	g := k.Grants[i]
	if err := belongs("grant", g.ID, g.KeyID, k); err != nil {
		return err
	}
	return increasing("grant", k.Grants, i, func(g *store.Grant) string { return g.ID })
}

func checkAlias(k *Key, i int) error {
	a := k.Aliases[i]
	if err := belongs("alias", a.Name, a.KeyID, k); err != nil {
		return err
	}
	if a.Name == "" {
		return errors.New("alias with an empty name")
	}
	if i > 0 {
		p := k.Aliases[i-1]
		if cmpAlias(p, a) >= 0 {
			return fmt.Errorf("alias %s/%s/%s after %s/%s/%s: out of order or repeated", a.Account, a.Region, a.Name, p.Account, p.Region, p.Name)
		}
	}
	return nil
}

// checkUsage checks that the use of k, if any, names it and has a time:
// RecordKeyUsage could not restore it otherwise.
func checkUsage(k *Key) error {
	u := k.Usage
	if u == nil {
		return nil
	}
	if err := belongs("use", u.Operation, u.KeyID, k); err != nil {
		return err
	}
	if u.Time.IsZero() || u.Operation == "" {
		return fmt.Errorf("use of key %q without a time or operation", u.KeyID)
	}
	return nil
}

// cmpAlias orders aliases by (Account, Region, Name), in byte order.
func cmpAlias(a, b *store.Alias) int {
	if c := strings.Compare(a.Account, b.Account); c != 0 {
		return c
	}
	if c := strings.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}
