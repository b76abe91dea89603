//go:build ignore

// agecompare measures the throughput of package envelope (both suites) and
// of age (filippo.io/age, X25519 recipient) encrypting and decrypting the
// same stream, in one run on the same machine. run.sh builds it in a
// temporary module with age from the Go module proxy; it is not part of the
// kmsd module (the build tag keeps it out of go build/vet ./...).
//
// envelope uses a raw AES keyring here: with KMS the only difference is one
// GenerateDataKey/Decrypt round trip per message, nothing at 1 GiB.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"time"

	"filippo.io/age"

	"github.com/kmsd/kmsd/envelope"
)

// block is repeated to make the input stream; both tools see the same bytes.
var block = func() []byte {
	b := make([]byte, 1<<20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}()

// source yields size bytes of the repeated block.
type source struct{ off, size int64 }

func (s *source) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), s.size-s.off)], block[s.off%int64(len(block)):])
	s.off += int64(n)
	return n, nil
}

// checker verifies that what is written is the source stream.
type checker struct{ off int64 }

func (c *checker) Write(p []byte) (int, error) {
	for n := 0; n < len(p); {
		i := (c.off + int64(n)) % int64(len(block))
		m := min(len(p)-n, len(block)-int(i))
		if !bytes.Equal(p[n:n+m], block[i:int(i)+m]) {
			return n, errors.New("decrypted data differs from the input")
		}
		n += m
	}
	c.off += int64(len(p))
	return len(p), nil
}

type tool struct {
	name    string
	encrypt func(dst io.Writer, src io.Reader) error
	decrypt func(dst io.Writer, src io.Reader) error
}

func main() {
	sizeMiB := flag.Int64("mib", 1024, "input size in MiB")
	runs := flag.Int("runs", 2, "runs per measurement; the best is reported")
	flag.Parse()
	size := *sizeMiB << 20
	ctx := context.Background()

	kr, err := envelope.NewRawAESKeyring("bench", "key", block[:32])
	if err != nil {
		log.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}
	envelopeTool := func(s envelope.Suite) tool {
		return tool{
			name: fmt.Sprintf("envelope %04x", uint16(s)),
			encrypt: func(dst io.Writer, src io.Reader) error {
				_, err := envelope.Encrypt(ctx, dst, src, envelope.EncryptOptions{Keyring: kr, Suite: s})
				return err
			},
			decrypt: func(dst io.Writer, src io.Reader) error {
				_, err := envelope.Decrypt(ctx, dst, src, envelope.DecryptOptions{Keyring: kr})
				return err
			},
		}
	}
	tools := []tool{
		{
			name: "age X25519",
			encrypt: func(dst io.Writer, src io.Reader) error {
				w, err := age.Encrypt(dst, id.Recipient())
				if err != nil {
					return err
				}
				if _, err := io.Copy(w, src); err != nil {
					return err
				}
				return w.Close()
			},
			decrypt: func(dst io.Writer, src io.Reader) error {
				r, err := age.Decrypt(src, id)
				if err != nil {
					return err
				}
				_, err = io.Copy(dst, r)
				return err
			},
		},
		envelopeTool(envelope.SuiteCommitKey),
		envelopeTool(envelope.SuiteCommitKeyECDSAP384),
	}

	fmt.Printf("input %d MiB, GOMAXPROCS %d, %s/%s, %s, best of %d runs\n", *sizeMiB, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), *runs)
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	type result struct{ enc, dec float64 }
	results := map[string]result{}
	ct := bytes.NewBuffer(make([]byte, 0, size+size/32+1<<20))
	for _, t := range tools {
		var best result
		for range *runs {
			ct.Reset()
			start := time.Now()
			if err := t.encrypt(ct, &source{size: size}); err != nil {
				log.Fatalf("%s encrypt: %v", t.name, err)
			}
			enc := time.Since(start)
			start = time.Now()
			c := &checker{}
			if err := t.decrypt(c, bytes.NewReader(ct.Bytes())); err != nil {
				log.Fatalf("%s decrypt: %v", t.name, err)
			}
			dec := time.Since(start)
			if c.off != size {
				log.Fatalf("%s decrypted %d bytes, want %d", t.name, c.off, size)
			}
			best = result{max(best.enc, mbps(enc)), max(best.dec, mbps(dec))}
		}
		results[t.name] = best
		fmt.Printf("%-14s encrypt %7.0f MB/s   decrypt %7.0f MB/s   (message %d bytes)\n", t.name, best.enc, best.dec, ct.Len())
		runtime.GC()
	}
	// The signed suite hashes the whole message with SHA-384, which cannot
	// be parallelised: its speed on one core is that suite's ceiling.
	h := sha512.New384()
	start := time.Now()
	if _, err := io.Copy(h, &source{size: size}); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%-14s %7.0f MB/s (one core; the ceiling of the signed suite)\n", "SHA-384 alone", mbps(time.Since(start)))
	base := results["age X25519"]
	for _, t := range tools[1:] {
		r := results[t.name]
		fmt.Printf("%-14s / age: encrypt %.2fx, decrypt %.2fx\n", t.name, r.enc/base.enc, r.dec/base.dec)
	}
	os.Exit(0)
}
