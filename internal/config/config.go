// Package config resolves kmsd's settings from, in increasing precedence,
// built-in defaults, a YAML file, KMSD_* environment variables and flags.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kmsd/kmsd/internal/awsarn"
)

// Config is kmsd's configuration.
type Config struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	Account string `yaml:"account"`
	// Region is the default Region: the one the first start's banner
	// tells the AWS CLI to use. It must be one of Regions.
	Region string `yaml:"region"`
	// Regions are the Regions kmsd serves: a request signed for any other
	// is refused. Every key, alias, grant and custom key store lives in
	// one of them.
	Regions []string `yaml:"regions"`
	// AllowUnservedKeyRegions lets kmsd serve start on a store that holds
	// keys in Regions not in Regions (which it then does not serve);
	// without it kmsd refuses, naming them.
	AllowUnservedKeyRegions bool `yaml:"allow_unserved_key_regions"`

	Log struct {
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
		// CommitDelay is how long the audit writer holds a batch back
		// under load (4 or more records waiting) so that more records
		// share its fsync: 0 means 1ms, a negative value none.
		CommitDelay time.Duration `yaml:"commit_delay"`
		// DigestFile, if set, receives a copy of every signed digest as
		// it is made (appended and fsynced): put it where this machine
		// can add to it but not rewrite it, for kmsd audit verify
		// --digests to detect a rolled-back log.
		DigestFile string `yaml:"digest_file"`
		// DigestCommand, if set, runs for every signed digest with the
		// digest line on its standard input (no shell): a hook that ships
		// it off the machine.
		DigestCommand []string `yaml:"digest_command"`
	} `yaml:"audit"`
	// Cache bounds what kmsd holds in memory, whatever the number of keys
	// stored: memory grows with these settings, not with the store.
	Cache struct {
		// Keys is how many keys (with their compiled key policy and
		// grants) and as many aliases are cached (0: 10000).
		Keys int `yaml:"keys"`
		// Materials is how many unwrapped key materials (with their
		// parsed private keys) are cached (0: 10000).
		Materials int `yaml:"materials"`
	} `yaml:"cache"`
	// GCPercent is the Go garbage collector's target: how much the heap
	// may grow past the live data before a collection (0: the GOGC
	// environment variable if set, else 400). Higher spends memory to
	// save CPU per request; docs/performance.md gives the figures.
	GCPercent int `yaml:"gc_percent"`
	// ReaperInterval is how often kmsd deletes the keys whose waiting
	// period ended, expires imported key material, rotates the keys that
	// are due and prunes the change feed (default 1m; between
	// MinReaperInterval and MaxReaperInterval).
	ReaperInterval time.Duration `yaml:"reaper_interval"`
	// MetricsListen is the address of the Prometheus /metrics listener;
	// empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
	// AllowInsecureListen permits a non-loopback address without TLS.
	AllowInsecureListen bool `yaml:"allow_insecure_listen"`
	// IAM declares principals and their identity policies (iam.go).
	IAM IAM `yaml:"iam"`
	// Store selects where kmsd keeps its state.
	Store Store `yaml:"store"`
	// Keystore selects the root of trust.
	Keystore Keystore `yaml:"keystore"`
	// NodeID names this node of a cluster (a store shared by several
	// nodes): the store remembers which audit log each node keeps, so
	// that a node whose data folder was wiped is recognised. Empty means
	// the host name and the data folder's absolute path.
	NodeID string `yaml:"node_id"`
	// AcceptLostLog lets a node whose data folder lost its audit log
	// start a new one, recording the loss (flag --accept-lost-log only).
	AcceptLostLog bool `yaml:"-"`
	// HSMClusters are the PKCS#11 tokens that custom key stores (AWS
	// CloudHSM key stores) connect to, named by CloudHsmClusterId.
	HSMClusters []HSMCluster `yaml:"hsm_clusters"`

	// Dev is development mode (kmsd serve --dev): the data folder is a
	// new temporary one unless one is named, the admin credentials may be
	// given in the environment, the banner says that this is not for
	// production, and kmsd never listens beyond loopback without TLS.
	Dev bool `yaml:"dev"`
	// AdminCredentialsFile names a file holding the admin user's access
	// key (an AWS shared credentials file: aws_access_key_id and
	// aws_secret_access_key), which kmsd serve makes sure exists at start
	// instead of creating a fresh one. The file must not be accessible by
	// group or others.
	AdminCredentialsFile string `yaml:"admin_credentials_file"`
	// DevAccessKeyID and DevSecretAccessKey are the admin access key of
	// dev mode, from --dev-access-key-id or KMSD_DEV_ACCESS_KEY_ID and
	// KMSD_DEV_SECRET_ACCESS_KEY (never a flag: argv is visible in ps).
	// They are not read from the YAML file, which is no place for a
	// secret: use admin_credentials_file.
	DevAccessKeyID     string `yaml:"-"`
	DevSecretAccessKey Secret `yaml:"-"`
	// Seed is the declarative seed (keys, aliases, grants …) applied at
	// every start; SeedFile names a YAML file holding one instead.
	Seed     *Seed  `yaml:"seed"`
	SeedFile string `yaml:"seed_file"`
}

