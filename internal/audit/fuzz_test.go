package audit

import (
	"bytes"
	"testing"
)

// FuzzVerify feeds arbitrary file content to the verifier: a tampered log
// is untrusted input. It must never panic, and must accept only content
// that is a valid log. (Minimizing an input as large as the seed log takes
// a while: run with -fuzzminimizetime=5s.)
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"sequence":1,"prevHash":"` + GenesisHash + `"}` + "\n"))
	f.Add([]byte(`{"digest":{"version":1}}` + "\n"))
	dir := f.TempDir()
	l := openLog(f, dir, Options{DigestEvery: 2})
	appendN(f, l, 0, 3)
	closeLog(f, l)
	files := logFiles(f, dir)
	var good []byte
	for _, line := range lines(f, files[0]) {
		good = append(good, line...)
	}
	f.Add(good)
	pub := testSigner().PublicKey()
	f.Fuzz(func(t *testing.T, content []byte) {
		for _, name := range []string{"copy.jsonl", "audit-00000000000000000001-20250520T204616Z.jsonl"} {
			v := &verifier{pub: pub, keyID: KeyID(pub), rep: &Report{}}
			err := v.read(name, bytes.NewReader(content))
			if err == nil && v.pending != nil {
				err = v.pending(nil)
			}
			if err == nil {
				err = v.end()
			}
			if err == nil && !bytes.Equal(content, good) && !bytes.HasPrefix(good, content) {
				// Anything else that verifies must at least be a log
				// ending with a close digest signed by the key.
				if !v.rep.Closed {
					t.Fatalf("accepted an unclosed log: %q", content)
				}
			}
		}
	})
}
