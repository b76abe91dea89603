package datafolder

import (
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/store/backend"
)

const dbFile = backend.DatabaseFile

// TestClassifyDataFolder is the data folder rule, case by case: a first
// start only in an empty folder (or one kmsd init prepared) with an
// unused store, a start only in a whole folder, and a refusal naming what
// is missing otherwise, for a store in the folder (SQLite) and for one
// outside it, shared by several nodes (PostgreSQL).
func TestClassifyDataFolder(t *testing.T) {
	inUse := StoreFacts{AnyKey: true, AccessKeys: true, Installation: &Installation{Region: "us-east-1"}}
	whole := func(mod func(*FolderFacts)) FolderFacts {
		f := FolderFacts{Dir: "/d", DB: DBPresent, Audit: true, SigningKey: true, PublicKey: true,
			State: []string{"audit-signing.key", "audit-signing.pub", "audit/", dbFile, "root.key"}}
		if mod != nil {
			mod(&f)
		}
		return f
	}
	shared := func(f FolderFacts) FolderFacts {
		f.Shared, f.DB = true, DBAbsent
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
		folder FolderFacts
		store  StoreFacts
		want   StartKind
		errHas []string // when refused
	}{
		// A store in the folder (SQLite).
		{"absent or empty folder", FolderFacts{Dir: "/d"}, StoreFacts{}, FirstStart, nil},
		{"a folder kmsd init prepared", FolderFacts{Dir: "/d", DB: DBPresent, State: []string{dbFile, "root.key.sealed"}}, StoreFacts{}, FirstStart, nil},
		{"an empty database left by an interrupted first start", FolderFacts{Dir: "/d", DB: DBEmpty, State: []string{dbFile}}, StoreFacts{}, FirstStart, nil},
		{"only files kmsd does not know", FolderFacts{Dir: "/d", Unknown: []string{"notes.txt"}}, StoreFacts{}, 0, []string{"notes.txt", "nothing of kmsd's"}},
		{"database missing", whole(func(f *FolderFacts) { f.DB = DBAbsent; f.State = f.State[:3] }), StoreFacts{},
			0, []string{dbFile + " (the store", "is missing", "audit/", "restore " + dbFile, "written nothing"}},
		{"database empty", whole(func(f *FolderFacts) { f.DB = DBEmpty }), StoreFacts{}, 0, []string{dbFile, "is empty", "restore " + dbFile}},
		{"database without data beside a root key", FolderFacts{Dir: "/d", DB: DBPresent, State: []string{dbFile, "root.key"}}, StoreFacts{},
			0, []string{"holds no kmsd data", "root.key", "interrupted"}},
		{"whole", whole(nil), inUse, ExistingStart, nil},
		{"a store kmsd restore just filled, no audit log yet: a new log", FolderFacts{Dir: "/d", DB: DBPresent, State: []string{dbFile, "root.key"}},
			StoreFacts{AnyKey: true, AccessKeys: true, Restored: true}, JoinStart, nil},
		{"a restored store whose first log is gone", FolderFacts{Dir: "/d", DB: DBPresent, State: []string{dbFile, "root.key"}},
			StoreFacts{AnyKey: true, AccessKeys: true}, 0, []string{"audit/", "is missing", "audit-signing.key"}},
		{"whole, kept by an earlier kmsd (no installation record)", whole(nil), StoreFacts{AnyKey: true, AccessKeys: true}, ExistingStart, nil},
		{"whole but for the public key", whole(func(f *FolderFacts) { f.PublicKey = false }), inUse, 0, []string{"audit-signing.pub is missing", "restore it"}},
		{"root key missing", whole(func(f *FolderFacts) { f.MissingRoots = []string{"root.key"} }), inUse, 0, []string{"root key root.key is missing", "never makes a new root"}},
		{"a rotated root missing", whole(func(f *FolderFacts) { f.MissingRoots = []string{"root-20250101T000000Z-0a1b2c3d.key"} }), inUse, 0, []string{"root-20250101T000000Z-0a1b2c3d.key is missing"}},
		{"audit log missing", whole(func(f *FolderFacts) { f.Audit = false }), inUse, 0, []string{"audit/ is missing", "kmsd audit accept-reset"}},
		{"signing key missing", whole(func(f *FolderFacts) { f.SigningKey, f.PublicKey = false, false }), inUse, 0, []string{"audit-signing.key is missing"}},
		{"several parts missing", whole(func(f *FolderFacts) { f.Audit, f.SigningKey, f.MissingRoots = false, false, []string{"root.key"} }), inUse,
			0, []string{"root.key is missing", "audit/ is missing", "audit-signing.key is missing"}},
		{"a store in use by a roots manifest alone", whole(func(f *FolderFacts) { f.Audit = false }), StoreFacts{Manifest: true}, 0, []string{"audit/ is missing"}},

		// A store outside the folder, shared by several nodes (PostgreSQL).
		{"shared: empty folder, unused store", FolderFacts{Dir: "/d", Shared: true}, StoreFacts{}, FirstStart, nil},
		{"shared: empty folder, store in use: a new node", FolderFacts{Dir: "/d", Shared: true}, inUse, JoinStart, nil},
		{"shared: a new node with the root key files copied in", FolderFacts{Dir: "/d", Shared: true, State: []string{"root.key"}}, inUse, JoinStart, nil},
		{"shared: a new node lacking a root key file", FolderFacts{Dir: "/d", Shared: true, MissingRoots: []string{"root.key"}}, inUse, 0, []string{"root.key is missing"}},
		{"shared: whole", shared(whole(nil)), inUse, ExistingStart, nil},
		{"shared: audit log missing", shared(whole(func(f *FolderFacts) { f.Audit = false })), inUse, 0, []string{"audit/ is missing"}},
		{"shared: the folder of a store that is gone", shared(whole(nil)), StoreFacts{}, 0, []string{"the store holds no kmsd data", "point kmsd at the store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Classify(tc.folder, tc.store)
			if tc.errHas == nil {
				if err != nil || got != tc.want {
					t.Fatalf("Classify = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Classify = %v, want a refusal", got)
			}
			for _, w := range tc.errHas {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
