package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/store/backend"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// openTestLog opens a real audit log in a temporary folder, closed with
// the test.
func openTestLog(t *testing.T) (*audit.Log, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := audit.Open(context.Background(), audit.Options{Dir: dir, Signer: audit.NewSigner(priv), DigestInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l, dir
}

// auditLines returns the records of the log in dir (digests left out).
func auditLines(t *testing.T, dir string) []map[string]any {
	t.Helper()
	files, err := audit.LogFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if _, digest := m["digest"]; !digest {
				recs = append(recs, m)
			}
		}
	}
	return recs
}

// rawSigned writes the request for op with body, signed with env's admin
// key, on a new TCP connection to the server at url and returns the
// connection.
func rawSigned(t *testing.T, env *kmstest.Env, url, op, body string) *net.TCPConn {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "TrentService."+op)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "kms", kmstest.Region, time.Now()); err != nil {
		t.Error(err)
		return nil
	}
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Error(err)
		return nil
	}
	if err := r.Write(c); err != nil {
		t.Error(err)
		c.Close()
		return nil
	}
	return c.(*net.TCPConn)
}

// reset closes c with SO_LINGER 0: the kernel sends a TCP RST, and the
// server sees the connection fail at once.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// slowAuditor delays every record before handing it to the log: the
// time between an operation's commit and its audit write grows from
// microseconds to milliseconds, as under load or on a slow disk, so that
// a client's reset lands in it every time.
type slowAuditor struct {
	*audit.Log
	delay time.Duration
}

func (s slowAuditor) Append(ctx context.Context, r *audit.Record) error {
	time.Sleep(s.delay)
	return s.Log.Append(ctx, r)
}

// TestResetAfterSendIsAudited sends signed CreateKey requests on raw
// sockets and resets each connection (SO_LINGER 0) right after the
// request is written: every key the store then holds has its CreateKey
// record. The server must neither skip the record nor cut the operation
// because the client went away.
func TestResetAfterSendIsAudited(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration // between the operation and its audit write
	}{
		{"real timing", 0},
		{"slow audit path", 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, dir := openTestLog(t)
			env := kmstest.StartWithAuditor(t, slowAuditor{l, tc.delay})
			// A server of the test's own on env's handler: its Close
			// waits for every handler still running.
			ts := httptest.NewServer(env.Handler)
			// Real timing: resets land anywhere from before the server
			// read the request to after its reply, a few land between
			// the commit and the audit write.
			const clients = 60
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := rawSigned(t, env, ts.URL, "CreateKey", fmt.Sprintf(`{"Description":"reset %d"}`, i))
					if c == nil {
						return
					}
					time.Sleep(time.Duration(i%10) * time.Millisecond)
					reset(c)
				}()
			}
			wg.Wait()
			ts.Close() // every request the server read has been handled

			keys := func() []string { return storeKeys(t, env) }
			created := map[string]bool{}
			for _, rec := range auditLines(t, dir) {
				if rec["eventName"] != "CreateKey" || rec["errorCode"] != nil {
					continue
				}
				b, _ := json.Marshal(rec["responseElements"])
				for _, id := range keys() {
					if bytes.Contains(b, []byte(id)) {
						created[id] = true
					}
				}
			}
			ids := keys()
			if len(ids) == 0 {
				t.Fatal("no key was created: the resets came before every request was read")
			}
			for _, id := range ids {
				if !created[id] {
					t.Errorf("key %s is in the store but has no CreateKey record", id)
				}
			}
			t.Logf("%d of %d reset clients created a key", len(ids), clients)
		})
	}
}

// storeKeys lists the ids of the keys in env's store, read by a store of
// its own on the same database.
func storeKeys(t *testing.T, env *kmstest.Env) []string {
	t.Helper()
	st, err := backend.Open(context.Background(), backendtest.Config(t, env.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := st.ListKeys(context.Background(), kmstest.Account, kmstest.Region, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}

// TestBodyReadTimeoutIsAudited sends a request whose body never arrives in
// full: the read times out, the request fails, and its record is written
// although the connection is gone.
func TestBodyReadTimeoutIsAudited(t *testing.T) {
	l, dir := openTestLog(t)
	env := kmstest.StartWithAuditor(t, l)
	ts := httptest.NewUnstartedServer(env.Handler)
	ts.Config.ReadTimeout = 200 * time.Millisecond
	ts.Start()
	defer ts.Close()

	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: TrentService.CreateKey\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n{\"Descr", ts.Listener.Addr())
	// The server answers (or drops the connection) once the read timed out.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	bufio.NewReader(c).ReadString('\n')
	ts.Close() // the handler has finished
	recs := auditLines(t, dir)
	if len(recs) != 1 {
		t.Fatalf("%d records after a request whose body read timed out, want 1: %v", len(recs), recs)
	}
	if recs[0]["eventName"] != "CreateKey" || recs[0]["errorCode"] != "SerializationException" {
		t.Errorf("record: %v", recs[0])
	}
}
