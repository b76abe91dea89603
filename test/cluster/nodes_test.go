package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/pgtest"
	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// needPostgres skips t (fails it under CI=true) when PostgreSQL 15 is
// not installed.
func needPostgres(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(initdb); err != nil {
		msg := "PostgreSQL 15 is missing (apt-get install postgresql): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// privatePostgres starts a PostgreSQL cluster of t's own with
// test/pg/start.sh and returns its folder and DSN; it is stopped and
// removed when t ends.
func privatePostgres(t *testing.T) (dir, dsn string) {
	t.Helper()
	needPostgres(t)
	dir, err := os.MkdirTemp("", "kmsd-cluster-pg.")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("../pg/start.sh", dir).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("test/pg/start.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("../pg/stop.sh", dir).CombinedOutput(); err != nil {
			t.Errorf("test/pg/stop.sh: %v\n%s", err, out)
		}
	})
	m := regexp.MustCompile(`KMSD_TEST_POSTGRES_DSN='([^']+)'`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("test/pg/start.sh printed no DSN:\n%s", out)
	}
	return dir, string(m[1])
}

// pgCtl runs pg_ctl on the private cluster in dir (as the postgres user
// when the test runs as root, as test/pg/start.sh does).
func pgCtl(t *testing.T, dir string, args ...string) {
	t.Helper()
	argv := append([]string{filepath.Join(filepath.Dir(initdb), "pg_ctl"), "-D", filepath.Join(dir, "data")}, args...)
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
	}
}

// storeDSN is a fresh, empty database: on the test server when
// KMSD_TEST_POSTGRES_DSN names one, else on a private cluster.
func storeDSN(t *testing.T) string {
	t.Helper()
	if os.Getenv(pgtest.EnvDSN) != "" {
		return pgtest.DSN(t)
	}
	_, dsn := privatePostgres(t)
	return dsn
}

// node is one kmsd serve process of a cluster, on a fixed loopback port
// after its first start, so that clients keep their endpoints across its
// restarts.
type node struct {
	t        *testing.T
	n        int
	bin, dir string
	dsn      string
	addr     string // 127.0.0.1:PORT once started
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	banner   string
	starts   int
}

// startCluster starts n nodes on the database dsn: node 1 creates the root key
// and the admin access key; the others get a copy of its root key and
// join. It returns the nodes and the admin credentials.
func startCluster(t *testing.T, bin, dsn string, n int) (nodes []*node, akid, secret string) {
	t.Helper()
	base := t.TempDir()
	for i := 1; i <= n; i++ {
		nd := &node{t: t, n: i, bin: bin, dir: filepath.Join(base, fmt.Sprintf("node%d", i)), dsn: dsn}
		if i > 1 {
			if err := os.Mkdir(nd.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(nodes[0].dir, "root.key"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(nd.dir, "root.key"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		nd.start()
		t.Cleanup(nd.kill)
		nodes = append(nodes, nd)
	}
	akid = regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(nodes[0].banner)[1]
	secret = regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(nodes[0].banner)[1]
	return nodes, akid, secret
}

var endpointRE = regexp.MustCompile(`(?m)^export AWS_ENDPOINT_URL_KMS=http://(\S+)$`)

// start starts the node and waits for its banner.
func (nd *node) start() {
	t := nd.t
	t.Helper()
	nd.starts++
	listen := nd.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(nd.dir), fmt.Sprintf("node%d.log", nd.n)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "---- start %d\n", nd.starts)
	cmd := exec.Command(nd.bin, "serve", "--data-dir", nd.dir, "--listen", listen)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + nd.dir, "KMSD_STORE=postgres", "KMSD_STORE_DSN=" + nd.dsn}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	nd.cmd, nd.done = cmd, make(chan struct{})
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if !sent && strings.HasPrefix(sc.Text(), "export AWS_ENDPOINT_URL_KMS=") {
				banner <- b.String()
				sent = true
			}
		}
		if !sent {
			banner <- ""
		}
	}()
	go func() { cmd.Wait(); close(nd.done) }()
	select {
	case nd.banner = <-banner:
	case <-time.After(60 * time.Second):
		nd.kill()
		t.Fatalf("node %d printed no banner within 60 s; its log: %s", nd.n, nd.log())
	}
	m := endpointRE.FindStringSubmatch(nd.banner)
	if m == nil {
		nd.kill()
		t.Fatalf("node %d (start %d) exited before serving:\n%s", nd.n, nd.starts, nd.log())
	}
	nd.addr = m[1]
}

// log returns the last part of the node's log.
func (nd *node) log() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(nd.dir), fmt.Sprintf("node%d.log", nd.n)))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// kill sends SIGKILL and waits for the process to end.
func (nd *node) kill() {
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.done
	nd.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (nd *node) stop() {
	t := nd.t
	t.Helper()
	nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.done:
	case <-time.After(60 * time.Second):
		t.Errorf("node %d still runs 60 s after SIGTERM", nd.n)
		nd.kill()
		return
	}
	if code := nd.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("node %d exited with code %d after SIGTERM:\n%s", nd.n, code, nd.log())
	}
	nd.cmd = nil
}

func (nd *node) url() string { return "http://" + nd.addr }

// client is an AWS SDK client of the node, with the SDK's retries off:
// the tests decide where a failed request goes next.
func (nd *node) client(akid, secret string, timeout time.Duration) *awskms.Client {
	return awskms.New(awskms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(nd.url()),
		RetryMaxAttempts: 1,
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		HTTPClient: &http.Client{Timeout: timeout, Transport: &http.Transport{
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
	})
}

// buildKmsd builds kmsd for the test.
func buildKmsd(t *testing.T) string {
	t.Helper()
	return e2etest.BuildKmsd(t, t.TempDir())
}

// skipShort skips a test that runs processes for a minute in -short mode.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
}

// errDeadline is the error of a client step that found no node to answer.
var errDeadline = errors.New("no node answered in time")

// retry runs op against the nodes in turn, starting with the first,
// until it succeeds, returns a final error (final reports whether err is
// an answer to keep rather than a failure to retry), or budget passes.
func retry(ctx context.Context, clients []*awskms.Client, start int, budget time.Duration, final func(error) bool, op func(context.Context, *awskms.Client) error) error {
	deadline := time.Now().Add(budget)
	var last error
	for i := start; time.Now().Before(deadline); i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := op(ctx, clients[i%len(clients)])
		if err == nil || final != nil && final(err) {
			return err
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%w: %v", errDeadline, last)
}
