package unseal

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/shamir"
)

// testArgon2 keeps the tests fast; kmsd init always uses
// keystore.DefaultArgon2Params.
var testArgon2 = keystore.Argon2Params{Time: 1, MemoryKiB: 256, Threads: 1}

// sealedRoot seals a new root key file under key in a fresh folder and
// returns its path and header.
func sealedRoot(t *testing.T, key *keystore.SealKey) (string, keystore.SealInfo) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "root.key.sealed")
	if _, err := keystore.CreateSealedFile(path, key); err != nil {
		t.Fatal(err)
	}
	info, err := keystore.ReadSealInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, info
}

// waiting is a Server with Wait running; open opens the sealed root with
// the key, failing while failOpen is set.
type waiting struct {
	sock     string
	opened   chan *keystore.FileKeystore
	result   chan bool
	failOpen chan error
}

func startServer(t *testing.T, root string, info keystore.SealInfo) *waiting {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &waiting{
		sock:     filepath.Join(t.TempDir(), SocketFile),
		opened:   make(chan *keystore.FileKeystore, 1),
		result:   make(chan bool, 1),
		failOpen: make(chan error, 1),
	}
	s, err := Listen(ctx, w.sock, info, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w.result <- s.Wait(ctx, nil, func(key *keystore.SealKey) error {
			select {
			case err := <-w.failOpen:
				return err
			default:
			}
			ks, err := keystore.OpenSealedFile(root, key)
			if err != nil {
				return err
			}
			w.opened <- ks
			return nil
		})
	}()
	return w
}

