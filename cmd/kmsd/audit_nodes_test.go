package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// writeNodeLogs makes the logs of a cluster of n nodes: one store (an
// SQLite database in the returned store folder: the shared store is the
// same interface whatever its backend) holding each log's anchor, and one
// folder per node with its own signing key and a closed log of records
// records.
func writeNodeLogs(t *testing.T, n, records int) (storeDir string, nodes []string) {
	t.Helper()
	ctx := context.Background()
	storeDir = filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(ctx, backend.Config{Type: backend.SQLite, DataDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ks, err := keystore.OpenFile(filepath.Join(storeDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dir := t.TempDir()
		signer, err := audit.LoadOrCreateSigningKey(ctx, filepath.Join(dir, audit.SigningKeyFile), ks)
		if err != nil {
			t.Fatal(err)
		}
		l, err := audit.Open(ctx, audit.Options{Dir: filepath.Join(dir, audit.DirName), Signer: signer,
			DigestEvery: 2, DigestInterval: -1, Anchors: storeAnchors{st}, AllowUnanchored: true})
		if err != nil {
			t.Fatal(err)
		}
		for j := range records {
			r := &audit.Record{EventName: "Encrypt", RequestID: "req", UserIdentity: audit.UserIdentity{Type: "IAMUser"}}
			r.RequestParameters = map[string]any{"node": i, "n": j}
			if err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, dir)
	}
	return storeDir, nodes
}

// TestAuditVerifyNodes verifies the logs of three nodes in one command:
// each against its own anchor in the shared store, with one line per node
// and one summary, and refuses a set with a log altered, cut back, given
// twice, foreign to the store or left out.
func TestAuditVerifyNodes(t *testing.T) {
	storeDir, nodes := writeNodeLogs(t, 3, 4)
	_, foreign := writeNodeLogs(t, 1, 2) // anchored in another store
	nodeArgs := func(dirs ...string) []string {
		args := []string{"verify", "--data-dir", storeDir}
		for _, d := range dirs {
			args = append(args, "--node", d)
		}
		return args
	}
	// cutBack removes the last records (and digests) of a node's log, as
	// a log replaced by an older copy.
	cutBack := func(t *testing.T, node string) {
		files, err := audit.LogFiles(filepath.Join(node, audit.DirName))
		if err != nil {
			t.Fatal(err)
		}
		last := files[len(files)-1]
		b, _ := os.ReadFile(last)
		lines := strings.SplitAfter(string(b), "\n")
		if err := os.WriteFile(last, []byte(strings.Join(lines[:len(lines)/2], "")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	alter := func(t *testing.T, node string) {
		files, _ := audit.LogFiles(filepath.Join(node, audit.DirName))
		b, _ := os.ReadFile(files[0])
		s := strings.Replace(string(b), `"requestID":"req"`, `"requestID":"rex"`, 1)
		os.WriteFile(files[0], []byte(s), 0o600)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		damage  func(t *testing.T, nodes []string) // on a copy of the nodes
		wantErr bool
		want    []string
	}{
		{name: "all three", args: nil, want: []string{
			": OK: log ", "OK: 3 node logs, 12 records in all, each reaching its anchor in the store; every log the store anchors"}},
		{name: "one left out", args: []string{"drop-last"}, wantErr: true, want: []string{
			"which no --node holds", "FAILED: 2 node logs verified, but 1 anchored log is missing"}},
		{name: "one left out, --partial", args: []string{"drop-last", "--partial"}, want: []string{
			"note: not given (--partial): log ", "OK: 2 node logs, 8 records in all, each reaching its anchor in the store; 2 of the 3 logs the store anchors"}},
		{name: "one altered", damage: func(t *testing.T, n []string) { alter(t, n[1]) }, wantErr: true, want: []string{
			"was altered", "FAILED: 1 of 3 node logs failed verification"}},
		{name: "one cut back", damage: func(t *testing.T, n []string) { cutBack(t, n[2]) }, wantErr: true, want: []string{
			"was removed from its end", "FAILED: 1 of 3 node logs failed verification"}},
		{name: "one given twice", args: []string{"twice"}, wantErr: true, want: []string{
			"was given already", "FAILED: 1 of 4 node logs failed verification"}},
		{name: "a foreign log", args: []string{"foreign"}, wantErr: true, want: []string{
			"the store holds no anchor for log", "FAILED: 1 of 4 node logs failed verification"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given := make([]string, len(nodes))
			for i, n := range nodes {
				given[i] = filepath.Join(t.TempDir(), "node")
				copyTree(t, n, given[i])
			}
			if tc.damage != nil {
				tc.damage(t, given)
			}
			var extra []string
			for _, a := range tc.args {
				switch a {
				case "drop-last":
					given = given[:2]
				case "twice":
					given = append(given, given[0])
				case "foreign":
					given = append(given, foreign[0])
				default:
					extra = append(extra, a)
				}
			}
			out, _, err := runAudit(t, append(nodeArgs(given...), extra...)...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v\n%s", err, tc.wantErr, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if !tc.wantErr && strings.Count(out, ": OK: log ") != len(given) {
				t.Errorf("want one OK line per node:\n%s", out)
			}
		})
	}
}

func TestAuditVerifyNodesUsage(t *testing.T) {
	storeDir, nodes := writeNodeLogs(t, 1, 1)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--data-dir", storeDir, "--node", nodes[0], "--dir", nodes[0]}, "--node verifies whole node folders"},
		{[]string{"verify", "--data-dir", storeDir, "--node", nodes[0], "file"}, "--node verifies whole node folders"},
		{[]string{"verify", "--data-dir", storeDir, "--partial"}, "--partial goes with --node"},
		{[]string{"verify", "--data-dir", t.TempDir(), "--node", nodes[0]}, "no store in"},
	} {
		if _, _, err := runAudit(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