// HSMCluster declares one token standing in for a CloudHSM cluster. Its
// PIN is not configured: clients give it as the custom key store's
// KeyStorePassword.
type HSMCluster struct {
	ID              string `yaml:"id"`                // e.g. cluster-kmsdsofthsm2
	Module          string `yaml:"module"`            // path of the PKCS#11 library
	TokenLabel      string `yaml:"token_label"`       // the token, found by label
	TrustAnchorFile string `yaml:"trust_anchor_file"` // optional PEM certificate CreateCustomKeyStore must match
	Sessions        int    `yaml:"sessions"`          // concurrent HSM sessions per connected store (0: 8)
}

var clusterIDRE = regexp.MustCompile(`^cluster-[2-7a-zA-Z]{11,16}$`)

// validateHSMClusters checks the hsm_clusters section.
func validateHSMClusters(cs []HSMCluster) error {
	seen := map[string]bool{}
	for i, c := range cs {
		switch {
		case !clusterIDRE.MatchString(c.ID):
			return fmt.Errorf("hsm_clusters[%d].id %q is not a cluster id such as cluster-kmsdsofthsm2 (\"cluster-\" and 11 to 16 letters or digits 2-7)", i, c.ID)
		case seen[c.ID]:
			return fmt.Errorf("hsm_clusters: %s is declared twice", c.ID)
		case c.Module == "":
			return fmt.Errorf("hsm_clusters %s: module is required (the PKCS#11 library)", c.ID)
		case c.TokenLabel == "":
			return fmt.Errorf("hsm_clusters %s: token_label is required", c.ID)
		case c.Sessions < 0 || c.Sessions > 1024:
			return fmt.Errorf("hsm_clusters %s: sessions %d is not between 0 and 1024", c.ID, c.Sessions)
		}
		seen[c.ID] = true
	}
	return nil
}

// Store selects kmsd's store: "sqlite" (the default: an embedded database
// in the data folder) or "postgres" (a PostgreSQL database that any number
// of kmsd nodes share, named by DSN).
type Store struct {
	Type string `yaml:"type"`
	// DSN is the PostgreSQL connection string (keyword/value or URL) of a
	// postgres store. It may hold a password, so it is a Secret.
	DSN Secret `yaml:"dsn"`
}

// Validate checks the store section.
func (s Store) Validate() error {
	switch s.Type {
	case "sqlite":
		if s.DSN != "" {
			return errors.New("store: a DSN is set but the store type is sqlite; set the type to postgres (store.type, KMSD_STORE or --store), or unset the DSN")
		}
	case "postgres":
		if s.DSN == "" {
			return errors.New("store: type postgres needs a DSN, the PostgreSQL connection string (store.dsn, KMSD_STORE_DSN or --store-dsn)")
		}
	default:
		return fmt.Errorf("store.type %q is not sqlite or postgres", s.Type)
	}
	return nil
}

// Secret is a setting that must not be shown, such as a DSN with a
// password: it prints (with fmt's %v, %+v, %#v and %s, alone or in a
// struct), logs (slog) and marshals (JSON, YAML) as "[redacted]", or as ""
// when empty. Reveal returns the value itself.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.shown() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.shown()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.shown())), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.shown(), nil }

// Keystore selects kmsd's root of trust: "file" (the default: a root key
// file in the data folder) or "pkcs11" (an AES-256 key inside an HSM).
type Keystore struct {
	Type   string         `yaml:"type"`
	PKCS11 PKCS11Keystore `yaml:"pkcs11"`
}

