package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/awserr"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/datafolder"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/logging"
	"github.com/kmsd/kmsd/internal/metrics"
	"github.com/kmsd/kmsd/internal/node"
	"github.com/kmsd/kmsd/internal/rootmgr"
	"github.com/kmsd/kmsd/internal/seed"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/store"
	"github.com/kmsd/kmsd/internal/tlsutil"
	"github.com/kmsd/kmsd/internal/unseal"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := config.LoadWithUsage(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	setGCPercent(cfg, getenv, log)
	// A mistake in the configuration is reported before anything is
	// created, not after a first start made half a data folder.
	if _, err := iam.Compile(cfg.IAM, cfg.Account); err != nil {
		return fmt.Errorf("iam configuration: %w", err)
	}
	if _, err := adminPreset(cfg); err != nil {
		return err
	}
	// The seed too, as far as it can be without the service: a seed
	// that fails when applied leaves keys behind (audited, but a first
	// start that made them did not end).
	if s, err := loadSeed(cfg, nil); err != nil {
		return err
	} else if s != nil {
		if err := seed.Check(s); err != nil {
			return fmt.Errorf("seed: %w (kmsd has written nothing)", err)
		}
	}
	temporary := cfg.Dev && cfg.DataDir == ""
	removeDevData, err := devDataDir(&cfg)
	if err != nil {
		return err
	}
	defer removeDevData()
	if cfg.Dev {
		log.Warn("dev mode: not for production", "data_dir", cfg.DataDir, "temporary", temporary)
	}
	if _, err := hsmClusters(cfg); err != nil {
		return err
	}
	// What the data folder and its store hold decides, before anything is
	// written, between a first start, a start and a refusal.
	f, err := checkDataFolder(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer f.close()
	if err := checkKeyRegions(ctx, f.st, cfg, log); err != nil {
		return err
	}
	// Bind before creating anything: a first start that cannot listen
	// must leave nothing behind, least of all an admin access key whose
	// secret was never shown.
	ln, mln, err := bind(cfg)
	if err != nil {
		return err
	}
	closeListeners := func() {
		ln.Close()
		if mln != nil {
			mln.Close()
		}
	}
	if f.kind == datafolder.FirstStart {
		if err := datafolder.Prepare(cfg.DataDir); err != nil {
			closeListeners()
			return err
		}
	}
	api, caFile, reload, err := withTLS(cfg, ln)
	if err != nil {
		closeListeners()
		return err
	}
	ln = api
	// A sealed root (kmsd init) is opened only by kmsd unseal, below.
	if err := f.open(ctx, getenv, log, true); err != nil {
		closeListeners()
		return err
	}
	seal, st := f.sealed, f.st

	// The metrics read the service once it exists (after unseal, when
	// sealed).
	var svcRef atomic.Pointer[kms.Service]
	m := metrics.New(metrics.Sources{CacheStats: func() (uint64, uint64) {
		if svc := svcRef.Load(); svc != nil {
			return svc.CacheStats()
		}
		return 0, 0
	}, KeysByState: st.CountKeysByState})
	// front is the API handler: while sealed, a server that refuses every
	// request; then the real one, swapped in atomically.
	front := &frontHandler{}
	var app *service
	if seal == nil {
		if app, err = startService(ctx, cfg, args, f, f.ks, m, stdout, getenv, log); err != nil {
			closeListeners()
			return err
		}
		defer app.node.Close()
		svcRef.Store(app.node.Service)
		front.set(app.node.Handler)
	} else {
		front.set(sealedServer(cfg, m, log))
	}

	if mln != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		mux.Handle("/healthz", front)
		mux.Handle("/readyz", front)
		go server.Run(ctx, mln, mux, log, 5*time.Second)
		log.Info("metrics listening", "endpoint", "http://"+mln.Addr().String()+"/metrics")
	}
	var reloaders atomic.Pointer[[]reloader]
	if reload != nil {
		reloaders.Store(&[]reloader{{"TLS certificate", reload}})
	}
	go reloadOnHangup(ctx, &reloaders, log)

	scheme := "http"
	if cfg.TLSEnabled() {
		scheme = "https"
	}
	endpoint := scheme + "://" + clientAddr(ln.Addr())
	// The listener runs until ctx ends, or until a sealed start fails.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var runErr error
	runDone := make(chan struct{})
	go func() {
		runErr = server.Run(runCtx, ln, front, log, 20*time.Second)
		close(runDone)
	}()
	if seal != nil {
		// The unseal socket exists before kmsd says it is sealed.
		uctx, stopUnseal := context.WithCancel(ctx)
		defer stopUnseal()
		us, err := unseal.Listen(uctx, filepath.Join(cfg.DataDir, unseal.SocketFile), *seal, log)
		if err != nil {
			stopRun()
			<-runDone
			return err
		}
		log.Warn("kmsd is sealed: it answers every API request with DependencyTimeoutException until unsealed", "endpoint", endpoint, "seal", seal.Describe(), "root_key", seal.RootID)
		fmt.Fprintf(stdout, "kmsd is listening at %s but SEALED (%s): it refuses every API request until unsealed.\nUnseal it on this machine with: kmsd unseal --data-dir %s\n\n", endpoint, seal.Describe(), cfg.DataDir)
		// Each seal key that passes the key check opens the roots; one
		// that fails leaves kmsd sealed, waiting for the next.
		unsealed := us.Wait(ctx, runDone, func(key *keystore.SealKey) error {
			ks, err := f.roots.OpenLiveRing(ctx, key, log)
			if err != nil {
				return err
			}
			if err := ks.CheckStore(ctx, f.st); err != nil {
				ks.Close()
				return err
			}
			a, err := startService(ctx, cfg, args, f, ks, m, stdout, getenv, log)
			if err != nil {
				ks.Close()
				return err
			}
			f.ks = ks // closed with the folder, after the service
			svcRef.Store(a.node.Service)
			front.set(a.node.Handler)
			app = a
			return nil
		})
		if !unsealed {
			// ctx ended or the listener failed.
			stopRun()
			<-runDone
			log.Info("kmsd stopped")
			return runErr
		}
		defer app.node.Close()
		log.Info("kmsd unsealed", "root_key", f.ks.ID())
	}
	// The change feed, key usage and the reaper; Close stops them and
	// writes the last key uses.
	app.node.RunBackground(ctx, cfg.ReaperInterval)
	rl := append([]reloader{}, app.reloaders...)
	if reload != nil {
		rl = append(rl, reloader{"TLS certificate", reload})
	}
	reloaders.Store(&rl)

	log.Info("kmsd listening", "endpoint", endpoint, "account", cfg.Account, "region", cfg.Region, "regions", len(cfg.Regions), "data_dir", cfg.DataDir, "root_key", f.ks.ID())
	if cfg.Dev {
		devWarning(stdout, cfg, temporary)
	}
	if app.seeded != "" {
		fmt.Fprintln(stdout, app.seeded)
	}
	printBanner(stdout, endpoint, caFile, cfg, app.akid, app.secret, app.preset)
	<-runDone
	log.Info("kmsd stopped")
	return runErr
}

