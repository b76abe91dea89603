// Package kmstest starts a complete in-process kmsd for tests and
// benchmarks — the node kmsd serve runs (package node: the kms service,
// SigV4, the HTTP handler, readiness, the change feed, key usage, the
// reaper when asked for) on the test store backend (backendtest) and a
// file root of trust — and returns an aws-sdk-go-v2 KMS client pointed at
// it.
package kmstest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/node"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/store/backendtest"
)

// Account and default Region of the test service. It serves every
// commercial AWS Region (config.CommercialRegions), as kmsd serve does by
// default: NewClientIn and ClientIn sign for another one.
const (
	Account = "111122223333"
	Region  = "us-east-1"
)

// Clock is a settable clock for the kms service. SigV4 keeps the real
// clock, because the SDK signs with it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Env is a running kmsd.
type Env struct {
	URL         string
	DataDir     string
	AccessKeyID string
	Secret      string
	Clock       *Clock
	Service     *kms.Service
	Client      *awskms.Client
	Handler     *server.Server
	// IAM holds the declared principals and access keys (see iam.go).
	IAM *iam.Directory
}

// Start starts kmsd in a fresh data folder; everything stops with the test.
func Start(tb testing.TB) *Env {
	tb.Helper()
	return StartIn(tb, tb.TempDir())
}

// StartIn starts kmsd on the data folder dir (reusing what it holds). The
// admin access key is created only when dir is new; tests that restart pass
// the credentials of the first start through Env.
func StartIn(tb testing.TB, dir string) *Env {
	tb.Helper()
	return startIn(tb, dir, options{})
}

// StartWithAuditor starts kmsd in a fresh data folder with an audit sink.
func StartWithAuditor(tb testing.TB, a server.Auditor) *Env {
	tb.Helper()
	return startIn(tb, tb.TempDir(), options{auditor: a})
}

// StartWithLogger starts kmsd in a fresh data folder whose server logs to
// log.
func StartWithLogger(tb testing.TB, log *slog.Logger) *Env {
	tb.Helper()
	return startIn(tb, tb.TempDir(), options{logger: log})
}

// StartWithAuditorAndLogger starts kmsd in a fresh data folder with an
// audit sink and a server that logs to log.
func StartWithAuditorAndLogger(tb testing.TB, a server.Auditor, log *slog.Logger) *Env {
	tb.Helper()
	return startIn(tb, tb.TempDir(), options{auditor: a, logger: log})
}

// StartWithClusters starts kmsd in data folder dir with the HSM clusters
// that custom key stores connect to (see package hsmcluster). Like kmsd
// serve, it reconnects the custom key stores that were connected.
func StartWithClusters(tb testing.TB, dir string, clusters kms.HSMClusters) *Env {
	tb.Helper()
	return startIn(tb, dir, options{clusters: clusters})
}

// StartWithReaper starts kmsd in a fresh data folder with its reaper
// running every interval, as kmsd serve runs it every reaper_interval (its
// least, one second, is too long for a test). The reaper goes by the
// service's clock, Env.Clock: advancing it past a key's waiting period
// makes the key due, and the reaper's next pass deletes it. This is how a
// test races requests against the reaper through the API.
func StartWithReaper(tb testing.TB, interval time.Duration) *Env {
	tb.Helper()
	return startIn(tb, tb.TempDir(), options{reaper: interval})
}

// options are what the Start functions vary.
type options struct {
	iam      config.IAM
	auditor  server.Auditor
	clusters kms.HSMClusters
	logger   *slog.Logger
	reaper   time.Duration // run the reaper this often; 0: not at all
}

func startIn(tb testing.TB, dir string, o options) *Env {
	tb.Helper()
	ctx := context.Background()
	ks, err := keystore.OpenFile(filepath.Join(dir, "root.key"))
	if err != nil {
		tb.Fatal(err)
	}
	st := backendtest.Open(tb, dir)
	clock := NewClock(time.Now().UTC())
	ids, err := iam.Compile(o.iam, Account)
	if err != nil {
		tb.Fatal(err)
	}
	// The node kmsd serve runs, on the test's store, root, clock and
	// audit sink.
	n, err := node.Start(ctx, node.Config{Store: st, Keystore: ks, Identities: ids, Regions: config.CommercialRegions, Region: Region,
		HSMClusters: o.clusters, Now: clock.Now, Logger: o.logger, Audit: o.auditor})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Close)
	// The change feed and key usage, as kmsd serve runs them, and the
	// reaper when asked for.
	n.RunBackground(ctx, o.reaper)
	env := &Env{DataDir: dir, Clock: clock, Service: n.Service, Handler: n.Handler, IAM: n.IAM}
	if has, err := n.IAM.HasAccessKeys(ctx, Account); err != nil {
		tb.Fatal(err)
	} else if !has {
		env.AccessKeyID, env.Secret, err = n.IAM.CreateAccessKey(ctx, Account, iam.UserARN(Account, "admin"))
		if err != nil {
			tb.Fatal(err)
		}
	}
	ts := httptest.NewServer(env.Handler)
	tb.Cleanup(ts.Close)
	env.URL = ts.URL
	if env.AccessKeyID != "" {
		env.Client = env.NewClient(env.AccessKeyID, env.Secret)
	}
	return env
}

// NewClient returns an aws-sdk-go-v2 KMS client for the given credentials,
// with retries off so that tests see the first answer.
func (e *Env) NewClient(akid, secret string) *awskms.Client {
	return e.NewClientIn(Region, akid, secret)
}

// NewClientIn is NewClient for a client configured for region.
func (e *Env) NewClientIn(region, akid, secret string) *awskms.Client {
	return awskms.New(awskms.Options{
		Region:           region,
		BaseEndpoint:     aws.String(e.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
	})
}

// ClientIn returns the built-in admin's client configured for region.
func (e *Env) ClientIn(region string) *awskms.Client {
	return e.NewClientIn(region, e.AccessKeyID, e.Secret)
}
