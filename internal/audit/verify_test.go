package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// refLog is a closed log of 10 records in one file, a digest after every 4:
//
//	line  1– 4  records 1–4
//	line     5  digest of record 4
//	line  6– 9  records 5–8
//	line    10  digest of record 8
//	line 11–12  records 9–10
//	line    13  close digest of record 10
type refLog struct {
	name  string   // the file's base name
	lines [][]byte // its lines, newline included
}

// recordLine and digestLine give the line numbers of the reference log.
var (
	recordLine = map[uint64]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 8, 8: 9, 9: 11, 10: 12}
	digestLine = map[uint64]int{4: 5, 8: 10, 10: 13}
)

func newRefLog(t *testing.T) refLog {
	t.Helper()
	ref := newSmallLog(t, 10, 4)
	if len(ref.lines) != 13 {
		t.Fatalf("reference log has %d lines", len(ref.lines))
	}
	return ref
}

// newSmallLog writes a closed log of n records, a digest after every
// `every`, in one file.
func newSmallLog(t *testing.T, n, every int) refLog {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, Options{DigestEvery: every})
	appendN(t, l, 0, n)
	closeLog(t, l)
	files := logFiles(t, dir)
	return refLog{name: filepath.Base(files[0]), lines: lines(t, files[0])}
}

// verifyLines writes the lines as the reference file in a new directory
// and verifies it.
func (r refLog) verify(t *testing.T, lines [][]byte) (path string, p *Problem) {
	t.Helper()
	return r.verifyBytes(t, bytes.Join(lines, nil))
}

func (r refLog) verifyBytes(t *testing.T, content []byte) (path string, p *Problem) {
	t.Helper()
	// The same checks as Verify, without the file system: the every-byte
	// tests run thousands.
	path = filepath.Join("dir", r.name)
	v := &verifier{pub: testSigner().PublicKey(), keyID: KeyID(testSigner().PublicKey()), rep: &Report{}}
	err := v.read(path, bytes.NewReader(content))
	if err == nil && v.pending != nil {
		err = v.pending(nil)
	}
	if err == nil {
		err = v.end()
	}
	if err == nil {
		return path, nil
	}
	if !errors.As(err, &p) {
		t.Fatalf("verify: %v (not a *Problem)", err)
	}
	return path, p
}

// edit returns a copy of the reference lines changed by f.
func (r refLog) edit(f func(ls [][]byte) [][]byte) [][]byte {
	ls := make([][]byte, len(r.lines))
	for i, l := range r.lines {
		ls[i] = bytes.Clone(l)
	}
	return f(ls)
}

func TestVerifyIntact(t *testing.T) {
	ref := newRefLog(t)
	if _, p := ref.verify(t, ref.lines); p != nil {
		t.Fatal(p)
	}
}

// TestTamperEveryByte alters each byte of every record of a small log
// (lines: records 1 and 2, a digest, records 3 and 4, the close digest)
// and checks that Verify names exactly the altered line. Each record has
// its own case: the first, one a digest follows, one that follows a
// digest, and the last.
func TestTamperEveryByte(t *testing.T) {
	ref := newSmallLog(t, 4, 2)
	for seq, n := range map[uint64]int{1: 1, 2: 2, 3: 4, 4: 5} {
		t.Run(fmt.Sprint("record ", seq), func(t *testing.T) {
			t.Parallel()
			masks := []byte{0x01}
			if seq == 3 {
				masks = append(masks, 0x20) // also flips the case of letters
			}
			for i := range ref.lines[n-1] {
				for _, mask := range masks {
					ls := ref.edit(func(ls [][]byte) [][]byte { ls[n-1][i] ^= mask; return ls })
					path, p := ref.verify(t, ls)
					if p == nil {
						t.Fatalf("byte %d ^ %#x: not detected", i, mask)
					}
					if p.File != path || p.Line != n {
						t.Fatalf("line %d, byte %d (%q) ^ %#x: the problem names line %d: %v", n, i, ref.lines[n-1][i], mask, p.Line, p)
					}
				}
			}
		})
	}
}

