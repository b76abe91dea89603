package datafolder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// writeNodeLogs makes the logs of a cluster of n nodes on one store (the
// test backend), which holds each log's anchor: one folder per node with
// its own signing key and a closed log of records records.
func writeNodeLogs(t *testing.T, n, records int) (st store.Store, nodes []string) {
	t.Helper()
	ctx := context.Background()
	storeDir := t.TempDir()
	st = backendtest.Open(t, storeDir)
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
			DigestEvery: 2, DigestInterval: -1, Anchors: AnchorsIn(st), AllowUnanchored: true})
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
	return st, nodes
}

// TestVerifyNodes verifies the logs of three nodes, each against its own
// anchor in the shared store, and finds a log altered, cut back, given
// twice, foreign to the store or left out; a node that never served
// verifies by its anchor at record 0.
func TestVerifyNodes(t *testing.T) {
	ctx := context.Background()
	st, nodes := writeNodeLogs(t, 3, 4)
	_, foreign := writeNodeLogs(t, 1, 2) // anchored in another store
	// cutBack removes the last records (and digests) of a node's log, as
	// a log replaced by an older copy.
	cutBack := func(t *testing.T, node string) {
		files, _ := audit.LogFiles(filepath.Join(node, audit.DirName))
		last := files[len(files)-1]
		b, _ := os.ReadFile(last)
		lines := strings.SplitAfter(string(b), "\n")
		os.WriteFile(last, []byte(strings.Join(lines[:len(lines)/2], "")), 0o600)
	}
	alter := func(t *testing.T, node string) {
		files, _ := audit.LogFiles(filepath.Join(node, audit.DirName))
		b, _ := os.ReadFile(files[0])
		os.WriteFile(files[0], []byte(strings.Replace(string(b), `"requestID":"req"`, `"requestID":"rex"`, 1)), 0o600)
	}
	for _, tc := range []struct {
		name    string
		given   func(n []string) []string
		damage  func(t *testing.T, n []string) // on a copy of the nodes
		failed  int
		missing int
		want    string // in the failing node's Failure or Problem
	}{
		{name: "all three"},
		{name: "one left out", given: func(n []string) []string { return n[:2] }, missing: 1},
		{name: "one altered", damage: func(t *testing.T, n []string) { alter(t, n[1]) }, failed: 1, want: "was altered"},
		{name: "one cut back", damage: func(t *testing.T, n []string) { cutBack(t, n[2]) }, failed: 1, want: "was removed from its end"},
		{name: "one given twice", given: func(n []string) []string { return append(n, n[0]) }, failed: 1, want: "was given already"},
		{name: "a foreign log", given: func(n []string) []string { return append(n, foreign[0]) }, failed: 1, want: "the store holds no anchor for log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given := make([]string, len(nodes))
			for i, n := range nodes {
				given[i] = filepath.Join(t.TempDir(), "node")
				if err := os.CopyFS(given[i], os.DirFS(n)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.damage != nil {
				tc.damage(t, given)
			}
			if tc.given != nil {
				given = tc.given(given)
			}
			rep, err := VerifyNodes(ctx, st, given, false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failed() != tc.failed || len(rep.Missing()) != tc.missing || len(rep.Nodes) != len(given) {
				t.Fatalf("failed %d, missing %d, nodes %d; want %d, %d, %d: %+v", rep.Failed(), len(rep.Missing()), len(rep.Nodes), tc.failed, tc.missing, len(given), rep)
			}
			for _, r := range rep.Nodes {
				if r.OK {
					continue
				}
				why := r.Failure
				if r.Problem != nil {
					why = r.Problem.Error()
				}
				if !strings.Contains(why, tc.want) {
					t.Errorf("%s failed with %q, want %q", r.Dir, why, tc.want)
				}
			}
			if tc.failed == 0 && rep.Records() != uint64(4*len(given)) {
				t.Errorf("records %d, want %d", rep.Records(), 4*len(given))
			}
		})
	}

	t.Run("a node that never served", func(t *testing.T) {
		st, nodes := writeNodeLogs(t, 1, 0)
		rep, err := VerifyNodes(ctx, st, nodes, false)
		if err != nil || rep.Failed() != 0 || !rep.Nodes[0].NoRecordYet {
			t.Fatalf("%+v, %v", rep, err)
		}
	})
}
