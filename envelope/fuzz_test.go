package envelope

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are real messages of both suites, plus their JavaScript
// counterparts from testdata.
func fuzzSeeds(f *testing.F) [][]byte {
	kr := testKeyring(f)
	var seeds [][]byte
	for _, s := range suites {
		for _, n := range []int{0, 5, 40} {
			seeds = append(seeds, encrypt(f, pattern(n), EncryptOptions{Keyring: kr, Suite: s, FrameLength: 16, EncryptionContext: map[string]string{"a": "b", "c": ""}}))
		}
	}
	files, _ := filepath.Glob("testdata/esdk-js/*.esdk")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzParseHeader feeds arbitrary bytes to the header parser. Whatever it
// accepts must be canonical: serializing the parsed header gives back
// exactly the bytes that were read.
func FuzzParseHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := parseHeader(bufio.NewReader(bytes.NewReader(in)), 0)
		if err != nil {
			return
		}
		body := h.body
		h.body = nil
		if err := h.marshalBody(); err != nil {
			t.Fatalf("accepted header does not serialize: %v", err)
		}
		if !bytes.Equal(h.body, body) {
			t.Fatalf("non-canonical header accepted:\nread  %x\nwrote %x", body, h.body)
		}
		if !bytes.HasPrefix(in, append(body, h.tag...)) {
			t.Fatal("header bytes do not match the input")
		}
	})
}

// FuzzDecrypt feeds arbitrary bytes to Decrypt with the keyring the seeds
// were made with: it must never panic, and must never succeed on an input
// that is not a message it could have produced.
func FuzzDecrypt(f *testing.F) {
	kr := testKeyring(f)
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		info, err := Decrypt(context.Background(), &out, bytes.NewReader(in), DecryptOptions{Keyring: kr, Concurrency: 2})
		if err != nil {
			return
		}
		if info.PlaintextLength != int64(out.Len()) {
			t.Fatalf("reported %d plaintext bytes, wrote %d", info.PlaintextLength, out.Len())
		}
		// A message that decrypts must also decrypt as a stream that
		// arrives one byte at a time.
		if _, err := Decrypt(context.Background(), io.Discard, &oneByteReader{in}, DecryptOptions{Keyring: kr}); err != nil {
			t.Fatalf("decrypts whole but not byte by byte: %v", err)
		}
	})
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}
