package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAppendWritesChainedCloudTrailRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	clock := newClock()
	l := openLog(t, dir, Options{Now: clock.Now})
	var recs []*Record
	for i := range 3 {
		r := testRecord(i)
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	closeLog(t, l)

	files := logFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files = %v, want one", files)
	}
	wantName := "audit-00000000000000000001-20250520T204616Z.jsonl"
	if got := filepath.Base(files[0]); got != wantName {
		t.Errorf("file name = %s, want %s", got, wantName)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, files[0]: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %04o", path, fi.Mode().Perm(), err, want)
		}
	}

	ls := lines(t, files[0])
	if len(ls) != 4 {
		t.Fatalf("%d lines, want 3 records and a close digest:\n%s", len(ls), bytes.Join(ls, nil))
	}
	prev := GenesisHash
	for i, r := range recs {
		if r.Sequence != uint64(i+1) || r.PrevHash != prev {
			t.Errorf("record %d: Sequence %d PrevHash %s, want %d %s", i, r.Sequence, r.PrevHash, i+1, prev)
		}
		// The line is exactly the record's JSON with its chain members:
		// a reader may decode it into a Record and encode it back.
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := ls[i]; !bytes.Equal(got, append(want, '\n')) {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, got, want)
		}
		var back Record
		if err := json.Unmarshal(ls[i], &back); err != nil || back.Sequence != r.Sequence || back.EventID != r.EventID {
			t.Errorf("line %d does not decode into a Record: %v", i+1, err)
		}
		h := lineHash(ls[i])
		prev = hex.EncodeToString(h[:])
	}
	if !bytes.HasPrefix(ls[3], []byte(`{"digest":{"version":1,"sequence":3,"hash":"`+prev+`"`)) || !bytes.Contains(ls[3], []byte(`"reason":"close"`)) {
		t.Errorf("last line is not a close digest of record 3:\n%s", ls[3])
	}
	rep := mustVerify(t, dir)
	if rep.Records != 3 || rep.Digests != 1 || !rep.Closed || rep.LastSequence != 3 || rep.SignedThrough != 3 || len(rep.Notes) != 0 {
		t.Errorf("report = %+v", rep)
	}
}

func TestRecordShape(t *testing.T) {
	r := testRecord(1)
	r.ErrorCode, r.ErrorMessage = "AccessDeniedException", "not allowed"
	if err := r.fillDefaults(time.Date(2025, 5, 20, 20, 46, 16, 999, time.FixedZone("x", 3600))); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"eventVersion":       "1.11",
		"eventTime":          "2025-05-20T19:46:16Z",
		"eventSource":        "kms.amazonaws.com",
		"eventName":          "Encrypt",
		"awsRegion":          "us-east-1",
		"sourceIPAddress":    "127.0.0.1",
		"userAgent":          "aws-cli/2.15.0",
		"errorCode":          "AccessDeniedException",
		"errorMessage":       "not allowed",
		"responseElements":   nil,
		"requestID":          "req-1",
		"readOnly":           true,
		"eventType":          "AwsApiCall",
		"managementEvent":    true,
		"recipientAccountId": "111122223333",
		"eventCategory":      "Management",
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, v)
		}
	}
	if _, ok := m["sequence"]; ok {
		t.Error("an unsequenced record has a sequence member")
	}
	ui := m["userIdentity"].(map[string]any)
	for _, k := range []string{"type", "principalId", "arn", "accountId", "accessKeyId", "userName"} {
		if _, ok := ui[k]; !ok {
			t.Errorf("userIdentity lacks %s", k)
		}
	}
	res := m["resources"].([]any)[0].(map[string]any)
	if res["ARN"] == nil || res["accountId"] != "111122223333" || res["type"] != "AWS::KMS::Key" {
		t.Errorf("resources[0] = %v", res)
	}
	if id, _ := m["eventID"].(string); len(id) != 36 || id[14] != '4' {
		t.Errorf("eventID = %q, want a random UUID", id)
	}
}

