package main

import (
	"strings"
	"testing"
)

// TestClassifyDataFolder is the data folder rule, case by case: a first
// start only in an empty folder (or one kmsd init prepared) with an
// unused store, a start only in a whole folder, and a refusal naming what
// is missing otherwise, for a store in the folder (SQLite) and for one
// outside it, shared by several nodes (PostgreSQL).
func TestClassifyDataFolder(t *testing.T) {
	inUse := storeFacts{Keys: 3, AccessKeys: true, Installation: &installation{Region: "us-east-1"}}
	whole := func(mod func(*folderFacts)) folderFacts {
		f := folderFacts{Dir: "/d", DB: dbPresent, Audit: true, SigningKey: true, PublicKey: true,
			State: []string{"audit-signing.key", "audit-signing.pub", "audit/", dbFile, "root.key"}}
		if mod != nil {
			mod(&f)
		}
		return f
	}
	shared := func(f folderFacts) folderFacts {
		f.Shared, f.DB = true, dbAbsent
		var state []string
		for _, s := range f.State {
			if s != dbFile {
				state = append(state, s)
			}
		}
		f.State = state
		return f
	}
	for _, tc := range []struct {
		name   string
		folder folderFacts
		store  storeFacts
		want   startKind
		errHas []string // when refused
	}{
		// A store in the folder (SQLite).
		{"absent or empty folder", folderFacts{Dir: "/d"}, storeFacts{}, firstStart, nil},
		{"a folder kmsd init prepared", folderFacts{Dir: "/d", DB: dbPresent, State: []string{dbFile, "root.key.sealed"}}, storeFacts{}, firstStart, nil},
		{"an empty database left by an interrupted first start", folderFacts{Dir: "/d", DB: dbEmpty, State: []string{dbFile}}, storeFacts{}, firstStart, nil},
		{"only files kmsd does not know", folderFacts{Dir: "/d", Unknown: []string{"notes.txt"}}, storeFacts{}, 0, []string{"notes.txt", "nothing of kmsd's"}},
		{"database missing", whole(func(f *folderFacts) { f.DB = dbAbsent; f.State = f.State[:3] }), storeFacts{},
			0, []string{dbFile + " (the store", "is missing", "audit/", "restore " + dbFile, "written nothing"}},
		{"database empty", whole(func(f *folderFacts) { f.DB = dbEmpty }), storeFacts{}, 0, []string{dbFile, "is empty", "restore " + dbFile}},
		{"database without data beside a root key", folderFacts{Dir: "/d", DB: dbPresent, State: []string{dbFile, "root.key"}}, storeFacts{},
			0, []string{"holds no kmsd data", "root.key", "interrupted"}},
		{"whole", whole(nil), inUse, existingStart, nil},
		{"a store kmsd restore just filled, no audit log yet: a new log", folderFacts{Dir: "/d", DB: dbPresent, State: []string{dbFile, "root.key"}},
			storeFacts{Keys: 3, AccessKeys: true, Restored: true}, joinStart, nil},
		{"a restored store whose first log is gone", folderFacts{Dir: "/d", DB: dbPresent, State: []string{dbFile, "root.key"}},
			storeFacts{Keys: 3, AccessKeys: true}, 0, []string{"audit/", "is missing", "audit-signing.key"}},
		{"whole, kept by an earlier kmsd (no installation record)", whole(nil), storeFacts{Keys: 1, AccessKeys: true}, existingStart, nil},
		{"whole but for the public key", whole(func(f *folderFacts) { f.PublicKey = false }), inUse, 0, []string{"audit-signing.pub is missing", "restore it"}},
		{"root key missing", whole(func(f *folderFacts) { f.MissingRoots = []string{"root.key"} }), inUse, 0, []string{"root key root.key is missing", "never makes a new root"}},
		{"a rotated root missing", whole(func(f *folderFacts) { f.MissingRoots = []string{"root-20250101T000000Z-0a1b2c3d.key"} }), inUse, 0, []string{"root-20250101T000000Z-0a1b2c3d.key is missing"}},
		{"audit log missing", whole(func(f *folderFacts) { f.Audit = false }), inUse, 0, []string{"audit/ is missing", "kmsd audit accept-reset"}},
		{"signing key missing", whole(func(f *folderFacts) { f.SigningKey, f.PublicKey = false, false }), inUse, 0, []string{"audit-signing.key is missing"}},
		{"several parts missing", whole(func(f *folderFacts) { f.Audit, f.SigningKey, f.MissingRoots = false, false, []string{"root.key"} }), inUse,
			0, []string{"root.key is missing", "audit/ is missing", "audit-signing.key is missing"}},
		{"a store in use by a roots manifest alone", whole(func(f *folderFacts) { f.Audit = false }), storeFacts{Manifest: true}, 0, []string{"audit/ is missing"}},

		// A store outside the folder, shared by several nodes (PostgreSQL).
		{"shared: empty folder, unused store", folderFacts{Dir: "/d", Shared: true}, storeFacts{}, firstStart, nil},
		{"shared: empty folder, store in use: a new node", folderFacts{Dir: "/d", Shared: true}, inUse, joinStart, nil},
		{"shared: a new node with the root key files copied in", folderFacts{Dir: "/d", Shared: true, State: []string{"root.key"}}, inUse, joinStart, nil},
		{"shared: a new node lacking a root key file", folderFacts{Dir: "/d", Shared: true, MissingRoots: []string{"root.key"}}, inUse, 0, []string{"root.key is missing"}},
		{"shared: whole", shared(whole(nil)), inUse, existingStart, nil},
		{"shared: audit log missing", shared(whole(func(f *folderFacts) { f.Audit = false })), inUse, 0, []string{"audit/ is missing"}},
		{"shared: the folder of a store that is gone", shared(whole(nil)), storeFacts{}, 0, []string{"the store holds no kmsd data", "point kmsd at the store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := classifyDataFolder(tc.folder, tc.store)
			if tc.errHas == nil {
				if err != nil || got != tc.want {
					t.Fatalf("classifyDataFolder = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("classifyDataFolder = %v, want a refusal", got)
			}
			for _, w := range tc.errHas {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
