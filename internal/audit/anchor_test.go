package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memAnchors is an Anchors in memory, with revisions like the store's
// settings.
type memAnchors struct {
	mu    sync.Mutex
	m     map[string]Anchor
	rev   map[string]int64
	saves int
	fail  error
}

func newMemAnchors() *memAnchors {
	return &memAnchors{m: map[string]Anchor{}, rev: map[string]int64{}}
}

func (s *memAnchors) LoadAnchor(_ context.Context, id string) (Anchor, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		return Anchor{}, 0, fmt.Errorf("log %s: %w", id, ErrNoAnchor)
	}
	return a, s.rev[id], nil
}

func (s *memAnchors) SaveAnchor(_ context.Context, a Anchor, rev int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if s.rev[a.LogID] != rev {
		return 0, ErrAnchorChanged
	}
	s.m[a.LogID] = a
	s.rev[a.LogID]++
	s.saves++
	return s.rev[a.LogID], nil
}

func (s *memAnchors) get(t *testing.T) Anchor {
	t.Helper()
	a, _, err := s.LoadAnchor(context.Background(), KeyID(testSigner().PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// anchoredLog writes sessions of records to a new log with anchors, each
// session closed, and returns copies of the log folder after each one.
func anchoredLog(t *testing.T, anchors *memAnchors, sessions ...int) (dir string, copies []string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "audit")
	n := 0
	for i, k := range sessions {
		l := openLog(t, dir, Options{Anchors: anchors, AllowUnanchored: i == 0, DigestEvery: 3})
		appendN(t, l, n, k)
		n += k
		closeLog(t, l)
		copies = append(copies, copyDir(t, dir))
	}
	return dir, copies
}

func TestAnchorFollowsTheLog(t *testing.T) {
	anchors := newMemAnchors()
	dir := filepath.Join(t.TempDir(), "audit")
	l := openLog(t, dir, Options{Anchors: anchors, AllowUnanchored: true, DigestEvery: 3})
	if a := anchors.get(t); a.Sequence != 0 || a.Hash != GenesisHash || a.LogID != KeyID(testSigner().PublicKey()) {
		t.Fatalf("anchor of a new log = %+v", a)
	}
	appendN(t, l, 0, 7) // digests after records 3 and 6
	closeLog(t, l)      // and the close digest after 7
	a := anchors.get(t)
	if a.Sequence != 7 {
		t.Fatalf("anchor after Close = %+v, want record 7", a)
	}
	if err := CheckAnchor(dir, a); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, logFiles(t, dir)[0])
	if h := lineHash(ls[8]); fmt.Sprintf("%x", h) != a.Hash { // line 9 is record 7
		t.Errorf("anchor hash %s is not the hash of record 7", a.Hash)
	}
	// Reopening a log that reaches its anchor works and moves nothing.
	saves := anchors.saves
	closeLog(t, openLog(t, dir, Options{Anchors: anchors}))
	if anchors.saves != saves {
		t.Errorf("reopening and closing an unchanged log saved the anchor %d times", anchors.saves-saves)
	}
}

// TestOpenRefusesARolledBackLog is issue 17's second item: a log cut back
// after an earlier close digest, replaced by an older copy, or removed,
// used to open without a word and continue at the older end.
func TestOpenRefusesARolledBackLog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, dir string, copies []string)
		differs bool
	}{
		{"cut after an earlier close digest", func(t *testing.T, dir string, _ []string) {
			// The first session's records and close digest: 4 records, a
			// periodic digest after 3, the close digest.
			f := logFiles(t, dir)[0]
			ls := lines(t, f)
			os.WriteFile(f, bytes.Join(ls[:6], nil), 0o600)
		}, false},
		{"replaced by an older copy", func(t *testing.T, dir string, copies []string) {
			os.RemoveAll(dir)
			os.Rename(copies[0], dir)
		}, false},
		{"folder removed", func(t *testing.T, dir string, _ []string) { os.RemoveAll(dir) }, false},
		{"folder emptied", func(t *testing.T, dir string, _ []string) {
			for _, f := range logFiles(t, dir) {
				os.Remove(f)
			}
		}, false},
		{"replaced by another log as long", func(t *testing.T, dir string, _ []string) {
			os.RemoveAll(dir)
			l := openLog(t, dir, Options{})
			appendN(t, l, 100, 9)
			closeLog(t, l)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anchors := newMemAnchors()
			dir, copies := anchoredLog(t, anchors, 4, 5)
			tc.damage(t, dir, copies)
			_, err := Open(context.Background(), Options{Dir: dir, Signer: testSigner(), Anchors: anchors, AllowUnanchored: true})
			var be *BehindError
			if !errors.As(err, &be) || !errors.Is(err, ErrBehindAnchor) {
				t.Fatalf("Open: %v, want a BehindError", err)
			}
			if be.Anchor.Sequence != 9 || be.Differs != tc.differs {
				t.Errorf("BehindError = %+v", be)
			}
			if !strings.Contains(err.Error(), "record 9") {
				t.Errorf("message does not name the anchored record: %v", err)
			}
			// Open wrote nothing: no recover digest, no new file, no
			// folder in place of a removed one.
			if _, err := os.Stat(dir); tc.name == "folder removed" && err == nil {
				t.Errorf("Open created the removed folder")
			} else if err == nil {
				for _, f := range logFiles(t, dir) {
					for _, l := range lines(t, f) {
						if bytes.Contains(l, []byte(`"reason":"recover"`)) {
							t.Errorf("Open wrote a recover digest into a log it refused")
						}
					}
				}
			}

			// Verify with the anchor as a checkpoint reports it too.
			cp := Checkpoint{Sequence: be.Anchor.Sequence, Hash: be.Anchor.Hash, Source: "the store's anchor"}
			_, err = Verify(dir, testSigner().PublicKey(), cp)
			var p *Problem
			if !errors.As(err, &p) || p.Kind != ProblemAnchor {
				t.Fatalf("Verify with the anchor: %v, want an anchor problem", err)
			}

			// The operator accepts the reset: it is recorded, and the log
			// opens again from there.
			rec := &Record{EventName: "AcceptAuditLogReset", EventSource: "kmsd", UserIdentity: UserIdentity{Type: "Operator", UserName: "ops"}}
			prev, err := AcceptReset(context.Background(), Options{Dir: dir, Signer: testSigner(), Anchors: anchors}, rec)
			if err != nil {
				t.Fatalf("AcceptReset: %v", err)
			}
			if prev.Sequence != 9 {
				t.Errorf("replaced anchor = %+v", prev)
			}
			if a := anchors.get(t); a.Sequence != rec.Sequence || a.Sequence == 0 {
				t.Errorf("anchor after the reset = %+v, want the reset record %d", a, rec.Sequence)
			}
			if _, err := AcceptReset(context.Background(), Options{Dir: dir, Signer: testSigner(), Anchors: anchors}, &Record{}); !errors.Is(err, ErrNothingToAccept) {
				t.Errorf("a second AcceptReset: %v", err)
			}
			l := openLog(t, dir, Options{Anchors: anchors})
			appendN(t, l, 0, 1)
			closeLog(t, l)
			b, _ := os.ReadFile(logFiles(t, dir)[len(logFiles(t, dir))-1])
			if !bytes.Contains(b, []byte(`"eventName":"AcceptAuditLogReset"`)) || !bytes.Contains(b, []byte(`"replacedAnchor":{"hash":"`+prev.Hash)) {
				t.Errorf("the reset record is missing or does not name the replaced anchor:\n%s", b)
			}
		})
	}
}