func TestDigestEveryN(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{DigestEvery: 3})
	appendN(t, l, 0, 10)
	closeLog(t, l)
	var reasons []string
	for _, line := range lines(t, logFiles(t, dir)[0]) {
		p, err := parseLine(line[:len(line)-1])
		if err != nil {
			t.Fatal(err)
		}
		if p.isDigest {
			reasons = append(reasons, p.digest.Reason+"@"+strconv.FormatUint(p.digest.Sequence, 10))
		}
	}
	if got, want := strings.Join(reasons, " "), "periodic@3 periodic@6 periodic@9 close@10"; got != want {
		t.Errorf("digests = %s, want %s", got, want)
	}
	if rep := mustVerify(t, dir); rep.Digests != 4 || rep.Records != 10 {
		t.Errorf("report = %+v", rep)
	}
}

func TestDigestIntervalInjectedClock(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	// An hour-long ticker never fires during the test: only the injected
	// clock, read at each batch, can trigger the digest.
	l := openLog(t, dir, Options{Now: clock.Now, DigestInterval: time.Hour})
	appendN(t, l, 0, 2)
	clock.Advance(59 * time.Minute)
	appendN(t, l, 2, 1)
	if n := countDigests(t, dir); n != 0 {
		t.Fatalf("%d digests before the interval passed", n)
	}
	clock.Advance(time.Minute)
	appendN(t, l, 3, 1)
	if n := countDigests(t, dir); n != 1 {
		t.Fatalf("%d digests after the interval passed, want 1", n)
	}
	closeLog(t, l)
	mustVerify(t, dir)
}

func TestDigestIntervalWhenIdle(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{DigestInterval: 10 * time.Millisecond})
	appendN(t, l, 0, 1)
	// The writer's ticker signs a record that no later record triggered a
	// digest for. Wait for it without a fixed sleep.
	deadline := time.Now().Add(10 * time.Second)
	for countDigests(t, dir) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no digest written while idle")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := Verify(dir, testSigner().PublicKey())
	var p *Problem
	if !errors.As(err, &p) || p.Kind != ProblemUnclosed || !strings.Contains(p.Message, "periodic digest") {
		t.Errorf("open log with an idle digest: %v", err)
	}
	closeLog(t, l)
	if rep := mustVerify(t, dir); rep.Digests < 2 {
		t.Errorf("report = %+v", rep)
	}
}

func countDigests(t testing.TB, dir string) int {
	n := 0
	for _, f := range logFiles(t, dir) {
		for _, line := range lines(t, f) {
			if bytes.HasPrefix(line, []byte(`{"digest":`)) {
				n++
			}
		}
	}
	return n
}

func TestRotationBySize(t *testing.T) {
	dir := t.TempDir()
	const max = 3000
	l := openLog(t, dir, Options{MaxFileBytes: max, DigestEvery: 4})
	appendN(t, l, 0, 30)
	closeLog(t, l)
	files := logFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("%d files, want at least 5", len(files))
	}
	var all [][]byte
	for i, f := range files {
		ls := lines(t, f)
		var records int64
		for _, line := range ls {
			if !bytes.HasPrefix(line, []byte(`{"digest"`)) {
				records += int64(len(line))
			}
		}
		if records > max {
			t.Errorf("%s: %d bytes of records, more than %d", f, records, max)
		}
		last, _ := parseLine(ls[len(ls)-1][:len(ls[len(ls)-1])-1])
		want := ReasonRotate
		if i == len(files)-1 {
			want = ReasonClose
		}
		if !last.isDigest || last.digest.Reason != want {
			t.Errorf("%s ends with %s, want a %s digest", f, ls[len(ls)-1], want)
		}
		all = append(all, ls...)
	}
	rep := mustVerify(t, dir)
	if rep.Records != 30 || len(rep.Files) != len(files) || !rep.Closed {
		t.Errorf("report = %+v", rep)
	}
	// The chain runs across files: the first record of each file holds
	// the hash of the last record of the one before.
	second, _ := parseLine(lines(t, files[1])[0][:len(lines(t, files[1])[0])-1])
	var lastOfFirst []byte
	for _, line := range lines(t, files[0]) {
		if !bytes.HasPrefix(line, []byte(`{"digest"`)) {
			lastOfFirst = line
		}
	}
	h := lineHash(lastOfFirst)
	if second.prevHash != hex.EncodeToString(h[:]) {
		t.Error("the second file does not continue the first one's chain")
	}
}