func (w *waiting) call(t *testing.T, req *Request) *Response {
	t.Helper()
	resp, err := Call(context.Background(), w.sock, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkUnsealed checks that the last call unsealed the root id, that Wait
// returned, and that the socket is gone.
func (w *waiting) checkUnsealed(t *testing.T, resp *Response, id string) {
	t.Helper()
	if resp.Sealed || resp.Error != "" || !strings.Contains(resp.Message, "unsealed") {
		t.Fatalf("answer to the unsealing call: %+v", resp)
	}
	select {
	case ks := <-w.opened:
		if ks.ID() != id {
			t.Fatalf("opened root %s, want %s", ks.ID(), id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open was not called")
	}
	select {
	case ok := <-w.result:
		if !ok {
			t.Fatal("Wait returned false after an unseal")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after an unseal")
	}
	if _, err := os.Lstat(w.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket is still there after unseal: %v", err)
	}
	if _, err := Call(context.Background(), w.sock, &Request{Op: OpStatus}); err == nil || !strings.Contains(err.Error(), "no sealed kmsd") {
		t.Errorf("Call after unseal: %v", err)
	}
}

func TestPassphrase(t *testing.T) {
	pass := []byte("correct horse battery staple")
	key, err := keystore.NewPassphraseSealKey(pass, testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	root, info := sealedRoot(t, key)
	w := startServer(t, root, info)
	if fi, err := os.Stat(w.sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v; want mode 0600", fi, err)
	}

	st := w.call(t, &Request{Op: OpStatus})
	if !st.Sealed || st.Kind != string(keystore.SealPassphrase) || st.Error != "" || !strings.Contains(st.Message, "sealed (passphrase") {
		t.Fatalf("status: %+v", st)
	}
	if r := w.call(t, &Request{Op: OpPassphrase, Passphrase: []byte("correct horse battery stapler")}); !r.Sealed || !strings.Contains(r.Error, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %+v", r)
	}
	if r := w.call(t, &Request{Op: OpShare, Share: []byte("kmsd-share-1-00")}); !r.Sealed || !strings.Contains(r.Error, "passphrase, not shares") {
		t.Fatalf("a share for a passphrase seal: %+v", r)
	}
	if r := w.call(t, &Request{Op: "frobnicate"}); !r.Sealed || !strings.Contains(r.Error, "unknown request") {
		t.Fatalf("unknown op: %+v", r)
	}
	// The right passphrase, but the roots fail to open: still sealed,
	// and the next attempt works.
	w.failOpen <- errors.New("the store is locked")
	if r := w.call(t, &Request{Op: OpPassphrase, Passphrase: pass}); !r.Sealed || !strings.Contains(r.Error, "unsealing failed") || !strings.Contains(r.Error, "the store is locked") {
		t.Fatalf("failed open: %+v", r)
	}
	r := w.call(t, &Request{Op: OpPassphrase, Passphrase: pass})
	w.checkUnsealed(t, r, info.RootID)
}

func TestShares(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	split, err := shamir.Split(rand.Reader, secret, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keystore.NewShamirSealKey(secret, 3, 2, split[0].Set)
	if err != nil {
		t.Fatal(err)
	}
	root, info := sealedRoot(t, key)
	other, err := shamir.Split(rand.Reader, secret, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	w := startServer(t, root, info)
	share := func(s shamir.Share) *Response { return w.call(t, &Request{Op: OpShare, Share: []byte(s.Encode())}) }

	if st := w.call(t, &Request{Op: OpStatus}); !st.Sealed || st.Shares != 3 || st.Threshold != 2 || st.Have != 0 || !strings.Contains(st.Message, "0 of 2 shares given") {
		t.Fatalf("status: %+v", st)
	}
	if r := w.call(t, &Request{Op: OpPassphrase, Passphrase: []byte("x")}); !strings.Contains(r.Error, "not a passphrase") {
		t.Fatalf("a passphrase for a shares seal: %+v", r)
	}
	if r := share(other[0]); !strings.Contains(r.Error, "another sealed root") || r.Have != 0 {
		t.Fatalf("a share of another split: %+v", r)
	}
	if r := w.call(t, &Request{Op: OpShare, Share: []byte("not a share")}); r.Error == "" || r.Have != 0 {
		t.Fatalf("a malformed share: %+v", r)
	}
	if r := share(split[0]); r.Error != "" || r.Have != 1 || !strings.Contains(r.Message, "1 of 2 shares given") {
		t.Fatalf("first share: %+v", r)
	}
	if r := share(split[0]); !strings.Contains(r.Error, "already given") || r.Have != 1 {
		t.Fatalf("repeated share: %+v", r)
	}
	// A share of the right split with a wrong value (its checksum made
	// valid again) completes a combination that is not the seal key: the
	// shares are discarded.
	bad := split[1]
	bad.Value = append([]byte(nil), bad.Value...)
	bad.Value[0] ^= 1
	bad, err = shamir.Parse(bad.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if r := share(bad); !r.Sealed || !strings.Contains(r.Error, "discarded") || r.Have != 0 {
		t.Fatalf("a wrong combination: %+v", r)
	}
	if r := share(split[2]); r.Error != "" || r.Have != 1 {
		t.Fatalf("share after the discard: %+v", r)
	}
	w.checkUnsealed(t, share(split[1]), info.RootID)
}

func TestServerStopsAndRefuses(t *testing.T) {
	key, err := keystore.NewPassphraseSealKey([]byte("a long passphrase"), testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	info := key.Info()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	sock := filepath.Join(t.TempDir(), SocketFile)
	// A file left where the socket goes (by a kmsd that crashed) is
	// replaced.
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ctx, sock, info, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ctx, sock, info, log); err == nil || !strings.Contains(err.Error(), "already waiting") {
		t.Fatalf("a second server on the same socket: %v", err)
	}

	// A request that is not JSON gets an answer, not a hang.
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("not json\n"))
	var resp Response
	err = json.NewDecoder(bufio.NewReader(conn)).Decode(&resp)
	conn.Close()
	if err != nil || !resp.Sealed || resp.Error != "malformed request" {
		t.Fatalf("malformed request: %+v, %v", resp, err)
	}

	stop := make(chan struct{})
	close(stop)
	if s.Wait(ctx, stop, func(*keystore.SealKey) error { return nil }) {
		t.Fatal("Wait reported an unseal after stop")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket is still there after Wait returned: %v", err)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100), SocketFile)
	if _, err := Listen(ctx, long, info, log); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("a socket path over 100 bytes: %v", err)
	}
}
