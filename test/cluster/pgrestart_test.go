package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// outcomes tallies the answers of the load while PostgreSQL goes away
// and comes back.
type outcomes struct {
	mu sync.Mutex
	ok int
	// encryptFailed counts failed Encrypts of the cached key: with the
	// store gone for longer than the invalidation bound (one second), a
	// node must stop answering from its cache.
	encryptFailed int
	codes         map[string]int // retryable AWS errors, by code
	bad           []string       // anything else: the test fails on them
}

func (o *outcomes) add(what string, err error, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.ok++
		return
	}
	// The request timeout of the clients is 10 s: an answer that took
	// longer is a hang.
	var ae smithy.APIError
	var re *awshttp.ResponseError
	switch {
	case !errors.As(err, &ae) || !errors.As(err, &re):
		o.bad = append(o.bad, fmt.Sprintf("%s: no AWS error answer after %s: %v", what, took.Round(time.Millisecond), err))
	case ae.ErrorCode() != "KMSInternalException" && ae.ErrorCode() != "DependencyTimeoutException":
		o.bad = append(o.bad, fmt.Sprintf("%s: %s (HTTP %d), want KMSInternalException or DependencyTimeoutException: %v", what, ae.ErrorCode(), re.HTTPStatusCode(), err))
	default:
		o.codes[fmt.Sprintf("%s (HTTP %d)", ae.ErrorCode(), re.HTTPStatusCode())]++
		if strings.HasSuffix(what, " Encrypt") {
			o.encryptFailed++
		}
	}
}

// readyz returns the status of the node's /readyz.
func readyz(nd *node) int {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(nd.url() + "/readyz")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(limit time.Duration, cond func() bool) bool {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestPostgresRestartUnderLoad stops the PostgreSQL server of two nodes
// under load for three seconds and starts it again. Meanwhile every
// request gets an answer, success or a retryable KMSInternalException or
// DependencyTimeoutException (never another error, a malformed answer or
// a hang), Encrypt of a cached key fails too once the invalidation bound
// has passed, and /readyz answers 503; afterwards both nodes serve again, the
// same processes, and /readyz answers 200.
func TestPostgresRestartUnderLoad(t *testing.T) {
	skipShort(t)
	pgdir, dsn := privatePostgres(t)
	bin := buildKmsd(t)
	nodes, akid, secret := startCluster(t, bin, dsn, 2)
	pids := []int{nodes[0].cmd.Process.Pid, nodes[1].cmd.Process.Pid}
	bg := context.Background()
	setup := nodes[0].client(akid, secret, 10*time.Second)
	k, err := setup.CreateKey(bg, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	key := *k.KeyMetadata.KeyId

	res := &outcomes{codes: map[string]int{}}
	ctx, stopLoad := context.WithCancel(bg)
	defer stopLoad()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for i, nd := range nodes {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := nd.client(akid, secret, 10*time.Second)
				for n := 0; ctx.Err() == nil; n++ {
					start := time.Now()
					var err error
					what := fmt.Sprintf("node %d", i+1)
					switch n % 3 {
					case 0:
						what += " Encrypt"
						_, err = c.Encrypt(ctx, &awskms.EncryptInput{KeyId: &key, Plaintext: []byte("x")})
					case 1:
						what += " DescribeKey"
						_, err = c.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: &key})
					default:
						what += " CreateKey"
						_, err = c.CreateKey(ctx, &awskms.CreateKeyInput{})
					}
					if ctx.Err() != nil {
						return
					}
					sent.Add(1)
					res.add(what, err, time.Since(start))
					if err != nil {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
	}

	time.Sleep(time.Second)
	pgCtl(t, pgdir, "stop", "-m", "immediate", "-w")
	stopped := time.Now()
	for _, nd := range nodes {
		if !waitFor(5*time.Second, func() bool { return readyz(nd) == http.StatusServiceUnavailable }) {
			t.Errorf("node %d: /readyz does not answer 503 with PostgreSQL stopped", nd.n)
		}
	}
	if d := 3*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d)
	}
	res.mu.Lock()
	during := fmt.Sprint(res.codes)
	failedDuring := len(res.codes) > 0
	encryptFailedDuring := res.encryptFailed
	res.mu.Unlock()
	pgCtl(t, pgdir, "start", "-w", "-t", "60", "-l", pgdir+"/postgres.log")
	restarted := time.Now()

	// The same processes serve again, every operation on every node.
	for _, nd := range nodes {
		c := nd.client(akid, secret, 10*time.Second)
		ok := waitFor(30*time.Second, func() bool {
			if readyz(nd) != http.StatusOK {
				return false
			}
			if _, err := c.CreateKey(bg, &awskms.CreateKeyInput{}); err != nil {
				return false
			}
			_, err := c.Encrypt(bg, &awskms.EncryptInput{KeyId: &key, Plaintext: []byte("x")})
			return err == nil
		})
		if !ok {
			t.Errorf("node %d does not serve again within 30 s of PostgreSQL's restart; its log:\n%s", nd.n, nd.log())
		} else {
			t.Logf("node %d serves again %s after PostgreSQL's restart", nd.n, time.Since(restarted).Round(time.Millisecond))
		}
	}
	time.Sleep(500 * time.Millisecond)
	stopLoad()
	wg.Wait()
	for i, nd := range nodes {
		if nd.cmd == nil || nd.cmd.Process.Pid != pids[i] {
			t.Errorf("node %d was restarted", nd.n)
		}
		select {
		case <-nd.done:
			t.Errorf("node %d exited:\n%s", nd.n, nd.log())
		default:
		}
	}
	t.Logf("%d requests: %d succeeded, retryable errors %v (during the outage: %s, %d of them Encrypts of the cached key)", sent.Load(), res.ok, res.codes, during, encryptFailedDuring)
	if !failedDuring {
		t.Error("no request failed while PostgreSQL was stopped: the nodes answered from their caches past the invalidation bound, or the load did not run")
	}
	if encryptFailedDuring == 0 {
		t.Error("every Encrypt of the cached key succeeded while PostgreSQL was stopped for 3 s: the nodes answered from their caches past the one-second invalidation bound")
	}
	for i, b := range res.bad {
		if i == 20 {
			t.Errorf("… and %d more", len(res.bad)-20)
			break
		}
		t.Error(b)
	}
}
