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
	"syscall"
	"time"

	"github.com/kmsd/kmsd/internal/audit"
	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/logging"
	"github.com/kmsd/kmsd/internal/metrics"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store/sqlite"
	"github.com/kmsd/kmsd/internal/tlsutil"
)

// Files in the data folder.
const (
	rootKeyFile  = "root.key"
	databaseFile = "kmsd.db"
	devTLSDir    = "dev-tls"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	ks, closeKeystore, err := openKeystore(ctx, cfg, getenv, log)
	if err != nil {
		return err
	}
	defer closeKeystore()
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, databaseFile))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	svc, err := kms.New(kms.Config{Store: st, Keystore: ks, Region: cfg.Region, Logger: log})
	if err != nil {
		return err
	}
	dir := iam.NewDirectory(st, ks, nil)
	if err := loadIdentities(dir, cfg); err != nil {
		return err
	}
	akid, secret, err := bootstrapAdmin(ctx, dir, cfg.Account)
	if err != nil {
		return err
	}
	alog, err := openAudit(ctx, cfg, ks, stdout)
	if err != nil {
		return err
	}
	defer func() {
		// ctx is done by now: give the last records and the close digest
		// a context of their own.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := alog.Close(cctx); err != nil {
			log.Error("closing the audit log", "err", err)
		}
	}()
	m := metrics.New(metrics.Sources{CacheStats: svc.CacheStats, KeysByState: st.CountKeysByState})
	h := server.New(server.Config{
		Routes:   awsjson.Routes(svc),
		Verifier: &sigv4.Verifier{Service: "kms", Region: cfg.Region, Lookup: dir.Secret, Now: time.Now},
		Callers:  dir,
		Logger:   log,
		Metrics:  m,
		Audit:    alog,
		Region:   cfg.Region,
		Ready: func(ctx context.Context) error {
			if err := alog.Err(); err != nil {
				return err
			}
			return st.Ping(ctx)
		},
	})

	ln, caFile, reload, err := listen(cfg)
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		mux.Handle("/healthz", h)
		mux.Handle("/readyz", h)
		go server.Run(ctx, mln, mux, log, 5*time.Second)
		log.Info("metrics listening", "endpoint", "http://"+mln.Addr().String()+"/metrics")
	}
	go svc.RunReaper(ctx, time.Minute)
	reloaders := []reloader{{"iam identities", identityReloader(dir, cfg, args, getenv, log)}}
	if reload != nil {
		reloaders = append(reloaders, reloader{"TLS certificate", reload})
	}
	if lr, ok := ks.(*liveRing); ok {
		reloaders = append(reloaders, reloader{"roots manifest", func() error { return lr.reload(ctx) }})
	}
	go reloadOnHangup(ctx, reloaders, log)

	scheme := "http"
	if cfg.TLSEnabled() {
		scheme = "https"
	}
	endpoint := scheme + "://" + ln.Addr().String()
	log.Info("kmsd listening", "endpoint", endpoint, "account", cfg.Account, "region", cfg.Region, "data_dir", cfg.DataDir, "root_key", ks.ID())
	printBanner(stdout, endpoint, caFile, cfg, akid, secret)
	err = server.Run(ctx, ln, h, log, 20*time.Second)
	log.Info("kmsd stopped")
	return err
}

// rootKeystore is the root of trust kmsd serve uses: a keystore with a
// public root key id to log.
type rootKeystore interface {
	keystore.Keystore
	ID() string
}

// openAudit opens the audit log in the data folder, with its signing key
// wrapped by the root of trust.
func openAudit(ctx context.Context, cfg config.Config, ks keystore.Keystore, stdout io.Writer) (*audit.Log, error) {
	signer, err := audit.LoadOrCreateSigningKey(ctx, filepath.Join(cfg.DataDir, audit.SigningKeyFile), ks)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	opts := audit.Options{
		Dir:          filepath.Join(cfg.DataDir, audit.DirName),
		Signer:       signer,
		MaxFileBytes: cfg.Audit.MaxFileMB << 20,
		MaxFileAge:   cfg.Audit.MaxFileAge,
	}
	if cfg.Audit.Stdout {
		opts.Stdout = stdout
	}
	l, err := audit.Open(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return l, nil
}

// listen opens the API listener, with TLS when configured. It returns the
// CA bundle clients need for a development certificate, and the function
// that reloads the certificate (nil without TLS).
func listen(cfg config.Config) (ln net.Listener, caFile string, reload func() error, err error) {
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	if cfg.TLS.Dev {
		f, err := tlsutil.DevCertificates(filepath.Join(cfg.DataDir, devTLSDir), time.Now())
		if err != nil {
			return nil, "", nil, err
		}
		certFile, keyFile, caFile = f.Cert, f.Key, f.CA
	}
	ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, "", nil, fmt.Errorf("listen: %w", err)
	}
	if certFile == "" {
		return ln, "", nil, nil
	}
	rl, err := tlsutil.NewReloader(certFile, keyFile)
	if err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	return tls.NewListener(ln, rl.Config()), caFile, rl.Reload, nil
}

// reloadOnHangup reloads the iam identities and the TLS certificate on
// SIGHUP; what fails to reload stays as it was.
func reloadOnHangup(ctx context.Context, reloaders []reloader, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			for _, r := range reloaders {
				if err := r.reload(); err != nil {
					log.Error("SIGHUP: "+r.what+" reload failed; the previous one stays in force", "err", err)
				} else {
					log.Info("SIGHUP: " + r.what + " reloaded")
				}
			}
		}
	}
}

// prepareDataDir creates the data folder with mode 0700, and refuses an
// existing one that others can read.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("data folder %s has mode %o: it holds the root key, make it private (chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
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

func printBanner(w io.Writer, endpoint, caFile string, cfg config.Config, akid, secret string) {
	fmt.Fprintf(w, "kmsd is serving the AWS KMS API at %s (account %s, region %s, data in %s)\n\n", endpoint, cfg.Account, cfg.Region, cfg.DataDir)
	if secret != "" {
		fmt.Fprintf(w, "An access key was created for arn:aws:iam::%s:user/admin. Its secret is shown only this once:\n\n", cfg.Account)
		fmt.Fprintf(w, "export AWS_ACCESS_KEY_ID=%s\n", akid)
		fmt.Fprintf(w, "export AWS_SECRET_ACCESS_KEY=%s\n", secret)
	} else {
		fmt.Fprintf(w, "Use the access key printed when this data folder was created:\n\n")
	}
	fmt.Fprintf(w, "export AWS_DEFAULT_REGION=%s\n", cfg.Region)
	fmt.Fprintf(w, "export AWS_ENDPOINT_URL=%s\n", endpoint)
	caFlag := ""
	if caFile != "" {
		fmt.Fprintf(w, "export AWS_CA_BUNDLE=%s\n", caFile)
		caFlag = " --ca-bundle " + caFile
	}
	// AWS CLI releases before 2.13 ignore AWS_ENDPOINT_URL; --endpoint-url
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
