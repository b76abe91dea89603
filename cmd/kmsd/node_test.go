package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/internal/rootmgr"
)

// TestNodeFolderWiped: on a shared store, a node whose data folder lost
// its audit log is recognised by its node id and refused, with nothing
// written, as is a second node under the same id; --accept-lost-log
// starts a new log whose first record accepts the loss, after which
// kmsd audit verify --node reports the old log as lost instead of
// missing.
func TestNodeFolderWiped(t *testing.T) {
	dsn := pgtest.DSN(t)
	base := t.TempDir()
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	serveArgs := func(dir, id string, more ...string) []string {
		return append([]string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--store", "postgres", "--store-dsn", dsn, "--node-id", id}, more...)
	}
	serveOnce := func(args []string) {
		t.Helper()
		_, _, stop := startServe(t, args, noEnv)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(args []string, want string) {
		t.Helper()
		var stderr lockedbuf.Buffer
		err := run(context.Background(), append([]string{"serve"}, args...), &lockedbuf.Buffer{}, &stderr, noEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("serve %v: %v, want an error with %q", args[len(args)-1], err, want)
		}
	}

	serveOnce(serveArgs(a, "n1"))
	copyRootKey(t, a, b)
	serveOnce(serveArgs(b, "n2"))

	// Node n1's folder is wiped but for its root key.
	entries, _ := os.ReadDir(a)
	for _, e := range entries {
		if e.Name() != rootmgr.RootKeyFile {
			os.RemoveAll(filepath.Join(a, e.Name()))
		}
	}
	before := readFolder(t, a)
	refused(serveArgs(a, "n1"), `is node "n1" of this cluster, which keeps audit log`)
	if after := readFolder(t, a); after != before {
		t.Fatalf("the refused start wrote to the folder:\n%s", after)
	}
	// A new folder under an id in use, and a node's folder under another
	// node's id.
	copyRootKey(t, a, c)
	refused(serveArgs(c, "n1"), "was wiped or replaced")
	refused(serveArgs(b, "n1"), `node id "n1" keeps audit log`)
	refused(serveArgs(b, "n2", "--accept-lost-log"), "has lost no audit log")

	serveOnce(serveArgs(a, "n1", "--accept-lost-log"))
	files, err := audit.LogFiles(filepath.Join(a, audit.DirName))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(files[0])
	if line, _, _ := strings.Cut(string(first), "\n"); !strings.Contains(line, `"eventName":"AcceptLostNodeLog"`) || !strings.Contains(line, `"node":"n1"`) {
		t.Errorf("the new log's first record is not the acceptance: %s", line)
	}
	serveOnce(serveArgs(a, "n1")) // and it starts as before

	t.Setenv("KMSD_STORE", "postgres")
	t.Setenv("KMSD_STORE_DSN", dsn)
	out, _, err := runAudit(t, "verify", "--node", a, "--node", b)
	if err != nil || !strings.Contains(out, `of node "n1"`) || !strings.Contains(out, "was declared lost") || !strings.Contains(out, "OK: 2 node logs") {
		t.Fatalf("verify after the accepted loss: %v\n%s", err, out)
	}
}
