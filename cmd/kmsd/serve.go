package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsd/kmsd/internal/awsjson"
	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/kms"
	"github.com/kmsd/kmsd/internal/server"
	"github.com/kmsd/kmsd/internal/sigv4"
	"github.com/kmsd/kmsd/internal/store/sqlite"
)

// Files in the data folder.
const (
	rootKeyFile  = "root.key"
	databaseFile = "kmsd.db"
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
	ks, err := keystore.OpenFile(filepath.Join(cfg.DataDir, rootKeyFile))
	if err != nil {
		return fmt.Errorf("open root key: %w", err)
	}
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
	akid, secret, err := bootstrapAdmin(ctx, dir, cfg.Account)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h := server.New(server.Config{
		Routes:   awsjson.Routes(svc),
		Verifier: &sigv4.Verifier{Service: "kms", Region: cfg.Region, Lookup: dir.Secret, Now: time.Now},
		Callers:  dir,
		Logger:   log,
	})
	go svc.RunReaper(ctx, time.Minute)

	endpoint := "http://" + ln.Addr().String()
	log.Info("kmsd listening", "endpoint", endpoint, "account", cfg.Account, "region", cfg.Region, "data_dir", cfg.DataDir, "root_key", ks.ID())
	printBanner(stdout, endpoint, cfg, akid, secret)
	err = server.Run(ctx, ln, h, log, 20*time.Second)
	log.Info("kmsd stopped")
	return err
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
	has, err := dir.HasAccessKeys(ctx, account)
	if err != nil || has {
		return "", "", err
	}
	return dir.CreateAccessKey(ctx, account, iam.UserARN(account, "admin"))
}

func printBanner(w io.Writer, endpoint string, cfg config.Config, akid, secret string) {
	fmt.Fprintf(w, "kmsd is serving the AWS KMS API at %s (account %s, region %s, data in %s)\n\n", endpoint, cfg.Account, cfg.Region, cfg.DataDir)
	if secret != "" {
		fmt.Fprintf(w, "An access key was created for arn:aws:iam::%s:user/admin. Its secret is shown only this once:\n\n", cfg.Account)
		fmt.Fprintf(w, "export AWS_ACCESS_KEY_ID=%s\n", akid)
		fmt.Fprintf(w, "export AWS_SECRET_ACCESS_KEY=%s\n", secret)
	} else {
		fmt.Fprintf(w, "Use the access key printed when this data folder was created:\n\n")
	}
	fmt.Fprintf(w, "export AWS_DEFAULT_REGION=%s\n", cfg.Region)
	fmt.Fprintf(w, "export AWS_ENDPOINT_URL=%s\n\n", endpoint)
	// AWS CLI releases before 2.13 ignore AWS_ENDPOINT_URL; --endpoint-url
	// works with every version.
	fmt.Fprintf(w, "Then try:\n\n  aws kms create-key --endpoint-url %s --description \"my first key\"\n\n", endpoint)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
