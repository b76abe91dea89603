package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kmsd/kmsd/internal/durable"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/shamir"
)

// unsealSocket is the unix socket in the data folder through which kmsd
// unseal gives a sealed kmsd serve its passphrase or shares. kmsd serve
// creates it only while sealed (mode 0600, in the 0700 data folder, so
// only the folder's owner and root can connect) and removes it once
// unsealed: the unseal material never crosses the network listener.
const unsealSocket = "kmsd.sock"

// maxSecretFile bounds a passphrase or share file and an unseal request.
const maxSecretFile = 4 << 10

const unsealUsage = `usage: kmsd unseal [--config FILE] [--data-dir DIR] [--passphrase-file FILE | --share-file FILE] [--status]

Gives a sealed kmsd serve on this machine its passphrase, or one Shamir
share, through the unix socket DIR/kmsd.sock. Without a file it asks on the
terminal (without echo), or reads one share from standard input. With
shares, run it once per share: the share that completes the threshold
unseals. --status only reports whether kmsd is sealed.
`

// unsealRequest is one message of kmsd unseal to kmsd serve, one JSON
// line per connection. The secrets are []byte (base64 in JSON) so that
// both sides can clear them after use.
type unsealRequest struct {
	Op         string `json:"op"` // "status", "passphrase" or "share"
	Passphrase []byte `json:"passphrase,omitempty"`
	Share      []byte `json:"share,omitempty"` // the text form of one share
}