// PKCS11Keystore configures the PKCS#11 root of trust. The PIN is read
// from a file or an environment variable, never written in the YAML.
type PKCS11Keystore struct {
	Module     string `yaml:"module"`      // path of the PKCS#11 library
	TokenLabel string `yaml:"token_label"` // the token, found by label
	KeyLabel   string `yaml:"key_label"`   // the wrapping key; generated on first start
	PINFile    string `yaml:"pin_file"`    // a file holding the user PIN (mode 0600)
	PINEnv     string `yaml:"pin_env"`     // or the name of an environment variable holding it
	Sessions   int    `yaml:"sessions"`    // concurrent HSM sessions (0: 8)
}

// PIN returns the user PIN from pin_file (trailing newline removed; the
// file must not be accessible by group or others) or from the environment
// variable pin_env, looked up with getenv.
func (p PKCS11Keystore) PIN(getenv func(string) string) (string, error) {
	if p.PINEnv != "" {
		pin := getenv(p.PINEnv)
		if pin == "" {
			return "", fmt.Errorf("keystore.pkcs11.pin_env: environment variable %s is empty or unset", p.PINEnv)
		}
		return pin, nil
	}
	f, err := os.Open(p.PINFile)
	if err != nil {
		return "", fmt.Errorf("keystore.pkcs11.pin_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("keystore.pkcs11.pin_file: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("keystore.pkcs11.pin_file %s has mode %04o, which lets group or others read the PIN; run: chmod 600 %s", p.PINFile, perm, p.PINFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("keystore.pkcs11.pin_file: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("keystore.pkcs11.pin_file %s is empty", p.PINFile)
	}
	return pin, nil
}

// Validate checks the keystore section.
func (k Keystore) Validate() error {
	p := k.PKCS11
	switch k.Type {
	case "file":
		if p != (PKCS11Keystore{}) {
			return errors.New("keystore.pkcs11 is set but keystore.type is file; set type: pkcs11")
		}
		return nil
	case "pkcs11":
	default:
		return fmt.Errorf("keystore.type %q is not file or pkcs11", k.Type)
	}
	switch {
	case p.Module == "":
		return errors.New("keystore.pkcs11.module is required (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)")
	case p.TokenLabel == "":
		return errors.New("keystore.pkcs11.token_label is required")
	case p.KeyLabel == "":
		return errors.New("keystore.pkcs11.key_label is required")
	case (p.PINFile == "") == (p.PINEnv == ""):
		return errors.New("keystore.pkcs11: set exactly one of pin_file and pin_env (the PIN is never written in the configuration)")
	case p.Sessions < 0 || p.Sessions > 1024:
		return fmt.Errorf("keystore.pkcs11.sessions %d is not between 0 and 1024", p.Sessions)
	}
	return nil
}

// CommercialRegions are the Regions of the commercial AWS partition (aws),
// which kmsd serves unless the regions setting narrows them. The partitions
// of China, GovCloud and the European Sovereign Cloud are not included, and
// validation refuses their Regions: kmsd serves the Regions of one partition
// (awsarn.Partition).
var CommercialRegions = []string{
	"af-south-1",
	"ap-east-1", "ap-east-2",
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2",
	"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
	"ca-central-1", "ca-west-1",
	"eu-central-1", "eu-central-2",
	"eu-north-1",
	"eu-south-1", "eu-south-2",
	"eu-west-1", "eu-west-2", "eu-west-3",
	"il-central-1",
	"me-central-1", "me-south-1",
	"mx-central-1",
	"sa-east-1",
	"us-east-1", "us-east-2",
	"us-west-1", "us-west-2",
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
	c.Regions = slices.Clone(CommercialRegions)
	c.Log.Level = "info"
	c.Log.Format = "text"
	c.Store.Type = "sqlite"
	c.Keystore.Type = "file"
	c.ReaperInterval = time.Minute
	return c
}

// The bounds of reaper_interval: each pass reads the store (the keys due,
// the material expiring), so a pass every instant is load for nothing,
// and a key whose waiting period ended should not outlive it by more
// than a day.
const (
	MinReaperInterval = time.Second
	MaxReaperInterval = 24 * time.Hour
)

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
// not silently fall back to a default. Flag errors and the usage that -h
// asks for go to os.Stderr.
func Load(args []string, getenv func(string) string) (Config, error) {
	return LoadWithUsage(args, getenv, os.Stderr)
}

// LoadWithUsage is Load with flag errors and the -h usage written to
// usage; for -h it returns an error wrapping flag.ErrHelp.
func LoadWithUsage(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Defaults()
	// The default Region is chosen once the served Regions are known.
	c.Region = ""
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	configPath := fs.String("config", getenv("KMSD_CONFIG"), "YAML configuration file (env KMSD_CONFIG)")
	listen := fs.String("listen", "", "address to listen on (env KMSD_LISTEN; default 127.0.0.1:4599)")
	dataDir := fs.String("data-dir", "", "data folder (env KMSD_DATA_DIR; default ~/.local/share/kmsd)")
	account := fs.String("account", "", "12-digit account id (env KMSD_ACCOUNT; default 111122223333)")
	region := fs.String("region", "", "default Region, for the first start's banner (env KMSD_REGION; default us-east-1, or the first of --regions when us-east-1 is not served)")
	regions := fs.String("regions", "", "comma-separated Regions to serve (env KMSD_REGIONS; default every commercial AWS Region)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (env KMSD_LOG_LEVEL)")
	logFormat := fs.String("log-format", "", "text or json (env KMSD_LOG_FORMAT)")
	unservedKeyRegions := fs.Bool("allow-unserved-key-regions", false, "start although the store holds keys in Regions that --regions does not serve (env KMSD_ALLOW_UNSERVED_KEY_REGIONS=true)")
	insecure := fs.Bool("allow-insecure-listen", false, "allow a non-loopback listen address without TLS (env KMSD_ALLOW_INSECURE_LISTEN=true)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain to serve HTTPS with (env KMSD_TLS_CERT)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert (env KMSD_TLS_KEY)")
	devTLS := fs.Bool("dev-tls", false, "serve HTTPS with a local development CA created in the data folder (env KMSD_DEV_TLS=true)")
	auditStdout := fs.Bool("audit-stdout", false, "copy every audit record to standard output too (env KMSD_AUDIT_STDOUT=true)")
	metricsListen := fs.String("metrics-listen", "", "address of the Prometheus metrics listener (env KMSD_METRICS_LISTEN; default off)")
	keyCache := fs.Int("key-cache-size", 0, "keys (and aliases) cached in memory (env KMSD_KEY_CACHE_SIZE; default 10000)")
	materialCache := fs.Int("material-cache-size", 0, "unwrapped key materials cached in memory (env KMSD_MATERIAL_CACHE_SIZE; default 10000)")
	gcPercent := fs.Int("gc-percent", 0, "garbage collector target, as GOGC (env KMSD_GC_PERCENT; default GOGC or 400)")
	storeType := fs.String("store", "", "store type: sqlite or postgres (env KMSD_STORE; default sqlite)")
	storeDSN := fs.String("store-dsn", "", "PostgreSQL connection string of a postgres store (env KMSD_STORE_DSN; a password in it shows in the process list: prefer the environment or the YAML file)")
	dev := fs.Bool("dev", false, "development mode, NOT for production: data in a new temporary folder (deleted at exit) unless --data-dir names one, loopback only without TLS (env KMSD_DEV=true)")
	devAKID := fs.String("dev-access-key-id", "", "dev mode: the admin access key id (env KMSD_DEV_ACCESS_KEY_ID); its secret comes from KMSD_DEV_SECRET_ACCESS_KEY, never a flag")
	adminCreds := fs.String("admin-credentials-file", "", "file (mode 0600) with the admin access key to use, in AWS credentials file form (env KMSD_ADMIN_CREDENTIALS_FILE)")
	seedFile := fs.String("seed", "", "YAML seed file of keys, aliases, grants to create at start (env KMSD_SEED; see docs/seeding.md)")
	nodeID := fs.String("node-id", "", "this node's id in a cluster (env KMSD_NODE_ID; default HOSTNAME:DATA_DIR)")
	acceptLostLog := fs.Bool("accept-lost-log", false, "start a new audit log on a cluster node whose data folder lost its log, recording the loss")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	// The data folder's default is chosen once dev mode is known.
	c.DataDir = ""
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		if err := decodeStrict(b, &c); err != nil {
			return c, fmt.Errorf("parse config %s: %w", *configPath, err)
		}
		c.IAM.BaseDir = filepath.Dir(*configPath)
		for i, h := range c.HSMClusters {
			if f := h.TrustAnchorFile; f != "" && !filepath.IsAbs(f) {
				c.HSMClusters[i].TrustAnchorFile = filepath.Join(c.IAM.BaseDir, f)
			}
		}
		if f := c.Keystore.PKCS11.PINFile; f != "" && !filepath.IsAbs(f) {
			c.Keystore.PKCS11.PINFile = filepath.Join(c.IAM.BaseDir, f)
		}
		if f := c.Audit.DigestFile; f != "" && !filepath.IsAbs(f) {
			c.Audit.DigestFile = filepath.Join(c.IAM.BaseDir, f)
		}
		for _, f := range []*string{&c.AdminCredentialsFile, &c.SeedFile} {
			if *f != "" && !filepath.IsAbs(*f) {
				*f = filepath.Join(c.IAM.BaseDir, *f)
			}
		}
		if c.Seed != nil {
			c.Seed.BaseDir, c.Seed.Source = c.IAM.BaseDir, *configPath
			if c.Seed.HoldsMaterial() {
				if err := CheckPrivateFile(*configPath, "configuration file (its seed holds key material)"); err != nil {
					return c, err
				}
			}
		}
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
	if v := getenv("KMSD_REGIONS"); v != "" {
		c.Regions = splitList(v)
	}
	if *regions != "" {
		c.Regions = splitList(*regions)
	}
	if c.Region == "" {
		// Not set anywhere: us-east-1, as ever, when it is served, else
		// the first served Region.
		c.Region = "us-east-1"
		if len(c.Regions) > 0 && !slices.Contains(c.Regions, c.Region) {
			c.Region = c.Regions[0]
		}
	}
	set(&c.Log.Level, "KMSD_LOG_LEVEL", *logLevel)
	set(&c.Log.Format, "KMSD_LOG_FORMAT", *logFormat)
	set(&c.TLS.CertFile, "KMSD_TLS_CERT", *tlsCert)
	set(&c.TLS.KeyFile, "KMSD_TLS_KEY", *tlsKey)
	set(&c.MetricsListen, "KMSD_METRICS_LISTEN", *metricsListen)
	set(&c.Store.Type, "KMSD_STORE", *storeType)
	dsn := c.Store.DSN.Reveal()
	set(&dsn, "KMSD_STORE_DSN", *storeDSN)
	c.Store.DSN = Secret(dsn)
	set(&c.NodeID, "KMSD_NODE_ID", *nodeID)
	if v := getenv("KMSD_REAPER_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("KMSD_REAPER_INTERVAL=%q is not a duration such as 1m or 30s", v)
		}
		c.ReaperInterval = d
	}
	c.AcceptLostLog = *acceptLostLog
	for _, n := range []struct {
		dst  *int
		env  string
		flag int
	}{{&c.Cache.Keys, "KMSD_KEY_CACHE_SIZE", *keyCache}, {&c.Cache.Materials, "KMSD_MATERIAL_CACHE_SIZE", *materialCache},
		{&c.GCPercent, "KMSD_GC_PERCENT", *gcPercent}} {
		if v := getenv(n.env); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("%s=%q is not a number", n.env, v)
			}
			*n.dst = i
		}
		if n.flag != 0 {
			*n.dst = n.flag
		}
	}
	// Switches: the environment (as a container image sets it) overrides
	// the file, and a flag given on the command line overrides both.
	for _, b := range []struct {
		dst  *bool
		env  string
		flag bool
	}{
		{&c.AllowInsecureListen, "KMSD_ALLOW_INSECURE_LISTEN", *insecure},
		{&c.AllowUnservedKeyRegions, "KMSD_ALLOW_UNSERVED_KEY_REGIONS", *unservedKeyRegions},
		{&c.TLS.Dev, "KMSD_DEV_TLS", *devTLS},
		{&c.Audit.Stdout, "KMSD_AUDIT_STDOUT", *auditStdout},
		{&c.Dev, "KMSD_DEV", *dev},
	} {
		if v := getenv(b.env); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("%s=%q: want true or false", b.env, v)
			}
			*b.dst = on
		}
		if b.flag {
			*b.dst = true
		}
	}
	set(&c.DevAccessKeyID, "KMSD_DEV_ACCESS_KEY_ID", *devAKID)
	c.DevSecretAccessKey = Secret(getenv("KMSD_DEV_SECRET_ACCESS_KEY"))
	set(&c.AdminCredentialsFile, "KMSD_ADMIN_CREDENTIALS_FILE", *adminCreds)
	set(&c.SeedFile, "KMSD_SEED", *seedFile)
	if c.DataDir == "" && !c.Dev {
		// In dev mode an unnamed data folder is a new temporary one,
		// which kmsd serve makes.
		c.DataDir = defaultDataDir()
	}
	return c, c.Validate()
}

