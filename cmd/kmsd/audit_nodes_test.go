package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/datafolder"
)

// TestPrintNodes: kmsd audit verify --node prints one line per node and
// one summary from what datafolder.VerifyNodes found (which
// internal/datafolder tests), and fails unless every log verified and,
// without --partial, every log the store anchors was given.
func TestPrintNodes(t *testing.T) {
	ok := func(dir string) datafolder.NodeResult {
		return datafolder.NodeResult{Dir: dir, LogID: "log-" + dir, OK: true, Anchor: audit.Anchor{Sequence: 4},
			Report: &audit.Report{Records: 4, Digests: 3, LastSequence: 4}}
	}
	altered := datafolder.NodeResult{Dir: "b", LogID: "log-b", Anchor: audit.Anchor{Sequence: 4}, Report: &audit.Report{},
		Problem: &audit.Problem{Kind: audit.ProblemChain, Message: "record 2 was altered"}}
	empty := datafolder.NodeResult{Dir: "e", LogID: "log-e", OK: true, NoRecordYet: true, Report: &audit.Report{}}
	twice := datafolder.NodeResult{Dir: "a2", Failure: "log log-a was given already, by a: each node has a log of its own"}
	left := datafolder.AnchoredLog{LogID: "log-c", Anchor: audit.Anchor{Sequence: 7, Time: "T"}}
	lost := datafolder.AnchoredLog{LogID: "log-l", Anchor: audit.Anchor{Sequence: 9, Time: "T"},
		Lost: &datafolder.LostLog{LogID: "log-l", Node: "n1", Time: "T2", AcceptedBy: "log-a"}}
	for _, tc := range []struct {
		name    string
		rep     datafolder.NodesReport
		partial bool
		wantErr bool
		want    []string
	}{
		{name: "all", rep: datafolder.NodesReport{Nodes: []datafolder.NodeResult{ok("a"), empty}, NotGiven: []datafolder.AnchoredLog{lost}}, want: []string{
			"a: OK: log log-a, 4 records, 3 digests, chain intact through sequence 4, reaches its anchor (record 4)\n",
			"e: OK: log log-e, no record yet, as its anchor says\n",
			`note: log log-l of node "n1" (anchored at record 9, T) was declared lost on T2; the acceptance is in log log-a (AcceptLostNodeLog)`,
			"OK: 2 node logs, 4 records in all, each reaching its anchor in the store; every log the store anchors\n"}},
		{name: "one left out", rep: datafolder.NodesReport{Nodes: []datafolder.NodeResult{ok("a")}, NotGiven: []datafolder.AnchoredLog{left}}, wantErr: true, want: []string{
			"FAILED: the store anchors log log-c (anchored at record 7, T), which no --node holds", "FAILED: 1 node log verified, but 1 anchored log is missing\n"}},
		{name: "one left out, --partial", rep: datafolder.NodesReport{Nodes: []datafolder.NodeResult{ok("a")}, NotGiven: []datafolder.AnchoredLog{left}}, partial: true, want: []string{
			"note: not given (--partial): log log-c", "OK: 1 node log, 4 records in all, each reaching its anchor in the store; 1 of the 2 logs the store anchors\n"}},
		{name: "failures", rep: datafolder.NodesReport{Nodes: []datafolder.NodeResult{ok("a"), altered, twice}, NotGiven: []datafolder.AnchoredLog{left}}, wantErr: true, want: []string{
			"b: FAILED: record 2 was altered\n", "a2: FAILED: log log-a was given already", "FAILED: 2 of 3 node logs failed verification, and 1 anchored log is missing\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := printNodes(&out, &tc.rep, tc.partial)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %v\n%s", err, tc.wantErr, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestAuditVerifyNodesUsage(t *testing.T) {
	storeDir, node := t.TempDir(), t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--data-dir", storeDir, "--node", node, "--dir", node}, "--node verifies whole node folders"},
		{[]string{"verify", "--data-dir", storeDir, "--node", node, "file"}, "--node verifies whole node folders"},
		{[]string{"verify", "--data-dir", storeDir, "--partial"}, "--partial goes with --node"},
		{[]string{"verify", "--data-dir", storeDir, "--node", node}, "no store in"},
	} {
		if _, _, err := runAudit(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
