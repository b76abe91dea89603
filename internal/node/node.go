// Package node wires one kmsd node on an open store and root of trust: the
// kms service, the iam directory, the SigV4 verifier, the HTTP server and
// the background work that keeps the service current (the change feed,
// key usage, the reaper). kmsd serve and the in-process kmsd of the tests
// (kmstest) both start their node here, so that tests run the service as
// kmsd serves it and the two cannot drift.
package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/awsquery"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/metrics"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/store/backend"
)

// Config is what a node is built from. The store, the keystore and the
// audit log are the caller's to open; the node closes only the audit log
// (CloseAudit), in Close.
type Config struct {
	Store    store.Store
	Keystore keystore.Keystore
	// Identities are the declared principals (iam.Compile); required.
	Identities *iam.Identities
	// Regions are the Regions served; Region the default one (of the audit
	// records of requests without a verified scope).
	Regions []string
	Region  string
	// HSMClusters are the clusters custom key stores connect to (nil:
	// none).
	HSMClusters kms.HSMClusters
	// KeyCacheSize and MaterialCacheSize bound the service's caches (0:
	// kms's defaults).
	KeyCacheSize, MaterialCacheSize int
	// Now is the service's clock (key dates, the reaper, STS session
	// expiry); nil: time.Now. SigV4 always checks signatures against the
	// real clock, which clients sign with.
	Now     func() time.Time
	Logger  *slog.Logger     // nil: discard
	Metrics *metrics.Metrics // nil: none
	// Audit receives every request's record before its reply (nil: none).
	Audit server.Auditor
	// AuditReady, when set, tells readiness whether Audit can write (kmsd
	// serve: the audit log's state and its anchor's).
	AuditReady func() error
	// CloseAudit, when set, closes Audit: Close calls it once no request
	// that changes state runs and the last key uses are written.
	CloseAudit func(context.Context) error
}

// Node is one running kmsd node.
type Node struct {
	// Service is the kms service, Handler the HTTP server of the API (and
	// /healthz, /readyz), IAM the directory of principals and access keys.
	Service *kms.Service
	Handler *server.Server
	IAM     *iam.Directory

	cfg        Config
	log        *slog.Logger
	stopBg     context.CancelFunc
	background sync.WaitGroup
	closeOnce  sync.Once
}

// Start builds a node on cfg's store and keystore. Custom key stores that
// were connected are connected again (one that cannot be becomes FAILED,
// and the node serves on). Nothing runs in the background until
// RunBackground. Once Start returns a node, its Close closes the audit
// log; on error, the caller still owns it.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Identities == nil {
		return nil, errors.New("node: Identities are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc, err := kms.New(kms.Config{Store: cfg.Store, Keystore: cfg.Keystore, Logger: log, Now: cfg.Now,
		HSMClusters: cfg.HSMClusters, Regions: cfg.Regions,
		KeyCacheSize: cfg.KeyCacheSize, MaterialCacheSize: cfg.MaterialCacheSize})
	if err != nil {
		return nil, err
	}
	if err := svc.RestoreCustomKeyStores(ctx); err != nil {
		svc.CloseCustomKeyStores()
		return nil, err
	}
	// The directory shares the service's clock: STS sessions expire by it.
	dir := iam.NewDirectory(cfg.Store, cfg.Keystore, cfg.Now)
	dir.SetIdentities(cfg.Identities)
	n := &Node{Service: svc, IAM: dir, cfg: cfg, log: log, stopBg: func() {}}
	n.Handler = server.New(server.Config{
		Routes: awsjson.Routes(svc),
		Verifier: &sigv4.Verifier{Service: "kms", Regions: cfg.Regions, Lookup: dir.Secret, SessionLookup: dir.SessionSecret,
			Now: time.Now,
			// Signing keys derived once per access key and day, checked
			// against the secret looked up for every request.
			Keys: sigv4.NewSigningKeyCache(0)},
		Callers: dir,
		STS:     &awsquery.Handler{IAM: dir},
		Logger:  cfg.Logger,
		Metrics: cfg.Metrics,
		Audit:   cfg.Audit,
		Region:  cfg.Region,
		Ready:   n.Ready,
	})
	return n, nil
}

// Ready reports whether the node can serve, for /readyz: the audit log
// can write (Config.AuditReady) and the store answers.
func (n *Node) Ready(ctx context.Context) error {
	if n.cfg.AuditReady != nil {
		if err := n.cfg.AuditReady(); err != nil {
			return err
		}
	}
	return storeReadiness(n.cfg.Store.Ping(ctx))
}

// storeReadiness is what /readyz says of the store's Ping error: a
// damaged store (which no retry mends, and which the store remembers once
// any request met it) is named, so that the operator sees why at once;
// other errors only in the log, since /readyz needs no credentials.
func storeReadiness(err error) error {
	if errors.Is(err, store.ErrDamaged) {
		return awserr.New(awserr.KMSInternal, "the store is damaged (a request met \"database disk image is malformed\", or a check failed), so requests that read the damaged part fail: restore "+backend.DatabaseFile+" from your backup (docs/operations.md#backups); kmsd store check lists the damage")
	}
	return err
}

// RunBackground starts the node's background work, until ctx ends or
// Close: following the store's change feed (changes other nodes and kmsd
// commands make), writing the keys' last uses (GetKeyLastUsage) off the
// request path, and, when reaperInterval is not 0, the reaper (deletions
// due, imported material expiry, rotations, feed pruning). Call it once.
func (n *Node) RunBackground(ctx context.Context, reaperInterval time.Duration) {
	bctx, stop := context.WithCancel(ctx)
	n.stopBg = stop
	run := func(f func(context.Context)) {
		n.background.Add(1)
		go func() { defer n.background.Done(); f(bctx) }()
	}
	run(func(ctx context.Context) { n.Service.Follow(ctx, 0) })
	run(func(ctx context.Context) { n.Service.RunKeyUsageRecorder(ctx, kms.DefaultUsageFlushInterval) })
	if reaperInterval > 0 {
		run(func(ctx context.Context) { n.Service.RunReaper(ctx, reaperInterval) })
	}
}

// Close stops the node: it waits, however long it takes, for the requests
// that change state still running (the HTTP server's shutdown grace may
// have run out on them: closing the audit log under one would leave its
// change committed and its record kept for the next start at best), stops
// the background work, writes the last key uses, closes the audit log and
// the custom key stores' connections. A second call does nothing.
func (n *Node) Close() {
	n.closeOnce.Do(n.close)
}

func (n *Node) close() {
	for {
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		running, err := n.Handler.Close(wctx)
		cancel()
		if err == nil {
			break
		}
		n.log.Warn("waiting for requests that change state to finish before closing the audit log", "running", running)
	}
	n.stopBg()
	n.background.Wait()
	// The caller's context is done by now: the last records and the close
	// digest get a context of their own.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Service.FlushKeyUsage(cctx); err != nil {
		n.log.Error("recording the last key usage", "err", err)
	}
	if n.cfg.CloseAudit != nil {
		if err := n.cfg.CloseAudit(cctx); err != nil {
			n.log.Error("closing the audit log", "err", err)
		}
	}
	n.Service.CloseCustomKeyStores()
}