// TestTamperDigestEveryByte alters each byte of a digest line. Its signed
// values are checked at the digest; its bytes (JSON layout) by the next
// digest, which carries its hash.
func TestTamperDigestEveryByte(t *testing.T) {
	ref := newRefLog(t)
	n := digestLine[4]
	for i := range ref.lines[n-1] {
		ls := ref.edit(func(ls [][]byte) [][]byte { ls[n-1][i] ^= 0x01; return ls })
		_, p := ref.verify(t, ls)
		switch {
		case p == nil:
			t.Fatalf("digest byte %d: not detected", i)
		case p.Line == n:
		case p.Line == digestLine[8] && p.Kind == ProblemDigest && strings.Contains(p.Message, fmt.Sprintf("line %d", n)):
		default:
			t.Fatalf("digest byte %d (%q): %v", i, ref.lines[n-1][i], p)
		}
	}
}

func TestTamper(t *testing.T) {
	ref := newRefLog(t)
	del := func(lineNos ...int) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			slices.Sort(lineNos)
			for _, n := range slices.Backward(lineNos) {
				ls = slices.Delete(ls, n-1, n)
			}
			return ls
		}
	}
	swap := func(a, b int) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte { ls[a-1], ls[b-1] = ls[b-1], ls[a-1]; return ls }
	}
	insert := func(at int, line []byte) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte { return slices.Insert(ls, at-1, line) }
	}
	cut := func(lines int, extra int) []byte {
		b := bytes.Join(ref.lines[:lines], nil)
		return append(b, ref.lines[lines][:extra]...)
	}
	// A forged record 6 that chains correctly onto record 5.
	forged := forgeAfter(t, ref.lines[recordLine[5]-1], 6)

	for _, tc := range []struct {
		name    string
		lines   [][]byte // or
		content []byte
		kind    ProblemKind
		line    int
		seq     uint64
		mention string // the message must contain it
	}{
		{name: "delete record 1", lines: ref.edit(del(1)), kind: ProblemFileName, line: 1, seq: 1},
		{name: "delete record 2", lines: ref.edit(del(2)), kind: ProblemSequence, line: 2, seq: 2, mention: "record 2 is missing"},
		{name: "delete record 4 (before a digest)", lines: ref.edit(del(4)), kind: ProblemSequence, line: 4, seq: 4},
		{name: "delete record 5 (after a digest)", lines: ref.edit(del(6)), kind: ProblemSequence, line: 6, seq: 5},
		{name: "delete record 9", lines: ref.edit(del(11)), kind: ProblemSequence, line: 11, seq: 9},
		{name: "delete record 10 (last)", lines: ref.edit(del(12)), kind: ProblemSequence, line: 12, seq: 10},
		{name: "delete records 6 and 7", lines: ref.edit(del(7, 8)), kind: ProblemSequence, line: 7, seq: 6, mention: "6–7"},
		{name: "insert a copy of record 3 later", lines: ref.edit(insert(8, ref.lines[2])), kind: ProblemSequence, line: 8, seq: 3, mention: "inserted"},
		{name: "duplicate record 7", lines: ref.edit(insert(9, ref.lines[7])), kind: ProblemSequence, line: 9, seq: 7, mention: "twice"},
		{name: "insert a forged, chained record", lines: ref.edit(insert(7, forged)), kind: ProblemSequence, line: 8, seq: 6, mention: "twice, at line 7"},
		{name: "append a forged record after the close digest", lines: append(slices.Clone(ref.lines), forgeAfter(t, ref.lines[11], 11)), kind: ProblemUnclosed, line: 14, seq: 11},
		{name: "swap records 2 and 3", lines: ref.edit(swap(2, 3)), kind: ProblemSequence, line: 2, seq: 3, mention: "out of order"},
		{name: "swap records 6 and 7", lines: ref.edit(swap(7, 8)), kind: ProblemSequence, line: 7, seq: 7, mention: "out of order"},
		{name: "swap records 1 and 2", lines: ref.edit(swap(1, 2)), kind: ProblemFileName, line: 1, seq: 1},
		{name: "move a digest", lines: ref.edit(swap(5, 6)), kind: ProblemSequence, line: 6},
		{name: "swap two digests", lines: ref.edit(swap(5, 10)), kind: ProblemSequence, line: 5},
		{name: "remove a digest", lines: ref.edit(del(5)), kind: ProblemDigest, line: 9, seq: 8, mention: "digest chain is broken"},
		{name: "remove the middle digest", lines: ref.edit(del(10)), kind: ProblemDigest, line: 12, seq: 10},
		{name: "remove the close digest", lines: ref.edit(del(13)), kind: ProblemUnclosed, line: 11, seq: 9, mention: "records 9–10"},
		{name: "truncate after the last periodic digest", lines: ref.lines[:10], kind: ProblemUnclosed, line: 10, seq: 8},
		{name: "truncate after a record", lines: ref.lines[:8], kind: ProblemUnclosed, line: 6, seq: 5},
		{name: "truncate inside a record", content: cut(6, 40), kind: ProblemTorn, line: 7},
		{name: "truncate inside the close digest", content: cut(12, 100), kind: ProblemTorn, line: 13},
		{name: "truncate the newline of the last line", content: cut(12, len(ref.lines[12])-1), kind: ProblemTorn, line: 13},
		{name: "alter a signature", lines: ref.edit(func(ls [][]byte) [][]byte {
			i := bytes.Index(ls[4], []byte(`"signature":"`)) + 20
			ls[4][i] ^= 0x02
			return ls
		}), kind: ProblemSignature, line: 5},
		{name: "replace a digest's key id", lines: ref.edit(func(ls [][]byte) [][]byte {
			i := bytes.Index(ls[9], []byte(`"keyId":"`)) + 9
			copy(ls[9][i:], "0123456789abcdef")
			return ls
		}), kind: ProblemKey, line: 10},
		{name: "blank line", lines: ref.edit(insert(3, []byte("\n"))), kind: ProblemMalformed, line: 3},
		{name: "empty file", content: []byte{}, kind: ProblemEmptyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p *Problem
			if tc.content != nil {
				_, p = ref.verifyBytes(t, tc.content)
			} else {
				_, p = ref.verify(t, tc.lines)
			}
			if p == nil {
				t.Fatal("not detected")
			}
			if p.Kind != tc.kind || p.Line != tc.line || (tc.seq != 0 && p.Sequence != tc.seq) || !strings.Contains(p.Message, tc.mention) {
				t.Errorf("got %s problem at line %d, sequence %d: %v\nwant %s at line %d, sequence %d, mentioning %q", p.Kind, p.Line, p.Sequence, p, tc.kind, tc.line, tc.seq, tc.mention)
			}
		})
	}
}