// splitList splits a comma-separated setting, dropping spaces and empty
// items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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
	if err := validateRegions(c.Regions, c.Region); err != nil {
		return err
	}
	if len(c.NodeID) > 256 || strings.IndexFunc(c.NodeID, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Errorf("node_id %q: at most 256 characters, none of them a control character", c.NodeID)
	}
	// The bounds are what keeps memory independent of the number of keys:
	// a negative one is a mistake, and one past ten million is memory
	// nobody meant to spend.
	if c.Cache.Keys < 0 || c.Cache.Keys > 10_000_000 {
		return fmt.Errorf("cache.keys %d is not between 0 (the default) and 10000000", c.Cache.Keys)
	}
	if c.Cache.Materials < 0 || c.Cache.Materials > 10_000_000 {
		return fmt.Errorf("cache.materials %d is not between 0 (the default) and 10000000", c.Cache.Materials)
	}
	// Below 25 the collector runs nearly all the time; past 10000 the heap
	// may grow a hundredfold before a collection: both are mistakes.
	if c.GCPercent != 0 && (c.GCPercent < 25 || c.GCPercent > 10_000) {
		return fmt.Errorf("gc_percent %d is not between 25 and 10000 (or 0, the default)", c.GCPercent)
	}
	if c.ReaperInterval < MinReaperInterval || c.ReaperInterval > MaxReaperInterval {
		return fmt.Errorf("reaper_interval %s is not between %s and %s", c.ReaperInterval, MinReaperInterval, MaxReaperInterval)
	}
	if c.DataDir == "" && !c.Dev {
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
	if c.Dev && !c.TLSEnabled() && !isLoopback(host) {
		return fmt.Errorf("listen address %q is not a loopback address: dev mode serves plain HTTP on loopback only, whatever allow_insecure_listen says; listen on 127.0.0.1, or add TLS (--dev-tls)", c.Listen)
	}
	if !c.Dev && (c.DevAccessKeyID != "" || c.DevSecretAccessKey != "") {
		return errors.New("KMSD_DEV_ACCESS_KEY_ID, KMSD_DEV_SECRET_ACCESS_KEY and --dev-access-key-id are for dev mode (--dev); outside it, preset the admin access key with admin_credentials_file")
	}
	if (c.DevAccessKeyID == "") != (c.DevSecretAccessKey == "") {
		return errors.New("dev mode: give the admin access key id (KMSD_DEV_ACCESS_KEY_ID or --dev-access-key-id) and its secret (KMSD_DEV_SECRET_ACCESS_KEY, never a flag) together, or neither for a fresh access key")
	}
	if c.DevAccessKeyID != "" && c.AdminCredentialsFile != "" {
		return errors.New("dev mode: give the admin access key in the environment or in admin_credentials_file, not both")
	}
	if c.Seed != nil && c.SeedFile != "" {
		return errors.New("seed: give the seed in the configuration (seed:) or in a file (seed_file, --seed, KMSD_SEED), not both")
	}
	if c.Seed != nil {
		if err := c.Seed.Validate(); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
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
	if err := c.Store.Validate(); err != nil {
		return err
	}
	if c.Audit.CommitDelay > 100*time.Millisecond {
		return fmt.Errorf("audit.commit_delay %v is longer than 100ms: every request under load would wait that long", c.Audit.CommitDelay)
	}
	if len(c.Audit.DigestCommand) > 0 && c.Audit.DigestCommand[0] == "" {
		return errors.New("audit.digest_command: the command is empty")
	}
	if err := c.Keystore.Validate(); err != nil {
		return err
	}
	if err := validateHSMClusters(c.HSMClusters); err != nil {
		return err
	}
	return c.IAM.Validate()
}

// validateRegions checks the regions setting: Region names, each once,
// the default Region among them.
func validateRegions(regions []string, def string) error {
	if len(regions) == 0 {
		return errors.New("regions is empty: list the Regions to serve (or leave it unset for every commercial AWS Region)")
	}
	seen := make(map[string]bool, len(regions))
	for _, r := range regions {
		if !regionRE.MatchString(r) {
			return fmt.Errorf("regions: %q is not a region name such as us-east-1", r)
		}
		if seen[r] {
			return fmt.Errorf("regions: %s is listed twice", r)
		}
		if p := awsarn.PartitionOf(r); p != awsarn.Partition {
			// Keys do not record a partition and a key's ARN is bound into
			// its wrapped material: kmsd serves the Regions of one.
			return fmt.Errorf("regions: %s is in partition %s; kmsd serves the Regions of partition %s only", r, p, awsarn.Partition)
		}
		seen[r] = true
	}
	if !seen[def] {
		return fmt.Errorf("region %s (the default Region) is not one of the served regions %s: add it to regions, or set region to one of them", def, strings.Join(regions, ", "))
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
