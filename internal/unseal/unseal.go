// Package unseal is how kmsd unseal gives a sealed kmsd serve its
// passphrase or its Shamir shares: a unix socket in the data folder that
// exists only while kmsd is sealed (mode 0600 in the 0700 folder, so only
// the folder's owner and root can connect), one JSON line of request and
// one of answer per connection. The unseal material never crosses the
// network listener.
//
// The Server collects shares (or takes a passphrase), checks the seal key
// they give against the sealed root's key check, and hands it to the
// caller of Wait, which opens the roots with it; Call is the client.
package unseal

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/shamir"
)

// SocketFile is the unseal socket's name in the data folder.
const SocketFile = "kmsd.sock"

// maxMessage bounds a request and an answer.
const maxMessage = 4 << 10

// Operations of a Request.
const (
	OpStatus     = "status"     // only report the seal state
	OpPassphrase = "passphrase" // give the passphrase
	OpShare      = "share"      // give one Shamir share
)

// Request is one message of kmsd unseal to kmsd serve. The secrets are
// []byte (base64 in JSON) so that both sides can clear them after use.
type Request struct {
	Op         string `json:"op"`
	Passphrase []byte `json:"passphrase,omitempty"`
	Share      []byte `json:"share,omitempty"` // the text form of one share
}

// Response is kmsd serve's answer.
type Response struct {
	Sealed    bool   `json:"sealed"`
	Kind      string `json:"kind,omitempty"` // a keystore.SealKind
	Shares    int    `json:"shares,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
	Have      int    `json:"have,omitempty"` // shares held so far
	Message   string `json:"message,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Call sends req to the sealed kmsd listening on the socket at path and
// returns its answer. A refusal (a wrong passphrase, a foreign share) is
// an answer with Error set, not an error.
func Call(ctx context.Context, path string, req *Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "connection refused") {
			return nil, fmt.Errorf("no sealed kmsd is waiting on %s: is kmsd serve running on this data folder, and still sealed? (%w)", path, err)
		}
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
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
		return nil, fmt.Errorf("sending to %s: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	return &resp, nil
}

// CheckShare refuses a share that is not one of info's split.
func CheckShare(info keystore.SealInfo, s shamir.Share) error {
	if s.Set != info.ShareSet {
		return fmt.Errorf("share %d belongs to another sealed root (share set %x; this root's shares are set %x)", s.Index, s.Set, info.ShareSet)
	}
	if int(s.Threshold) != info.Threshold || int(s.Index) > info.Shares {
		return fmt.Errorf("share %d (threshold %d) does not fit this root's %d-of-%d split", s.Index, s.Threshold, info.Threshold, info.Shares)
	}
	return nil
}

// Server is the unseal socket of a sealed kmsd serve.
type Server struct {
	info keystore.SealInfo
	ln   net.Listener
	log  *slog.Logger
	// attempts carries seal keys that passed the key check to Wait.
	attempts chan attempt

	mu     sync.Mutex // one submission at a time
	shares []shamir.Share
	done   bool
}

// attempt is a seal key for Wait to try. Wait owns the key from then on
// (wipes it on failure; on success it belongs to whoever open gave it to),
// and answers on result.
type attempt struct {
	key    *keystore.SealKey
	result chan error
}

// Listen creates the unseal socket at path for a root sealed as info
// describes, and serves it until Close or ctx ends. It refuses when
// another kmsd already waits on path, and replaces a socket left by one
// that crashed.
func Listen(ctx context.Context, path string, info keystore.SealInfo, log *slog.Logger) (*Server, error) {
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
	s := &Server{info: info, ln: ln, log: log, attempts: make(chan attempt)}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go s.accept(ctx)
	return s, nil
}

// Wait serves until open accepts a seal key and reports true; or reports
// false when ctx ends or stop is closed. open is given each seal key that
// passed the key check; the key is then open's to keep on success (it
// opens the roots with it), and is wiped on failure, which leaves kmsd
// sealed and waiting for the next attempt. Wait closes the server (and
// removes the socket) when it returns.
func (s *Server) Wait(ctx context.Context, stop <-chan struct{}, open func(*keystore.SealKey) error) bool {
	defer s.Close()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		case a := <-s.attempts:
			if err := open(a.key); err != nil {
				a.key.Wipe()
				s.log.Error("unseal failed; kmsd stays sealed", "err", err)
				a.result <- err
				continue
			}
			a.result <- nil
			return true
		}
	}
}

// Close removes the socket (net.UnixListener unlinks it on Close) and
// discards the shares held.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard()
}

func (s *Server) accept(ctx context.Context) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		go s.handle(ctx, conn)
	}
}

func (s *Server) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	line, err := bufio.NewReaderSize(io.LimitReader(conn, maxMessage), maxMessage).ReadBytes('\n')
	defer clear(line)
	var req Request
	var resp *Response
	if err != nil && !errors.Is(err, io.EOF) {
		resp = &Response{Sealed: true, Error: "reading the request: " + err.Error()}
	} else if err := json.Unmarshal(line, &req); err != nil {
		resp = &Response{Sealed: true, Error: "malformed request"}
	} else {
		resp = s.submit(ctx, &req)
	}
	clear(req.Passphrase)
	clear(req.Share)
	b, _ := json.Marshal(resp)
	conn.Write(append(b, '\n'))
}

// status describes the seal state; errMsg, when set, is the error.
func (s *Server) status(msg, errMsg string) *Response {
	r := &Response{Sealed: !s.done, Kind: string(s.info.Kind), Message: msg, Error: errMsg}
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

func (s *Server) submit(ctx context.Context, req *Request) *Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.status("kmsd is already unsealed", "")
	}
	switch req.Op {
	case OpStatus:
		return s.status("", "")
	case OpPassphrase:
		if s.info.Kind != keystore.SealPassphrase {
			return s.status("", "kmsd is sealed with "+s.info.Describe()+", not a passphrase")
		}
		key, err := s.info.PassphraseKey(req.Passphrase)
		if err != nil {
			s.log.Warn("unseal: wrong passphrase; still sealed")
			return s.status("", "wrong passphrase: kmsd stays sealed")
		}
		return s.try(ctx, key)
	case OpShare:
		if s.info.Kind != keystore.SealShamir {
			return s.status("", "kmsd is sealed with a passphrase, not shares")
		}
		sh, err := shamir.Parse(string(req.Share))
		if err != nil {
			return s.status("", err.Error()+"; the shares given so far are kept")
		}
		if err := CheckShare(s.info, sh); err != nil {
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

// try hands a checked seal key to Wait and waits for the outcome.
func (s *Server) try(ctx context.Context, key *keystore.SealKey) *Response {
	a := attempt{key: key, result: make(chan error, 1)}
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
func (s *Server) discard() {
	for i := range s.shares {
		s.shares[i].Wipe()
	}
	s.shares = nil
}