// forgeAfter makes a record with sequence seq that chains onto prev, as
// someone without the signing key could.
func forgeAfter(t *testing.T, prev []byte, seq uint64) []byte {
	t.Helper()
	r := testRecord(999)
	r.EventName = "Decrypt"
	if err := r.fillDefaults(newClock().Now()); err != nil {
		t.Fatal(err)
	}
	body, err := jsonMarshal(r)
	if err != nil {
		t.Fatal(err)
	}
	h := lineHash(prev)
	return appendRecordLine(nil, seq, &h, body)
}

func TestVerifyAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{MaxFileBytes: 2500, DigestEvery: 3})
	appendN(t, l, 0, 20)
	closeLog(t, l)
	files := logFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d files", len(files))
	}
	pub := testSigner().PublicKey()
	check := func(t *testing.T, paths []string, kind ProblemKind, file string, line int) {
		t.Helper()
		_, err := VerifyFiles(paths, pub)
		var p *Problem
		if !errors.As(err, &p) || p.Kind != kind || p.File != file || p.Line != line {
			t.Errorf("got %v, want a %s problem at %s:%d", err, kind, file, line)
		}
	}
	t.Run("reordered", func(t *testing.T) {
		paths := slices.Clone(files)
		paths[1], paths[2] = paths[2], paths[1]
		check(t, paths, ProblemSequence, paths[1], 1)
	})
	t.Run("middle file removed", func(t *testing.T) {
		paths := slices.Delete(slices.Clone(files), 1, 2)
		check(t, paths, ProblemSequence, paths[1], 1)
	})
	t.Run("files renamed", func(t *testing.T) {
		d := copyDir(t, dir)
		a, b := filepath.Join(d, filepath.Base(files[1])), filepath.Join(d, filepath.Base(files[2]))
		os.Rename(a, a+".tmp")
		os.Rename(b, a)
		os.Rename(a+".tmp", b)
		_, err := Verify(d, pub)
		var p *Problem
		if !errors.As(err, &p) || p.Kind != ProblemFileName || p.File != a {
			t.Errorf("got %v", err)
		}
	})
	t.Run("oldest file removed by retention", func(t *testing.T) {
		rep, err := VerifyFiles(files[1:], pub)
		if err != nil || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "starts at sequence") || rep.FirstSequence == 1 {
			t.Errorf("report %+v, %v", rep, err)
		}
	})
	t.Run("last file removed", func(t *testing.T) {
		check(t, files[:len(files)-1], ProblemUnclosed, files[len(files)-2], len(lines(t, files[len(files)-2])))
	})
	t.Run("wrong public key", func(t *testing.T) {
		other := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
		_, err := VerifyFiles(files, other)
		var p *Problem
		if !errors.As(err, &p) || p.Kind != ProblemKey {
			t.Errorf("got %v", err)
		}
	})
}