// unsealResponse is kmsd serve's answer, one JSON line.
type unsealResponse struct {
	Sealed    bool   `json:"sealed"`
	Kind      string `json:"kind,omitempty"`
	Shares    int    `json:"shares,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
	Have      int    `json:"have,omitempty"` // shares held so far
	Message   string `json:"message,omitempty"`
	Error     string `json:"error,omitempty"`
}

// unsealMain runs kmsd unseal.
func unsealMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("unseal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, unsealUsage); fs.PrintDefaults() }
	dirFlags := addDataDirFlags(fs)
	status := fs.Bool("status", false, "only report whether kmsd is sealed")
	var material unsealMaterial
	fs.StringVar(&material.passphraseFile, "passphrase-file", "", "file holding the passphrase (mode 0600; one trailing newline is ignored)")
	fs.Var(&material.shareFiles, "share-file", "file holding one Shamir share (mode 0600)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kmsd unseal: unexpected arguments %v", fs.Args())
	}
	if len(material.shareFiles) > 1 {
		return errors.New("kmsd unseal: give one --share-file per run (each run submits one share)")
	}
	cfg, err := dirFlags.load(getenv)
	if err != nil {
		return err
	}
	sock := filepath.Join(cfg.DataDir, unsealSocket)
	st, err := unsealCall(ctx, sock, &unsealRequest{Op: "status"})
	if err != nil {
		return err
	}
	if !st.Sealed {
		fmt.Fprintln(stdout, st.Message)
		return nil
	}
	if *status {
		fmt.Fprintln(stdout, st.Message)
		return nil
	}
	req := &unsealRequest{}
	defer func() { clear(req.Passphrase); clear(req.Share) }()
	switch keystore.SealKind(st.Kind) {
	case keystore.SealPassphrase:
		if len(material.shareFiles) > 0 {
			return errors.New("kmsd unseal: kmsd is sealed with a passphrase, not shares: give --passphrase-file")
		}
		req.Op = "passphrase"
		if req.Passphrase, err = material.passphrase(stderr, false); err != nil {
			return fmt.Errorf("kmsd unseal: %w", err)
		}
	case keystore.SealShamir:
		if material.passphraseFile != "" {
			return fmt.Errorf("kmsd unseal: kmsd is sealed with Shamir shares (%d of %d), not a passphrase: give --share-file", st.Threshold, st.Shares)
		}
		req.Op = "share"
		prompt := fmt.Sprintf("Share (%d of %d given so far; %d needed): ", st.Have, st.Threshold, st.Threshold)
		if req.Share, err = material.share(0, prompt, stderr, true); err != nil {
			return fmt.Errorf("kmsd unseal: %w", err)
		}
	default:
		return fmt.Errorf("kmsd unseal: kmsd reports an unknown seal kind %q", st.Kind)
	}
	resp, err := unsealCall(ctx, sock, req)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return fmt.Errorf("kmsd unseal: %s", resp.Error)
	}
	fmt.Fprintln(stdout, resp.Message)
	return nil
}

// unsealCall sends one request to the sealed kmsd at sock and returns its
// answer.
func unsealCall(ctx context.Context, sock string, req *unsealRequest) (*unsealResponse, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "connection refused") {
			return nil, fmt.Errorf("kmsd unseal: no sealed kmsd is waiting on %s: is kmsd serve running on this data folder, and still sealed? (%w)", sock, err)
		}
		return nil, fmt.Errorf("kmsd unseal: connecting to %s: %w", sock, err)
	}
	defer conn.Close()
	// Unsealing runs Argon2id and then opens the store and the audit log:
	// seconds, not minutes.
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("kmsd unseal: sending to %s: %w", sock, err)
	}
	var resp unsealResponse
	if err := json.NewDecoder(io.LimitReader(conn, maxSecretFile)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("kmsd unseal: reading the answer of %s: %w", sock, err)
	}
	return &resp, nil
}

// unsealMaterial is the unseal material a command was given: a passphrase
// file, or share files, or neither (then it asks on the terminal).
type unsealMaterial struct {
	passphraseFile string
	shareFiles     stringList
}

func (m *unsealMaterial) empty() bool { return m.passphraseFile == "" && len(m.shareFiles) == 0 }

// passphrase returns the passphrase from the file, or asked on the
// terminal (twice when confirm). The caller clears it.
func (m *unsealMaterial) passphrase(stderr io.Writer, confirm bool) ([]byte, error) {
	if m.passphraseFile != "" {
		return readSecretFile(m.passphraseFile, "passphrase file")
	}
	p, err := promptSecret("Passphrase: ", stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := promptSecret("Passphrase again: ", stderr)
		if err != nil {
			clear(p)
			return nil, err
		}
		same := bytes.Equal(p, again)
		clear(again)
		if !same {
			clear(p)
			return nil, errors.New("the two passphrases differ")
		}
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

// share returns the i-th share's text: from the i-th --share-file, else
// asked on the terminal, else (fromStdin) one line of standard input.
func (m *unsealMaterial) share(i int, prompt string, stderr io.Writer, fromStdin bool) ([]byte, error) {
	if i < len(m.shareFiles) {
		return readSecretFile(m.shareFiles[i], "share file")
	}
	if len(m.shareFiles) > 0 {
		return nil, fmt.Errorf("%d --share-file given, more shares needed", len(m.shareFiles))
	}
	s, err := promptSecret(prompt, stderr)
	if errors.Is(err, errNoTerminal) && fromStdin {
		return readLine(os.Stdin)
	}
	return s, err
}

// localKey derives the seal key of info here, for a command that opens
// sealed roots itself (kmsd root on a sealed data folder).
func (m *unsealMaterial) localKey(info keystore.SealInfo, stderr io.Writer) (*keystore.SealKey, error) {
	if info.Kind == keystore.SealPassphrase {
		if len(m.shareFiles) > 0 {
			return nil, errors.New("the root is sealed with a passphrase, not shares: give --passphrase-file")
		}
		p, err := m.passphrase(stderr, false)
		if err != nil {
			return nil, sealedHint(info, err)
		}
		defer clear(p)
		return info.PassphraseKey(p)
	}
	if m.passphraseFile != "" {
		return nil, fmt.Errorf("the root is sealed with %s, not a passphrase: give --share-file once per share", info.Describe())
	}
	var shares []shamir.Share
	defer func() {
		for i := range shares {
			shares[i].Wipe()
		}
	}()
	for i := range info.Threshold {
		text, err := m.share(i, fmt.Sprintf("Share %d of %d: ", i+1, info.Threshold), stderr, false)
		if err != nil {
			return nil, sealedHint(info, err)
		}
		s, err := shamir.Parse(string(text))
		clear(text)
		if err != nil {
			return nil, fmt.Errorf("share %d: %w", i+1, err)
		}
		shares = append(shares, s)
		if err := checkShare(info, s); err != nil {
			return nil, err
		}
	}
	secret, err := shamir.Combine(shares)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	return info.ShamirKey(secret)
}

func sealedHint(info keystore.SealInfo, err error) error {
	if !errors.Is(err, errNoTerminal) {
		return err
	}
	if info.Kind == keystore.SealPassphrase {
		return errors.New("the root of trust is sealed with a passphrase: give --passphrase-file FILE (or run this on a terminal)")
	}
	return fmt.Errorf("the root of trust is sealed with %s: give --share-file FILE %d times (or run this on a terminal)", info.Describe(), info.Threshold)
}

// checkShare refuses a share that is not one of info's split.
func checkShare(info keystore.SealInfo, s shamir.Share) error {
	if s.Set != info.ShareSet {
		return fmt.Errorf("share %d belongs to another sealed root (share set %x; this root's shares are set %x)", s.Index, s.Set, info.ShareSet)
	}
	if int(s.Threshold) != info.Threshold || int(s.Index) > info.Shares {
		return fmt.Errorf("share %d (threshold %d) does not fit this root's %d-of-%d split", s.Index, s.Threshold, info.Threshold, info.Shares)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

var errNoTerminal = errors.New("standard input is not a terminal")

// promptSecret asks for a secret on the terminal without echo. The caller
// clears it.
func promptSecret(prompt string, stderr io.Writer) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errNoTerminal
	}
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("reading from the terminal: %w", err)
	}
	return b, nil
}

// readLine reads one line (a share piped in) from r.
func readLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxSecretFile), 512)
	line, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		clear(line)
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("nothing on standard input")
	}
	return line, nil
}

// readSecretFile reads a passphrase or share file: mode 0600 (like every
// secret kmsd reads), at most 4 KiB; one trailing newline is dropped. The
// caller clears the result.
func readSecretFile(path, what string) ([]byte, error) {
	f, _, err := durable.OpenPrivate(path, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(b) > maxSecretFile {
		clear(b)
		return nil, fmt.Errorf("%s %s is larger than %d bytes", what, path, maxSecretFile)
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s is empty", what, path)
	}
	return b, nil
}

// unsealServer is the unseal socket of a sealed kmsd serve. It collects
// shares (or takes a passphrase), checks the seal key against the sealed
// root's key check, and hands it to serve, which opens the roots (the GCM
// tag of each sealed root is the final check) and starts the service.
type unsealServer struct {
	info keystore.SealInfo
	ln   net.Listener
	log  *slog.Logger
	// attempts carries seal keys that passed the key check to serve.
	attempts chan unsealAttempt

	mu     sync.Mutex // one submission at a time
	shares []shamir.Share
	done   bool
}

// unsealAttempt is a seal key for serve to try. serve owns the key from
// then on (wipes it on failure, keeps it in the keystore on success), and
// answers on result.
type unsealAttempt struct {
	key    *keystore.SealKey
	result chan error
}

// listenUnseal creates the unseal socket in dataDir and serves it until
// close or ctx ends.
func listenUnseal(ctx context.Context, dataDir string, info keystore.SealInfo, log *slog.Logger) (*unsealServer, error) {
	path := filepath.Join(dataDir, unsealSocket)
	// sun_path holds 108 bytes on Linux (104 on BSDs).
	if len(path) > 100 {
		return nil, fmt.Errorf("the unseal socket path %s is too long for a unix socket; use a shorter data folder path", path)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another kmsd is already waiting for unseal on %s", path)
	}
	// A socket left by a kmsd that crashed: nobody answers on it.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing the stale unseal socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("unseal socket: %w", err)
	}
	// The data folder (0700) already keeps others out; the socket's own
	// mode says so too.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("unseal socket: %w", err)
	}
	s := &unsealServer{info: info, ln: ln, log: log, attempts: make(chan unsealAttempt)}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go s.accept(ctx)
	return s, nil
}

// close removes the socket (net.UnixListener unlinks it on Close) and
// discards the shares held.
func (s *unsealServer) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard()
}

func (s *unsealServer) accept(ctx context.Context) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		go s.handle(ctx, conn)
	}
}

func (s *unsealServer) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	line, err := bufio.NewReaderSize(io.LimitReader(conn, maxSecretFile), maxSecretFile).ReadBytes('\n')
	defer clear(line)
	var req unsealRequest
	var resp *unsealResponse
	if err != nil && !errors.Is(err, io.EOF) {
		resp = &unsealResponse{Sealed: true, Error: "reading the request: " + err.Error()}
	} else if err := json.Unmarshal(line, &req); err != nil {
		resp = &unsealResponse{Sealed: true, Error: "malformed request"}
	} else {
		resp = s.submit(ctx, &req)
	}
	clear(req.Passphrase)
	clear(req.Share)
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

// status describes the seal state; errMsg, when set, is the error.
func (s *unsealServer) status(msg, errMsg string) *unsealResponse {
	r := &unsealResponse{Sealed: !s.done, Kind: string(s.info.Kind), Message: msg, Error: errMsg}
	if s.info.Kind == keystore.SealShamir {
		r.Shares, r.Threshold, r.Have = s.info.Shares, s.info.Threshold, len(s.shares)
	}
	if r.Message == "" && r.Sealed {
		r.Message = "kmsd is sealed (" + s.info.Describe() + ")"
		if s.info.Kind == keystore.SealShamir {
			r.Message += fmt.Sprintf(": %d of %d shares given", len(s.shares), s.info.Threshold)
		}
	}
	return r
}

func (s *unsealServer) submit(ctx context.Context, req *unsealRequest) *unsealResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.status("kmsd is already unsealed", "")
	}
	switch req.Op {
	case "status":
		return s.status("", "")
	case "passphrase":
		if s.info.Kind != keystore.SealPassphrase {
			return s.status("", "kmsd is sealed with "+s.info.Describe()+", not a passphrase")
		}
		key, err := s.info.PassphraseKey(req.Passphrase)
		if err != nil {
			s.log.Warn("unseal: wrong passphrase; still sealed")
			return s.status("", "wrong passphrase: kmsd stays sealed")
		}
		return s.try(ctx, key)
	case "share":
		if s.info.Kind != keystore.SealShamir {
			return s.status("", "kmsd is sealed with a passphrase, not shares")
		}
		sh, err := shamir.Parse(string(req.Share))
		if err != nil {
			return s.status("", err.Error()+"; the shares given so far are kept")
		}
		if err := checkShare(s.info, sh); err != nil {
			sh.Wipe()
			return s.status("", err.Error()+"; the shares given so far are kept")
		}
		for _, have := range s.shares {
			if have.Index == sh.Index {
				sh.Wipe()
				return s.status("", fmt.Sprintf("share %d was already given; %d of %d shares given", sh.Index, len(s.shares), s.info.Threshold))
			}
		}
		s.shares = append(s.shares, sh)
		s.log.Info("unseal: share accepted", "share", int(sh.Index), "given", len(s.shares), "threshold", s.info.Threshold)
		if len(s.shares) < s.info.Threshold {
			return s.status(fmt.Sprintf("Share %d accepted: %d of %d shares given; kmsd is still sealed.", sh.Index, len(s.shares), s.info.Threshold), "")
		}
		secret, err := shamir.Combine(s.shares)
		s.discard() // whatever happens next, this combination is used up
		if err != nil {
			return s.status("", "combining the shares: "+err.Error()+"; the shares were discarded: give them again")
		}
		key, err := s.info.ShamirKey(secret)
		clear(secret)
		if err != nil {
			s.log.Warn("unseal: the shares do not recombine to the seal key; discarded, still sealed")
			return s.status("", fmt.Sprintf("the %d shares do not recombine to this root's seal key (one is wrong); they were discarded: give them again", s.info.Threshold))
		}
		return s.try(ctx, key)
	default:
		return s.status("", fmt.Sprintf("unknown request %q", req.Op))
	}
}

// try hands a checked seal key to serve and waits for the outcome.
func (s *unsealServer) try(ctx context.Context, key *keystore.SealKey) *unsealResponse {
	a := unsealAttempt{key: key, result: make(chan error, 1)}
	select {
	case s.attempts <- a:
	case <-ctx.Done():
		key.Wipe()
		return s.status("", "kmsd is shutting down")
	}
	select {
	case err := <-a.result:
		if err != nil {
			return s.status("", "unsealing failed, kmsd stays sealed: "+err.Error())
		}
		s.done = true
		return s.status("kmsd is unsealed and serving.", "")
	case <-ctx.Done():
		return s.status("", "kmsd is shutting down")
	}
}

// discard wipes the shares held. s.mu must be held.
func (s *unsealServer) discard() {
	for i := range s.shares {
		s.shares[i].Wipe()
	}
	s.shares = nil
}