// service is what kmsd serve runs once its root of trust is open.
type service struct {
	node         *node.Node
	akid, secret string // the admin access key, when just created
	preset       *presetKey
	seeded       string // what the seed did, for the banner
	reloaders    []reloader
	log          *slog.Logger
}

// startService builds the service on an open root of trust: the audit log
// (its signing key is wrapped by the root), the node (the kms service,
// the iam directory whose secrets the root wraps, the HTTP server), the
// installation record on the first start of the store, the seed, and last
// the admin access key when the admin has none (the first start of an
// account), whose secret kmsd serve prints next, with nothing in between
// that can fail.
func startService(ctx context.Context, cfg config.Config, args []string, f *dataFolder, ks *rootmgr.LiveRing, m *metrics.Metrics, stdout io.Writer, getenv func(string) string, log *slog.Logger) (*service, error) {
	clusters, err := hsmClusters(cfg)
	if err != nil {
		return nil, err
	}
	ids, err := iam.Compile(cfg.IAM, cfg.Account)
	if err != nil {
		return nil, fmt.Errorf("iam configuration: %w", err)
	}
	preset, err := adminPreset(cfg)
	if err != nil {
		return nil, err
	}
	// The audit log opens before anything is written (custom key stores
	// reconnected, the admin access key): opening it is the last check
	// (its anchor), and every change must have its record.
	alog, err := openAudit(ctx, cfg, ks, f, stdout, log, m.ObserveAnchorSave)
	if err != nil {
		return nil, err
	}
	n, err := node.Start(ctx, node.Config{Store: f.st, Keystore: ks, Identities: ids, Regions: cfg.Regions, Region: cfg.Region,
		HSMClusters: clusters, KeyCacheSize: cfg.Cache.Keys, MaterialCacheSize: cfg.Cache.Materials,
		Logger: log, Metrics: m, Audit: alog, CloseAudit: alog.Close,
		AuditReady: func() error {
			if err := alog.Err(); err != nil {
				return err
			}
			if err := alog.AnchorErr(); err != nil {
				return &server.NotReady{Reason: "the audit log's anchor cannot be saved in the store (kmsd retries)", Err: err}
			}
			return nil
		}})
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		alog.Close(cctx)
		return nil, err
	}
	// From here on, n.Close closes the audit log too.
	if f.facts.Installation == nil {
		// A store that has it went through a first start. A store of an
		// earlier kmsd gets it on its first start with this one, with the
		// Region it is started with.
		if err := datafolder.RecordInstallation(ctx, f.st, cfg.Region, time.Now()); err != nil {
			n.Close()
			return nil, err
		}
		if f.kind == datafolder.ExistingStart {
			log.Warn("recorded the first start of this data folder in its store (kept by an earlier kmsd, which did not record it)", "region", cfg.Region)
		}
	}
	reloaders := []reloader{
		{"iam identities", identityReloader(n.IAM, cfg, args, getenv, log)},
		{"roots manifest", func() error { return ks.Reload(ctx) }},
	}
	a := &service{node: n, preset: preset, reloaders: reloaders, log: log}
	if err := a.applySeed(ctx, cfg, n.IAM); err != nil {
		n.Close()
		return nil, err
	}
	// The admin access key is made last, once nothing that follows can
	// fail before the banner shows its secret: a start that fails before
	// this point leaves no secret that was never shown, and the next
	// start, finding the admin without an access key, makes one and shows
	// it. (The seed runs as the admin user, without an access key.)
	created := false
	if a.akid, a.secret, created, err = ensureAdmin(ctx, n.IAM, cfg.Account, preset); err != nil {
		n.Close()
		return nil, err
	}
	if created {
		if err := recordAdminKey(ctx, alog, cfg, a.akid); err != nil {
			n.Close()
			return nil, err
		}
	}
	return a, nil
}