func TestVerifyEmptyDirectory(t *testing.T) {
	_, err := Verify(t.TempDir(), testSigner().PublicKey())
	var p *Problem
	if !errors.As(err, &p) || p.Kind != ProblemNoLog {
		t.Errorf("got %v", err)
	}
}

// TestVerifyFileMatchesReader checks that Verify on disk and the in-memory
// path the tamper tests use agree.
func TestVerifyFileMatchesReader(t *testing.T) {
	ref := newRefLog(t)
	ls := ref.edit(func(ls [][]byte) [][]byte { ls[1][bytes.Index(ls[1], []byte("Encrypt"))] ^= 1; return ls })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ref.name), bytes.Join(ls, nil), 0o600)
	_, err := Verify(dir, testSigner().PublicKey())
	var p *Problem
	if !errors.As(err, &p) || p.Line != 2 || p.Kind != ProblemChain || p.File != filepath.Join(dir, ref.name) {
		t.Fatalf("Verify = %v", err)
	}
	if _, q := ref.verify(t, ls); q.Line != p.Line || q.Kind != p.Kind || q.Sequence != p.Sequence {
		t.Fatalf("in memory: %v", q)
	}
}

func TestOpenLogIsUnclosedUntilClose(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{DigestEvery: 2})
	appendN(t, l, 0, 3)
	rep, err := Verify(dir, testSigner().PublicKey())
	var p *Problem
	if !errors.As(err, &p) || p.Kind != ProblemUnclosed || p.Sequence != 3 || rep.SignedThrough != 2 || rep.UnsignedRecords != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, dir)
}

// TestFormatDocument keeps docs/audit-format.md in step with the code.
func TestFormatDocument(t *testing.T) {
	doc, err := os.ReadFile("../../docs/audit-format.md")
	if err != nil {
		t.Fatal(err)
	}
	d := Digest{Version: 1, Sequence: 4, Hash: GenesisHash, PrevDigestHash: GenesisHash, Time: "2025-05-20T20:46:16Z", Reason: ReasonPeriodic, KeyID: "c45b7991f26a656a"}
	msg := strings.NewReplacer(
		"4\n", "<decimal>\n", "0\n", "<decimal>\n", GenesisHash, "<64 hex>",
		"2025-05-20T20:46:16Z", "<the time string as it appears>", "periodic", "<reason>", "c45b7991f26a656a", "<hex>",
	).Replace(string(d.SignedMessage()))
	for _, want := range []string{
		"= " + GenesisHash,
		"\n" + msg + "```",
		fileName(1, newClock().Now()),
		"kmsd audit signing key v1",
	} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("docs/audit-format.md does not contain %q", want)
		}
	}
}

// TestVerifyReportsDuplicateEventIDs: a log that holds one event twice
// (a kept record appended a second time) verifies — its chain is intact —
// but Verify names the duplicated eventIDs and where they are.
func TestVerifyReportsDuplicateEventIDs(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	for i, id := range []string{"a", "b", "a", "c", "a", "b", ""} {
		r := testRecord(i)
		r.EventID = id // "" gets a fresh one
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(t, l)
	rep := mustVerify(t, dir)
	want := []Duplicate{{EventID: "a", FirstSequence: 1, Sequence: 3}, {EventID: "a", FirstSequence: 1, Sequence: 5}, {EventID: "b", FirstSequence: 2, Sequence: 6}}
	if !slices.Equal(rep.Duplicates, want) || rep.DuplicateRecords != 3 {
		t.Errorf("Duplicates = %+v (%d), want %+v (3)", rep.Duplicates, rep.DuplicateRecords, want)
	}
	other := t.TempDir()
	l = openLog(t, other, Options{})
	appendN(t, l, 0, 20)
	closeLog(t, l)
	if rep := mustVerify(t, other); len(rep.Duplicates) != 0 || rep.DuplicateRecords != 0 {
		t.Errorf("a log without duplicates reports %+v", rep.Duplicates)
	}
}