func TestRotationByAge(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	l := openLog(t, dir, Options{Now: clock.Now, MaxFileAge: time.Hour})
	appendN(t, l, 0, 3)
	clock.Advance(time.Hour)
	appendN(t, l, 3, 3)
	clock.Advance(30 * time.Minute)
	appendN(t, l, 6, 3)
	closeLog(t, l)
	var names []string
	for _, f := range logFiles(t, dir) {
		names = append(names, filepath.Base(f))
	}
	want := []string{
		"audit-00000000000000000001-20250520T204616Z.jsonl",
		"audit-00000000000000000004-20250520T214616Z.jsonl",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("files = %v, want %v", names, want)
	}
	if rep := mustVerify(t, dir); rep.Records != 9 {
		t.Errorf("report = %+v", rep)
	}

	// A reopened log judges age by the time in the file's name.
	clock.Advance(time.Hour)
	l = openLog(t, dir, Options{Now: clock.Now, MaxFileAge: time.Hour})
	appendN(t, l, 9, 1)
	closeLog(t, l)
	if n := len(logFiles(t, dir)); n != 3 {
		t.Errorf("%d files after reopening an old file, want 3", n)
	}
	mustVerify(t, dir)
}

func TestReopenContinuesTheChain(t *testing.T) {
	dir := t.TempDir()
	for session := range 3 {
		l := openLog(t, dir, Options{})
		appendN(t, l, session*4, 4)
		closeLog(t, l)
	}
	// Open and close without a record adds nothing.
	closeLog(t, openLog(t, dir, Options{}))
	files := logFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files = %v", files)
	}
	rep := mustVerify(t, dir)
	if rep.Records != 12 || rep.Digests != 3 || rep.LastSequence != 12 || len(rep.Notes) != 0 {
		t.Errorf("report = %+v", rep)
	}
	if n := len(lines(t, files[0])); n != 15 {
		t.Errorf("%d lines, want 12 records and 3 close digests", n)
	}
}

// crashedLog writes records without closing the log, and returns a copy of
// its directory as a power cut would leave it (no close digest).
func crashedLog(t *testing.T, n int) string {
	t.Helper()
	src := t.TempDir()
	l := openLog(t, src, Options{DigestEvery: 4})
	appendN(t, l, 0, n)
	return copyDir(t, src)
}

func TestReopenAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name      string
		damage    func(t *testing.T, dir string)
		discarded int64
		before    ProblemKind // what Verify says before the reopen
	}{
		{"clean cut", func(*testing.T, string) {}, 0, ProblemUnclosed},
		{"torn last line", func(t *testing.T, dir string) {
			appendTo(t, logFiles(t, dir)[0], `{"sequence":7,"prevHash":"12`)
		}, 28, ProblemTorn},
		{"empty new file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, fileName(7, time.Now())), nil, 0o600)
		}, 0, ProblemEmptyFile},
		{"new file with a torn line", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, fileName(7, time.Now())), []byte(`{"seq`), 0o600)
		}, 5, ProblemTorn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := crashedLog(t, 6)
			tc.damage(t, dir)
			_, err := Verify(dir, testSigner().PublicKey())
			var p *Problem
			if !errors.As(err, &p) || p.Kind != tc.before {
				t.Fatalf("Verify of the crashed log: %v, want a %s problem", err, tc.before)
			}
			if p.Kind == ProblemUnclosed && p.Sequence != 5 {
				t.Errorf("Verify of the crashed log: %v, want records 5–6 unsigned", p)
			}

			l := openLog(t, dir, Options{})
			appendN(t, l, 6, 2)
			closeLog(t, l)
			rep := mustVerify(t, dir)
			if rep.Records != 8 || len(rep.Files) != 1 || len(rep.Notes) != 1 {
				t.Fatalf("report = %+v", rep)
			}
			if !strings.Contains(rep.Notes[0], "unclean shutdown") || (tc.discarded > 0) != strings.Contains(rep.Notes[0], "cutting") {
				t.Errorf("note = %q", rep.Notes[0])
			}
			ls := lines(t, logFiles(t, dir)[0])
			rec, _ := parseLine(bytes.TrimSuffix(ls[7], []byte("\n")))
			if !rec.isDigest || rec.digest.Reason != ReasonRecover || rec.digest.Sequence != 6 || rec.digest.DiscardedBytes != tc.discarded {
				t.Errorf("line 8 = %s, want a recover digest of record 6 with %d bytes discarded", ls[7], tc.discarded)
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesADamagedEnd(t *testing.T) {
	dir := crashedLog(t, 3)
	appendTo(t, logFiles(t, dir)[0], "{\"not\":\"a record\"}\n")
	_, err := Open(context.Background(), Options{Dir: dir, Signer: testSigner()})
	if err == nil || !strings.Contains(err.Error(), "cannot be continued") {
		t.Fatalf("Open = %v, want a refusal", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{DigestEvery: 100, MaxFileBytes: 200 << 10})
	const writers, each = 32, 100
	var wg sync.WaitGroup
	seqs := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := testRecord(w*each + i)
				if err := l.Append(context.Background(), r); err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], r.Sequence)
			}
		})
	}
	wg.Wait()
	closeLog(t, l)

	seen := make(map[uint64]bool)
	for w, s := range seqs {
		for i, seq := range s {
			if seen[seq] {
				t.Fatalf("sequence %d given twice", seq)
			}
			seen[seq] = true
			if i > 0 && seq <= s[i-1] {
				t.Errorf("writer %d: sequence %d after %d", w, seq, s[i-1])
			}
		}
	}
	rep := mustVerify(t, dir)
	if rep.Records != writers*each || rep.LastSequence != writers*each || len(seen) != writers*each {
		t.Errorf("report = %+v, %d sequences", rep, len(seen))
	}
	// Each record landed with the sequence its Append reported.
	for _, f := range rep.Files {
		for _, line := range lines(t, f) {
			var r Record
			json.Unmarshal(line, &r)
			if r.Sequence == 0 {
				continue
			}
			var w, i int
			if _, err := fmt.Sscanf(r.RequestID, "req-%d", &i); err != nil {
				t.Fatal(err)
			}
			w, i = i/each, i%each
			if seqs[w][i] != r.Sequence {
				t.Errorf("%s has sequence %d, Append reported %d", r.RequestID, r.Sequence, seqs[w][i])
			}
		}
	}
}

// faultyFile wraps a log file with switchable faults.
type faultyFile struct {
	logFile
	failWrite, failSync *atomic.Bool
}

func (f faultyFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		return 0, errors.New("injected: no space left on device")
	}
	return f.logFile.Write(p)
}

func (f faultyFile) Sync() error {
	if f.failSync.Load() {
		return errors.New("injected: input/output error")
	}
	return f.logFile.Sync()
}

func TestFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(fw, fs *atomic.Bool, fds *[]*os.File, out *failingWriter)
		cause  string
	}{
		{"write fails", func(fw, _ *atomic.Bool, _ *[]*os.File, _ *failingWriter) { fw.Store(true) }, "no space left"},
		{"fsync fails", func(_, fs *atomic.Bool, _ *[]*os.File, _ *failingWriter) { fs.Store(true) }, "input/output error"},
		{"fd closed underneath", func(_, _ *atomic.Bool, fds *[]*os.File, _ *failingWriter) {
			for _, f := range *fds {
				f.Close()
			}
		}, "closed"},
		{"stdout copy fails", func(_, _ *atomic.Bool, _ *[]*os.File, out *failingWriter) { out.fail.Store(true) }, "stdout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var failWrite, failSync atomic.Bool
			var fds []*os.File
			out := &failingWriter{}
			opts := Options{Stdout: out}
			opts.wrapFile = func(f logFile) logFile {
				fds = append(fds, f.(*os.File))
				return faultyFile{f, &failWrite, &failSync}
			}
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 5)
			if l.Err() != nil {
				t.Fatal(l.Err())
			}

			tc.break_(&failWrite, &failSync, &fds, out)
			var wg sync.WaitGroup
			var failed atomic.Int32
			for i := range 20 {
				wg.Go(func() {
					if err := l.Append(context.Background(), testRecord(100+i)); err != nil {
						failed.Add(1)
					}
				})
			}
			wg.Wait()
			if failed.Load() != 20 {
				t.Fatalf("%d of 20 Appends failed after the fault, want all", failed.Load())
			}
			if err := l.Err(); err == nil || !strings.Contains(err.Error(), tc.cause) {
				t.Fatalf("Err() = %v, want the cause %q", err, tc.cause)
			}
			// Fixing the fault does not revive the log: it stays failed.
			failWrite.Store(false)
			failSync.Store(false)
			out.fail.Store(false)
			if err := l.Append(context.Background(), testRecord(200)); err == nil {
				t.Fatal("Append succeeded on a failed log")
			}
			if err := l.Close(context.Background()); err == nil {
				t.Error("Close of a failed log returned nil")
			}

			// A new Open continues from what is durable, and verifies.
			l = openLog(t, dir, Options{})
			appendN(t, l, 300, 2)
			closeLog(t, l)
			rep := mustVerify(t, dir)
			if rep.Records < 7 {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

type failingWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	fail atomic.Bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail.Load() {
		return 0, errors.New("injected: broken pipe")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestStdoutCopyIsAVerifiableLog(t *testing.T) {
	dir := t.TempDir()
	out := &failingWriter{}
	l := openLog(t, dir, Options{Stdout: out, MaxFileBytes: 2000, DigestEvery: 3})
	appendN(t, l, 0, 10)
	closeLog(t, l)
	var files []byte
	for _, f := range logFiles(t, dir) {
		b, _ := os.ReadFile(f)
		files = append(files, b...)
	}
	if !bytes.Equal(out.buf.Bytes(), files) {
		t.Fatal("stdout did not get exactly the lines of the files")
	}
	copyPath := filepath.Join(t.TempDir(), "stdout.jsonl")
	os.WriteFile(copyPath, out.buf.Bytes(), 0o600)
	if _, err := VerifyFiles([]string{copyPath}, testSigner().PublicKey()); err != nil {
		t.Errorf("verify the stdout copy: %v", err)
	}
}

func TestAppendAfterClose(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 0, 1)
	closeLog(t, l)
	if err := l.Append(context.Background(), testRecord(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestAppendRefusesBadRecords(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	r := testRecord(0)
	r.RequestParameters["bad"] = make(chan int)
	if err := l.Append(context.Background(), r); err == nil {
		t.Error("unencodable record accepted")
	}
	r = testRecord(0)
	r.RequestParameters["big"] = strings.Repeat("x", MaxRecordBytes)
	if err := l.Append(context.Background(), r); err == nil {
		t.Error("oversized record accepted")
	}
	// Neither fails the log.
	appendN(t, l, 0, 1)
}

func TestOneLogPerDirectory(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if _, err := Open(context.Background(), Options{Dir: dir, Signer: testSigner()}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want in use", err)
	}
	closeLog(t, l)
	closeLog(t, openLog(t, dir, Options{}))
}

func TestOpenRefusesAWritableDirectory(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	if _, err := Open(context.Background(), Options{Dir: dir, Signer: testSigner()}); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("Open = %v", err)
	}
}