// recordAdminKey audits the admin access key a start made, as kmsd iam
// create-access-key audits its own: the key id and its principal, never
// the secret. A record the log cannot write is kept in the store, as a
// request's is; if neither takes it, the start fails before the secret is
// shown (the key stays unusable; the next start's banner names the
// recovery).
func recordAdminKey(ctx context.Context, alog *audit.Log, cfg config.Config, akid string) error {
	arn := iam.UserARN(cfg.Account, iam.AdminUser)
	rec := audit.OperatorRecord("CreateAccessKey", cfg.Region, map[string]any{"principalArn": arn, "account": cfg.Account})
	rec.ResponseElements = map[string]any{"accessKeyId": akid}
	rec.RecipientAccountID = cfg.Account
	err := alog.Append(ctx, rec)
	if err == nil {
		return nil
	}
	if kerr := alog.Keep(ctx, rec); kerr != nil {
		return fmt.Errorf("admin access key %s was created but has no audit record (%w; keeping it in the store: %v); its secret is not shown", akid, err, kerr)
	}
	return nil
}

// frontHandler serves the API through the handler in use: the sealed
// server, then the real one. The swap is one atomic store; a request
// costs one atomic load, no lock.
type frontHandler struct {
	h atomic.Pointer[http.Handler]
}

func (f *frontHandler) set(h http.Handler) { f.h.Store(&h) }

func (f *frontHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*f.h.Load()).ServeHTTP(w, r)
}

// sealedError is the answer to every API request while kmsd is sealed.
// DependencyTimeoutException is HTTP 503, which the AWS SDKs and CLI
// retry; the message says what to do.
func sealedError() error {
	return awserr.New(awserr.DependencyTimeout, "kmsd is sealed: run kmsd unseal on the server; retry later")
}

