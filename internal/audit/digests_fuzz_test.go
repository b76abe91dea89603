package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadDigests feeds arbitrary content to ReadDigests, as a digest file
// kept off the machine (audit.digest_file, or a copy of the whole log)
// that someone changed: untrusted input to kmsd audit verify --digests.
// It must never panic, and every checkpoint it returns must be a digest
// the log's key signed, with the sequence and hash it signed: no change to
// a file can make it vouch for a point the log never reached. Seeds: a
// whole log, its digests alone, and the digests with one byte changed.
func FuzzReadDigests(f *testing.F) {
	// The seed log is the same in every fuzzing process (a fixed clock,
	// fixed event ids, the fixed test key): the points it signs are the
	// oracle, and each worker process makes them anew.
	dir := f.TempDir()
	l := openLog(f, dir, Options{DigestEvery: 2, Now: newClock().Now})
	for i := range 5 {
		r := testRecord(i)
		r.EventID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if err := l.Append(context.Background(), r); err != nil {
			f.Fatal(err)
		}
	}
	closeLog(f, l)
	type point struct {
		seq  uint64
		hash string
	}
	signed := map[point]bool{}
	var whole, digests []byte
	for _, file := range logFiles(f, dir) {
		for _, line := range lines(f, file) {
			whole = append(whole, line...)
			p, err := parseLine(bytes.TrimSuffix(line, []byte("\n")))
			if err != nil {
				f.Fatal(err)
			}
			if p.isDigest {
				signed[point{p.digest.Sequence, p.digest.Hash}] = true
				digests = append(digests, line...)
			}
		}
	}
	if len(signed) < 2 {
		f.Fatalf("the seed log has %d digests, want several", len(signed))
	}
	f.Add(whole)
	f.Add(digests)
	changed := bytes.Clone(digests)
	changed[bytes.Index(changed, []byte(`"hash":"`))+len(`"hash":"`)] ^= 1
	f.Add(changed)
	f.Add([]byte{})
	f.Add([]byte("\n\n"))
	pub := testSigner().PublicKey()
	// One file per fuzzing process, rewritten for each input.
	path := filepath.Join(f.TempDir(), "digests.jsonl")
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		cps, err := ReadDigests(path, pub)
		if err != nil {
			if cps != nil {
				t.Fatalf("checkpoints %v returned with the error %v", cps, err)
			}
			return
		}
		for _, cp := range cps {
			if !signed[point{cp.Sequence, cp.Hash}] {
				t.Fatalf("accepted a checkpoint the key never signed: sequence %d, hash %s (%s)", cp.Sequence, cp.Hash, cp.Source)
			}
		}
	})
}
