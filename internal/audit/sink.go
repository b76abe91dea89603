package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// DigestSink receives a copy of every digest once it is durable in the
// log, to keep it where someone who controls the machine cannot reach
// (as CloudTrail delivers its digest files to a bucket of their own). A
// digest vouches for every record up to its sequence, and chains to the
// digest before it: a verifier holding the copies detects a log that was
// later cut back, replaced by an older copy or removed (kmsd audit verify
// --digests FILE).
type DigestSink interface {
	// SendDigest delivers one digest line (its "\n" included) with its
	// sequence. The log calls it from one goroutine, in log order; an
	// error is logged and the next digest is sent all the same.
	SendDigest(ctx context.Context, seq uint64, line []byte) error
}

// FileSink appends every digest line to a file (created with mode 0600)
// and fsyncs it: a file on storage the machine can write but not rewrite
// (an append-only mount, a remote file system, a disk of another
// machine), read later by kmsd audit verify --digests.
type FileSink struct {
	Path string
}

// SendDigest appends line to the file.
func (s FileSink) SendDigest(_ context.Context, _ uint64, line []byte) error {
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: digest file: %w", err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: digest file %s: %w", s.Path, err)
	}
	return nil
}

// DefaultCommandTimeout bounds one run of a CommandSink's command.
const DefaultCommandTimeout = 30 * time.Second

// CommandSink runs a command for every digest, with the digest line on
// its standard input and KMSD_AUDIT_DIGEST_SEQUENCE set to the digest's
// sequence in its environment: a hook that ships the digest off the
// machine (to an object store, a syslog server, a ticket, …). A command
// that exits non-zero, or runs longer than Timeout, fails the delivery.
type CommandSink struct {
	Argv    []string      // the command and its arguments; no shell
	Timeout time.Duration // 0: DefaultCommandTimeout
}

// SendDigest runs the command.
func (s CommandSink) SendDigest(ctx context.Context, seq uint64, line []byte) error {
	if len(s.Argv) == 0 {
		return errors.New("audit: digest command: no command")
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	cmd.Stdin = bytes.NewReader(line)
	cmd.Env = append(os.Environ(), "KMSD_AUDIT_DIGEST_SEQUENCE="+strconv.FormatUint(seq, 10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(out.Bytes())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		return fmt.Errorf("audit: digest command %s: %w: %s", s.Argv[0], err, msg)
	}
	return nil
}

// ReadDigests reads the digests kept off the machine in the file at path
// (as FileSink writes them; the lines of a full copy of the log, such as
// --audit-stdout ships, do too: records are skipped) and returns them as
// checkpoints for Verify, once each digest's signature checks out with
// pub. A digest that fails is an error: the copy was altered, or it is not
// this log's.
func ReadDigests(path string, pub ed25519.PublicKey) ([]Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	keyID := KeyID(pub)
	var cps []Checkpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", filepath.Base(path), n)
		p, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("audit: %s: %v", where, err)
		}
		if !p.isDigest {
			continue
		}
		d := p.digest
		sig, err := base64.StdEncoding.DecodeString(d.Signature)
		if d.KeyID != keyID || err != nil || !ed25519.Verify(pub, d.SignedMessage(), sig) {
			return nil, fmt.Errorf("audit: %s: the digest is not signed by the log's key %s: the copy was altered, or it belongs to another log", where, keyID)
		}
		cps = append(cps, Checkpoint{Sequence: d.Sequence, Hash: d.Hash, Source: "the digest at " + where})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: reading %s: %w", path, err)
	}
	return cps, nil
}