// sealedServer is the API handler of a sealed kmsd: health checks (readyz
// answers 503 "sealed"), and sealedError for every request, before
// authentication (the access key secrets are wrapped by the sealed root,
// so no signature can be checked). These refusals are not audited: the
// audit signing key is wrapped by the root too, so the audit log opens
// only after unseal. They are counted in the metrics and logged at debug.
func sealedServer(cfg config.Config, m *metrics.Metrics, log *slog.Logger) http.Handler {
	return server.New(server.Config{Logger: log, Metrics: m, Region: cfg.Region, Gate: sealedError})
}

// openAudit opens the audit log in the data folder, with its signing key
// wrapped by the root of trust and its anchor kept in the store. Only a
// first start, or a new node of a shared store, makes a signing key and a
// log; otherwise both must be there and the log must reach its anchor.
func openAudit(ctx context.Context, cfg config.Config, ks keystore.Keystore, f *dataFolder, stdout io.Writer, log *slog.Logger, onAnchorSave func(error)) (*audit.Log, error) {
	keyPath := filepath.Join(cfg.DataDir, audit.SigningKeyFile)
	var signer audit.Signer
	var err error
	if f.kind == datafolder.ExistingStart {
		signer, err = audit.LoadSigningKey(ctx, keyPath, ks)
	} else {
		signer, err = audit.LoadOrCreateSigningKey(ctx, keyPath, ks)
	}
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	opts := auditOptions(cfg, signer, f.st, log)
	opts.OnAnchorSave = onAnchorSave
	// A log without an anchor is started only when it is new, or kept by
	// an earlier kmsd (the store has no installation record yet).
	opts.AllowUnanchored = f.kind != datafolder.ExistingStart || f.facts.Installation == nil
	if cfg.Audit.Stdout {
		opts.Stdout = stdout
	}
	l, err := audit.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", datafolder.BehindHint(err, cfg.DataDir))
	}
	if err := datafolder.ConsumeRestored(ctx, f.st, &f.facts, audit.KeyID(signer.PublicKey())); err != nil {
		l.Close(ctx)
		return nil, err
	}
	if err := datafolder.RegisterNode(ctx, f.st, f.node, l, audit.KeyID(signer.PublicKey()), cfg.Region); err != nil {
		l.Close(ctx)
		return nil, err
	}
	return l, nil
}

// auditOptions are the options of the data folder's audit log: its
// folder, rotation, anchor and digest copies.
func auditOptions(cfg config.Config, signer audit.Signer, st store.Settings, log *slog.Logger) audit.Options {
	opts := audit.Options{
		Dir:          filepath.Join(cfg.DataDir, audit.DirName),
		Signer:       signer,
		MaxFileBytes: cfg.Audit.MaxFileMB << 20,
		MaxFileAge:   cfg.Audit.MaxFileAge,
		CommitDelay:  cfg.Audit.CommitDelay,
		Anchors:      datafolder.AnchorsIn(st),
		Outbox:       datafolder.OutboxIn(st),
		Logger:       log,
	}
	if cfg.Audit.DigestFile != "" {
		opts.Sinks = append(opts.Sinks, audit.FileSink{Path: cfg.Audit.DigestFile})
	}
	if len(cfg.Audit.DigestCommand) > 0 {
		opts.Sinks = append(opts.Sinks, audit.CommandSink{Argv: cfg.Audit.DigestCommand})
	}
	return opts
}

// bind opens the API listener and, when configured, the metrics one,
// before kmsd creates or opens anything.
func bind(cfg config.Config) (api, metricsLn net.Listener, err error) {
	api, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			api.Close()
			return nil, nil, fmt.Errorf("metrics listen: %w", err)
		}
	}
	return api, metricsLn, nil
}

// withTLS wraps the API listener in TLS when configured. It returns the
// CA bundle clients need for a development certificate (made in the data
// folder, which must exist), and the function that reloads the
// certificate (nil without TLS).
func withTLS(cfg config.Config, ln net.Listener) (tlsLn net.Listener, caFile string, reload func() error, err error) {
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	if cfg.TLS.Dev {
		f, err := tlsutil.DevCertificates(filepath.Join(cfg.DataDir, datafolder.DevTLSDir), time.Now())
		if err != nil {
			return nil, "", nil, err
		}
		certFile, keyFile, caFile = f.Cert, f.Key, f.CA
	}
	if certFile == "" {
		return ln, "", nil, nil
	}
	rl, err := tlsutil.NewReloader(certFile, keyFile)
	if err != nil {
		return nil, "", nil, err
	}
	return tls.NewListener(ln, rl.Config()), caFile, rl.Reload, nil
}