func TestOpenRefusesAnUnanchoredLog(t *testing.T) {
	dir := t.TempDir()
	closeLog(t, openLog(t, dir, Options{}))
	_, err := Open(context.Background(), Options{Dir: dir, Signer: testSigner(), Anchors: newMemAnchors()})
	if !errors.Is(err, ErrNoAnchor) {
		t.Fatalf("Open of a log without an anchor: %v", err)
	}
}

// TestAnchorFailureIsReportedAndRetried: a failed anchor update keeps
// the log running, is reported (AnchorErr, OnAnchorSave) while it lasts,
// and is tried again without waiting for the next digest; the report
// clears once an update succeeds.
func TestAnchorFailureIsReportedAndRetried(t *testing.T) {
	anchors := newMemAnchors()
	var logs bytes.Buffer
	var mu sync.Mutex
	var saves []error
	dir := t.TempDir()
	opts := Options{Anchors: anchors, AllowUnanchored: true, DigestEvery: 2, Logger: newTextLogger(&logs),
		OnAnchorSave: func(err error) { mu.Lock(); saves = append(saves, err); mu.Unlock() }}
	opts.anchorRetry = 20 * time.Millisecond
	l := openLog(t, dir, opts)
	if l.AnchorErr() != nil {
		t.Fatal(l.AnchorErr())
	}
	anchors.mu.Lock()
	anchors.fail = errors.New("store unreachable")
	anchors.mu.Unlock()
	appendN(t, l, 0, 3) // a digest after record 2, whose anchor fails
	waitFor(t, func() bool { return l.AnchorErr() != nil })
	if err := l.AnchorErr(); !strings.Contains(err.Error(), "store unreachable") {
		t.Errorf("AnchorErr = %v", err)
	}
	time.Sleep(100 * time.Millisecond) // a few retries, all failing
	if l.AnchorErr() == nil {
		t.Fatal("AnchorErr cleared while every update fails")
	}
	anchors.mu.Lock()
	anchors.fail = nil
	anchors.mu.Unlock()
	// No new digest: the retry alone catches the anchor up.
	waitFor(t, func() bool { return l.AnchorErr() == nil })
	if a := anchors.get(t); a.Sequence != 2 {
		t.Errorf("anchor = %+v, want record 2", a)
	}
	closeLog(t, l)
	if !strings.Contains(logs.String(), "store unreachable") {
		t.Errorf("the failed anchor update was not logged:\n%s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	failed := 0
	for _, err := range saves {
		if err != nil {
			failed++
		}
	}
	if failed < 2 || saves[len(saves)-1] != nil {
		t.Errorf("OnAnchorSave saw %v: want repeated failures, then a success last", saves)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestDigestSinksDetectARollback copies every digest to a file and to a
// command as it is made; a verifier holding the file detects a log cut
// back after an earlier close digest, which verifies on its own.
func TestDigestSinksDetectARollback(t *testing.T) {
	out := t.TempDir()
	file := filepath.Join(out, "digests.jsonl")
	byCommand := filepath.Join(out, "by-command.jsonl")
	sinks := []DigestSink{
		FileSink{Path: file},
		CommandSink{Argv: []string{"/bin/sh", "-c", `cat >> "$0" && echo "$KMSD_AUDIT_DIGEST_SEQUENCE" >> "$0.seq"`, byCommand}},
	}
	dir := t.TempDir()
	l := openLog(t, dir, Options{Sinks: sinks, DigestEvery: 3})
	appendN(t, l, 0, 4)
	closeLog(t, l)
	first := copyDir(t, dir)
	l = openLog(t, dir, Options{Sinks: sinks, DigestEvery: 3})
	appendN(t, l, 4, 4)
	closeLog(t, l)

	for _, p := range []string{file, byCommand} {
		cps, err := ReadDigests(p, testSigner().PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		// Digests after 3, 4 (close), 7 (three records on), 8 (close).
		var seqs []uint64
		for _, c := range cps {
			seqs = append(seqs, c.Sequence)
		}
		if fmt.Sprint(seqs) != "[3 4 7 8]" {
			t.Fatalf("%s: digests of %v", p, seqs)
		}
		if _, err := Verify(dir, testSigner().PublicKey(), cps...); err != nil {
			t.Errorf("the intact log against %s: %v", p, err)
		}
		// The older copy verifies on its own, but not against the digests.
		if _, err := Verify(first, testSigner().PublicKey()); err != nil {
			t.Fatalf("the older copy alone: %v", err)
		}
		_, err = Verify(first, testSigner().PublicKey(), cps...)
		var pr *Problem
		if !errors.As(err, &pr) || pr.Kind != ProblemAnchor || !strings.Contains(pr.Message, "records 5–8 were removed") {
			t.Errorf("the older copy against %s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(byCommand + ".seq"); string(b) != "3\n4\n7\n8\n" {
		t.Errorf("KMSD_AUDIT_DIGEST_SEQUENCE: %q", b)
	}

	// A copy whose digest was forged is refused.
	b, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.Replace(b, []byte(`"sequence":8`), []byte(`"sequence":9`), 1), 0o600)
	if _, err := ReadDigests(file, testSigner().PublicKey()); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("ReadDigests of a forged digest: %v", err)
	}
}

func TestCommandSinkFailureIsLogged(t *testing.T) {
	var logs bytes.Buffer
	l := openLog(t, t.TempDir(), Options{Sinks: []DigestSink{CommandSink{Argv: []string{"/bin/sh", "-c", "echo refused >&2; exit 3"}}}, Logger: newTextLogger(&logs)})
	appendN(t, l, 0, 1)
	closeLog(t, l)
	if s := logs.String(); !strings.Contains(s, "could not be delivered") || !strings.Contains(s, "refused") {
		t.Errorf("log:\n%s", s)
	}
}
