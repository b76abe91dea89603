// Package config resolves kmsd's settings from, in increasing precedence,
// built-in defaults, a YAML file, KMSD_* environment variables and flags.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is kmsd's configuration.
type Config struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	Account string `yaml:"account"`
	Region  string `yaml:"region"`
	Log     struct {
		Level  string `yaml:"level"`  // debug, info, warn, error
		Format string `yaml:"format"` // text or json
	} `yaml:"log"`
	TLS struct {
		CertFile string `yaml:"cert_file"` // PEM certificate chain; reloaded on SIGHUP
		KeyFile  string `yaml:"key_file"`  // PEM private key
		// Dev makes kmsd create a local CA and a loopback server
		// certificate in the data folder (for development).
		Dev bool `yaml:"dev"`
	} `yaml:"tls"`
	Audit struct {
		// Stdout copies every audit line to standard output as well.
		Stdout bool `yaml:"stdout"`
		// MaxFileMB and MaxFileAge rotate the audit file by size and by
		// age (0: 64 MiB and 24h).
		MaxFileMB  int64         `yaml:"max_file_mb"`
		MaxFileAge time.Duration `yaml:"max_file_age"`
	} `yaml:"audit"`
	// MetricsListen is the address of the Prometheus /metrics listener;
	// empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
	// AllowInsecureListen permits a non-loopback address without TLS.
	AllowInsecureListen bool `yaml:"allow_insecure_listen"`
	// IAM declares principals and their identity policies (iam.go).
	IAM IAM `yaml:"iam"`
}

// TLSEnabled reports whether kmsd serves HTTPS.
func (c Config) TLSEnabled() bool { return c.TLS.Dev || c.TLS.CertFile != "" }

// Defaults are the settings of a kmsd started with no configuration.
func Defaults() Config {
	var c Config
	c.Listen = "127.0.0.1:4599"
	c.DataDir = defaultDataDir()
	c.Account = "111122223333"
	c.Region = "us-east-1"
	c.Log.Level = "info"
	c.Log.Format = "text"
	return c
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kmsd")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "kmsd")
	}
	return "kmsd-data"
}

// Load resolves the configuration of "kmsd serve" from args (flags) and
// getenv. Unknown keys in the YAML file are an error, so that a typo does
// not silently fall back to a default.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := fs.String("config", getenv("KMSD_CONFIG"), "YAML configuration file (env KMSD_CONFIG)")
	listen := fs.String("listen", "", "address to listen on (env KMSD_LISTEN; default 127.0.0.1:4599)")
	dataDir := fs.String("data-dir", "", "data folder (env KMSD_DATA_DIR; default ~/.local/share/kmsd)")
	account := fs.String("account", "", "12-digit account id (env KMSD_ACCOUNT; default 111122223333)")
	region := fs.String("region", "", "region served (env KMSD_REGION; default us-east-1)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (env KMSD_LOG_LEVEL)")
	logFormat := fs.String("log-format", "", "text or json (env KMSD_LOG_FORMAT)")
	insecure := fs.Bool("allow-insecure-listen", false, "allow a non-loopback listen address without TLS")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain to serve HTTPS with (env KMSD_TLS_CERT)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert (env KMSD_TLS_KEY)")
	devTLS := fs.Bool("dev-tls", false, "serve HTTPS with a local development CA created in the data folder")
	auditStdout := fs.Bool("audit-stdout", false, "copy every audit record to standard output too")
	metricsListen := fs.String("metrics-listen", "", "address of the Prometheus metrics listener (env KMSD_METRICS_LISTEN; default off)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(b, &c); err != nil {
			return c, fmt.Errorf("parse config %s: %w", *configPath, err)
		}
		c.IAM.BaseDir = filepath.Dir(*configPath)
	}
	set := func(dst *string, env, flagVal string) {
		if v := getenv(env); v != "" {
			*dst = v
		}
		if flagVal != "" {
			*dst = flagVal
		}
	}
	set(&c.Listen, "KMSD_LISTEN", *listen)
	set(&c.DataDir, "KMSD_DATA_DIR", *dataDir)
	set(&c.Account, "KMSD_ACCOUNT", *account)
	set(&c.Region, "KMSD_REGION", *region)
	set(&c.Log.Level, "KMSD_LOG_LEVEL", *logLevel)
	set(&c.Log.Format, "KMSD_LOG_FORMAT", *logFormat)
	set(&c.TLS.CertFile, "KMSD_TLS_CERT", *tlsCert)
	set(&c.TLS.KeyFile, "KMSD_TLS_KEY", *tlsKey)
	set(&c.MetricsListen, "KMSD_METRICS_LISTEN", *metricsListen)
	if *insecure {
		c.AllowInsecureListen = true
	}
	if *devTLS {
		c.TLS.Dev = true
	}
	if *auditStdout || getenv("KMSD_AUDIT_STDOUT") == "true" {
		c.Audit.Stdout = true
	}
	return c, c.Validate()
}

func decodeStrict(b []byte, c *Config) error {
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	err := d.Decode(c)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE  = regexp.MustCompile(`^([a-z]+-){2,3}\d+$`)
)

// Validate checks the configuration.
func (c Config) Validate() error {
	if !accountRE.MatchString(c.Account) {
		return fmt.Errorf("account %q is not a 12-digit account id", c.Account)
	}
	if !regionRE.MatchString(c.Region) {
		return fmt.Errorf("region %q is not a region name such as us-east-1", c.Region)
	}
	if c.DataDir == "" {
		return errors.New("data_dir is empty")
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file go together")
	}
	if c.TLS.Dev && c.TLS.CertFile != "" {
		return errors.New("tls: dev and cert_file exclude each other")
	}
	if !c.TLSEnabled() && !c.AllowInsecureListen && !isLoopback(host) {
		return fmt.Errorf("listen address %q is not a loopback address; kmsd serves plain HTTP only on loopback: configure TLS (tls.cert_file and tls.key_file) or set allow_insecure_listen", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics listen address %q: %w", c.MetricsListen, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log format %q is not text or json", c.Log.Format)
	}
	return c.IAM.Validate()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