// reloadOnHangup reloads the iam identities, the roots manifest and the
// TLS certificate on SIGHUP (whatever reloaders holds then; while kmsd is
// sealed, only the certificate); what fails to reload stays as it was.
// It listens from the start, so that a SIGHUP to a sealed kmsd does not
// kill it.
func reloadOnHangup(ctx context.Context, reloaders *atomic.Pointer[[]reloader], log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			var rs []reloader
			if p := reloaders.Load(); p != nil {
				rs = *p
			}
			for _, r := range rs {
				if err := r.reload(); err != nil {
					log.Error("SIGHUP: "+r.what+" reload failed; the previous one stays in force", "err", err)
				} else {
					log.Info("SIGHUP: " + r.what + " reloaded")
				}
			}
		}
	}
}

// bootstrapAdmin creates the admin user's access key on the first start of
// an account. It returns the secret only when it was just created: kmsd
// stores secrets wrapped and never shows them again.
func bootstrapAdmin(ctx context.Context, dir *iam.Directory, account string) (akid, secret string, err error) {
	has, err := dir.HasAccessKeyFor(ctx, account, iam.UserARN(account, iam.AdminUser))
	if err != nil || has {
		return "", "", err
	}
	return dir.CreateAccessKey(ctx, account, iam.UserARN(account, "admin"))
}

func printBanner(w io.Writer, endpoint, caFile string, cfg config.Config, akid, secret string, preset *presetKey) {
	fmt.Fprintf(w, "kmsd is serving the AWS KMS API at %s (account %s, region %s, data in %s)\n", endpoint, cfg.Account, cfg.Region, cfg.DataDir)
	fmt.Fprintf(w, "Regions served: %s\n\n", strings.Join(cfg.Regions, " "))
	switch {
	case preset != nil:
		// The user has the secret; kmsd does not print it.
		fmt.Fprintf(w, "The admin user %s has the access key you gave; its secret is the one in %s:\n\n", iam.UserARN(cfg.Account, iam.AdminUser), preset.from)
		fmt.Fprintf(w, "export AWS_ACCESS_KEY_ID=%s\n", preset.id)
	case secret != "":
		fmt.Fprintf(w, "An access key was created for %s. Its secret is shown only this once:\n\n", iam.UserARN(cfg.Account, iam.AdminUser))
		fmt.Fprintf(w, "export AWS_ACCESS_KEY_ID=%s\n", akid)
		fmt.Fprintf(w, "export AWS_SECRET_ACCESS_KEY=%s\n", secret)
	default:
		fmt.Fprintf(w, "Use the admin access key printed when this data folder was created. If its secret is lost, make\n")
		fmt.Fprintf(w, "another (next to this kmsd, with the --config or --data-dir it runs with):\n\n  kmsd iam create-access-key --user admin\n\n")
	}
	// AWS_REGION is the variable the JavaScript SDK v3 reads (it ignores
	// AWS_DEFAULT_REGION); the other SDKs and the CLI read either.
	fmt.Fprintf(w, "export AWS_REGION=%s\n", cfg.Region)
	fmt.Fprintf(w, "export AWS_DEFAULT_REGION=%s\n", cfg.Region)
	// The KMS endpoint only: kmsd serves no other AWS service, and the
	// global AWS_ENDPOINT_URL would send a client's STS (or S3, …) calls
	// here too.
	fmt.Fprintf(w, "export AWS_ENDPOINT_URL_KMS=%s\n", endpoint)
	caFlag := ""
	if caFile != "" {
		fmt.Fprintf(w, "export AWS_CA_BUNDLE=%s\n", caFile)
		caFlag = " --ca-bundle " + caFile
	}
	// AWS CLI releases before 2.13 ignore AWS_ENDPOINT_URL_KMS; --endpoint-url
	// works with every version.
	fmt.Fprintf(w, "\nThen try:\n\n  aws kms create-key --endpoint-url %s%s --description \"my first key\"\n\n", endpoint, caFlag)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	return logging.New(w, level, cfg.Log.Format == "json")
}

// clientAddr is the address a client on this machine reaches a listener
// at: a wildcard listener ("0.0.0.0", "::", as in a container) is
// reached on loopback, which the development certificate names too.
func clientAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("localhost", strconv.Itoa(tcp.Port))
}
