package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	yaml := "listen: 127.0.0.1:7000\ndata_dir: /from/file\naccount: \"444455556666\"\nregion: eu-west-1\nlog:\n  level: debug\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want func(Config) bool
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.Listen == "127.0.0.1:4599" && c.Account == "111122223333" && c.Region == "us-east-1" && c.Log.Level == "info"
		}},
		{"file", []string{"--config", file}, nil, func(c Config) bool {
			return c.Listen == "127.0.0.1:7000" && c.DataDir == "/from/file" && c.Account == "444455556666" && c.Log.Level == "debug"
		}},
		{"env over file", []string{"--config", file}, map[string]string{"KMSD_REGION": "ap-south-1", "KMSD_DATA_DIR": "/from/env"}, func(c Config) bool {
			return c.Region == "ap-south-1" && c.DataDir == "/from/env" && c.Account == "444455556666"
		}},
		{"config from env", nil, map[string]string{"KMSD_CONFIG": file}, func(c Config) bool { return c.Listen == "127.0.0.1:7000" }},
		{"flag over env", []string{"--region", "us-west-2"}, map[string]string{"KMSD_REGION": "ap-south-1"}, func(c Config) bool { return c.Region == "us-west-2" }},
		// A container image configures kmsd by its environment alone.
		{"switches from env", nil, map[string]string{"KMSD_LISTEN": "0.0.0.0:4599", "KMSD_DEV_TLS": "true", "KMSD_AUDIT_STDOUT": "1"}, func(c Config) bool {
			return c.TLS.Dev && c.Audit.Stdout && !c.AllowInsecureListen
		}},
		{"insecure listen from env", nil, map[string]string{"KMSD_LISTEN": "0.0.0.0:4599", "KMSD_ALLOW_INSECURE_LISTEN": "true"}, func(c Config) bool {
			return c.AllowInsecureListen && !c.TLS.Dev
		}},
		{"flag over env switch", []string{"--dev-tls"}, map[string]string{"KMSD_DEV_TLS": "false"}, func(c Config) bool { return c.TLS.Dev }},
		{"unserved key Regions from env", nil, map[string]string{"KMSD_ALLOW_UNSERVED_KEY_REGIONS": "true"}, func(c Config) bool { return c.AllowUnservedKeyRegions }},
		{"unserved key Regions by flag", []string{"--allow-unserved-key-regions"}, nil, func(c Config) bool { return c.AllowUnservedKeyRegions }},
		{"unserved key Regions off by default", nil, nil, func(c Config) bool { return !c.AllowUnservedKeyRegions }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(c) {
				t.Fatalf("unexpected config %+v", c)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("lissen: 127.0.0.1:1\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--account", "123"}, "12-digit"},
		{[]string{"--region", "moon"}, "region"},
		{[]string{"--listen", "0.0.0.0:4599"}, "loopback"},
		{[]string{"--listen", "nonsense"}, "listen address"},
		{[]string{"--log-level", "loud"}, "log level"},
		{[]string{"--config", typo}, "lissen"},
		{[]string{"extra"}, "unexpected"},
		{[]string{"--tls-cert", "c.pem"}, "go together"},
		{[]string{"--dev-tls", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "exclude"},
		{[]string{"--metrics-listen", "nope"}, "metrics listen"},
		{[]string{"--node-id", "a\nb"}, "node_id"},
		{[]string{"--node-id", strings.Repeat("n", 257)}, "node_id"},
	}
	for _, tc := range cases {
		_, err := Load(tc.args, env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
	// A switch in the environment is true or false, never a guess.
	for _, kv := range [][2]string{{"KMSD_DEV_TLS", "yes"}, {"KMSD_ALLOW_INSECURE_LISTEN", "on"}, {"KMSD_AUDIT_STDOUT", "2"}} {
		_, err := Load(nil, env(map[string]string{kv[0]: kv[1]}))
		if err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v, want an error naming the variable", kv[0], kv[1], err)
		}
	}
	if _, err := Load([]string{"--listen", "0.0.0.0:4599", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, env(nil)); err != nil {
		t.Errorf("non-loopback address with TLS refused: %v", err)
	}
	if _, err := Load([]string{"--listen", "0.0.0.0:4599", "--allow-insecure-listen"}, env(nil)); err != nil {
		t.Errorf("explicit insecure listen refused: %v", err)
	}
	for _, addr := range []string{"[::1]:4599", "localhost:4599", "127.0.0.2:1"} {
		if _, err := Load([]string{"--listen", addr}, env(nil)); err != nil {
			t.Errorf("loopback %s refused: %v", addr, err)
		}
	}
}

func TestKeystoreSection(t *testing.T) {
	dir := t.TempDir()
	load := func(yaml string, e map[string]string) (Config, error) {
		t.Helper()
		file := filepath.Join(dir, "kmsd.yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load([]string{"--config", file}, env(e))
	}
	c, err := load("", nil)
	if err != nil || c.Keystore.Type != "file" {
		t.Fatalf("default keystore: %q, %v", c.Keystore.Type, err)
	}

	const base = "keystore:\n  type: pkcs11\n  pkcs11:\n    module: /usr/lib/softhsm/libsofthsm2.so\n    token_label: kmsd\n    key_label: root\n"
	c, err = load(base+"    pin_env: HSM_PIN\n    sessions: 4\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Keystore.PKCS11
	if c.Keystore.Type != "pkcs11" || p.Module != "/usr/lib/softhsm/libsofthsm2.so" || p.TokenLabel != "kmsd" || p.KeyLabel != "root" || p.Sessions != 4 {
		t.Fatalf("parsed %+v", c.Keystore)
	}
	if pin, err := p.PIN(env(map[string]string{"HSM_PIN": "1234"})); err != nil || pin != "1234" {
		t.Fatalf("PIN from env: %q, %v", pin, err)
	}
	if _, err := p.PIN(env(nil)); err == nil || !strings.Contains(err.Error(), "HSM_PIN") {
		t.Fatalf("unset PIN env: %v", err)
	}

	// pin_file is relative to the configuration file, must be private,
	// and loses its trailing newline.
	if err := os.WriteFile(filepath.Join(dir, "pin"), []byte("98765\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = load(base+"    pin_file: pin\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := c.Keystore.PKCS11.PIN(env(nil)); err != nil || pin != "98765" {
		t.Fatalf("PIN from file: %q, %v", pin, err)
	}
	if err := os.Chmod(filepath.Join(dir, "pin"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Keystore.PKCS11.PIN(env(nil)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable PIN file: %v", err)
	}

	for name, yaml := range map[string]string{
		"unknown type":     "keystore:\n  type: tpm\n",
		"inline pin":       base + "    pin: \"1234\"\n",
		"no pin source":    base,
		"two pin sources":  base + "    pin_env: A\n    pin_file: b\n",
		"no module":        "keystore:\n  type: pkcs11\n  pkcs11:\n    token_label: kmsd\n    key_label: root\n    pin_env: A\n",
		"no token":         "keystore:\n  type: pkcs11\n  pkcs11:\n    module: /m.so\n    key_label: root\n    pin_env: A\n",
		"no key label":     "keystore:\n  type: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: kmsd\n    pin_env: A\n",
		"bad sessions":     base + "    pin_env: A\n    sessions: -1\n",
		"pkcs11 with file": "keystore:\n  pkcs11:\n    module: /m.so\n",
	} {
		if _, err := load(yaml, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHSMClustersSection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	load := func(yaml string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load([]string{"--config", file}, env(nil))
	}
	c, err := load("hsm_clusters:\n  - id: cluster-kmsdsofthsm2\n    module: /usr/lib/softhsm/libsofthsm2.so\n    token_label: cks\n    trust_anchor_file: ca.pem\n    sessions: 2\n")
	if err != nil {
		t.Fatal(err)
	}
	want := HSMCluster{ID: "cluster-kmsdsofthsm2", Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "cks", TrustAnchorFile: filepath.Join(dir, "ca.pem"), Sessions: 2}
	if len(c.HSMClusters) != 1 || c.HSMClusters[0] != want {
		t.Fatalf("parsed %+v, want %+v", c.HSMClusters, want)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad id":    {"hsm_clusters:\n  - id: cluster-1\n    module: m\n    token_label: t\n", "cluster id"},
		"twice":     {"hsm_clusters:\n  - {id: cluster-kmsdsofthsm2, module: m, token_label: t}\n  - {id: cluster-kmsdsofthsm2, module: m, token_label: u}\n", "twice"},
		"no module": {"hsm_clusters:\n  - id: cluster-kmsdsofthsm2\n    token_label: t\n", "module"},
		"no token":  {"hsm_clusters:\n  - id: cluster-kmsdsofthsm2\n    module: m\n", "token_label"},
		"unknown":   {"hsm_clusters:\n  - id: cluster-kmsdsofthsm2\n    module: m\n    token_label: t\n    pin: 1234\n", "pin"},
	} {
		if _, err := load(tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}

func TestStoreSection(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	const fileDSN = "host=db.example user=kmsd password=from-file dbname=kmsd"
	if err := os.WriteFile(file, []byte("store:\n  type: postgres\n  dsn: "+fileDSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		typ, dsn string
	}{
		{"default", nil, nil, "sqlite", ""},
		{"file", []string{"--config", file}, nil, "postgres", fileDSN},
		{"env over file", []string{"--config", file}, map[string]string{"KMSD_STORE_DSN": "postgres://env@db/kmsd"}, "postgres", "postgres://env@db/kmsd"},
		{"env", nil, map[string]string{"KMSD_STORE": "postgres", "KMSD_STORE_DSN": "host=env"}, "postgres", "host=env"},
		{"flag over env", []string{"--store-dsn", "host=flag"}, map[string]string{"KMSD_STORE": "postgres", "KMSD_STORE_DSN": "host=env"}, "postgres", "host=flag"},
		{"flags", []string{"--store", "postgres", "--store-dsn", "host=flag"}, nil, "postgres", "host=flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if c.Store.Type != tc.typ || c.Store.DSN.Reveal() != tc.dsn {
				t.Errorf("store = %q, %q; want %q, %q", c.Store.Type, c.Store.DSN.Reveal(), tc.typ, tc.dsn)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--store", "mysql"}, nil, `"mysql" is not sqlite or postgres`},
		{[]string{"--store", "postgres"}, nil, "needs a DSN"},
		{nil, map[string]string{"KMSD_STORE": "postgres"}, "needs a DSN"},
		{nil, map[string]string{"KMSD_STORE_DSN": "host=db"}, "store type is sqlite"},
		// The file's DSN stays: a DSN meant for postgres is not silently
		// ignored.
		{[]string{"--config", file, "--store", "sqlite"}, nil, "store type is sqlite"},
	} {
		if _, err := Load(tc.args, env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v, %v) = %v, want an error mentioning %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestDSNNeverShown: the DSN, which may hold a password, does not show when
// the configuration is printed, logged or marshalled.
func TestDSNNeverShown(t *testing.T) {
	const password = "S3cret-Config-pw"
	c, err := Load(nil, env(map[string]string{"KMSD_STORE": "postgres", "KMSD_STORE_DSN": "host=db user=kmsd password=" + password}))
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		outs = append(outs, fmt.Sprintf(format, c), fmt.Sprintf(format, c.Store), fmt.Sprintf(format, c.Store.DSN))
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "store", c.Store, "dsn", c.Store.DSN)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "dsn", c.Store.DSN)
	outs = append(outs, logged.String())
	j, err := json.Marshal(c.Store)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c.Store)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), string(y))
	for _, out := range outs {
		if strings.Contains(out, password) {
			t.Errorf("the DSN's password shows in %s", out)
		}
	}
	if !strings.Contains(string(j), "[redacted]") || !strings.Contains(fmt.Sprintf("%+v", c), "[redacted]") {
		t.Errorf("the DSN does not show as [redacted]: %s, %+v", j, c)
	}
	if c.Store.DSN.Reveal() != "host=db user=kmsd password="+password {
		t.Errorf("Reveal = %q", c.Store.DSN.Reveal())
	}
}

// TestAuditDigestCopies: audit.digest_file is relative to the
// configuration file, like every file it names; digest_command is a
// command and its arguments, which must name a command.
func TestAuditDigestCopies(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	os.WriteFile(file, []byte("audit:\n  digest_file: digests/kmsd.jsonl\n  digest_command: [/usr/local/bin/ship, --to, vault]\n"), 0o600)
	c, err := Load([]string{"--config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.DigestFile != filepath.Join(dir, "digests", "kmsd.jsonl") || strings.Join(c.Audit.DigestCommand, " ") != "/usr/local/bin/ship --to vault" {
		t.Errorf("audit = %+v", c.Audit)
	}
	os.WriteFile(file, []byte("audit:\n  digest_command: [\"\"]\n"), 0o600)
	if _, err := Load([]string{"--config", file}, env(nil)); err == nil || !strings.Contains(err.Error(), "digest_command") {
		t.Errorf("an empty digest command: %v", err)
	}
}

func TestRegionsSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	if err := os.WriteFile(file, []byte("regions: [eu-central-1, us-west-2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		args       []string
		env        map[string]string
		regions    []string
		defaultReg string
	}{
		{"default: every commercial Region", nil, nil, CommercialRegions, "us-east-1"},
		// The YAML list replaces the default list; us-east-1 is not
		// served, so the default Region is the first served one.
		{"file", []string{"--config", file}, nil, []string{"eu-central-1", "us-west-2"}, "eu-central-1"},
		{"env over file", []string{"--config", file}, map[string]string{"KMSD_REGIONS": "ap-northeast-1, us-east-1"}, []string{"ap-northeast-1", "us-east-1"}, "us-east-1"},
		{"flag over env", []string{"--regions", "sa-east-1,eu-west-3", "--region", "eu-west-3"}, map[string]string{"KMSD_REGIONS": "us-east-1"}, []string{"sa-east-1", "eu-west-3"}, "eu-west-3"},
		{"region alone, among the commercial Regions", []string{"--region", "ap-south-1"}, nil, CommercialRegions, "ap-south-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Regions, tc.regions) || c.Region != tc.defaultReg {
				t.Errorf("regions %v, region %s; want %v, %s", c.Regions, c.Region, tc.regions, tc.defaultReg)
			}
		})
	}
	if len(CommercialRegions) < 30 || !slices.IsSorted(CommercialRegions) || slices.Contains(CommercialRegions, "cn-north-1") ||
		slices.Contains(CommercialRegions, "us-gov-west-1") {
		t.Errorf("CommercialRegions %v: want the sorted Regions of partition aws only", CommercialRegions)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--regions", "us-east-1,moon"}, `"moon" is not a region name`},
		{[]string{"--regions", "us-east-1,us-east-1"}, "listed twice"},
		{[]string{"--regions", "us-east-1,cn-north-1"}, "cn-north-1 is in partition aws-cn"},
		{[]string{"--regions", "us-gov-west-1", "--region", "us-gov-west-1"}, "partition aws-us-gov"},
		{[]string{"--regions", "eu-west-1", "--region", "us-east-1"}, "not one of the served regions eu-west-1"},
		{[]string{"--regions", " , "}, "regions is empty"},
	} {
		if _, err := Load(tc.args, env(nil)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestDevModeSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // error text; "" for success
		ok   func(Config) bool
	}{
		{"dev without data dir", []string{"--dev"}, nil, "", func(c Config) bool { return c.Dev && c.DataDir == "" }},
		{"dev from env, named folder", nil, map[string]string{"KMSD_DEV": "true", "KMSD_DATA_DIR": "/d"}, "", func(c Config) bool { return c.Dev && c.DataDir == "/d" }},
		{"not dev: default folder", nil, nil, "", func(c Config) bool { return !c.Dev && c.DataDir != "" }},
		{"dev refuses all interfaces without TLS", []string{"--dev", "--listen", "0.0.0.0:4599", "--allow-insecure-listen"}, nil, "dev mode serves plain HTTP on loopback only", nil},
		{"dev allows all interfaces with TLS", []string{"--dev", "--listen", "0.0.0.0:4599", "--dev-tls"}, nil, "", func(c Config) bool { return c.TLS.Dev }},
		{"dev credentials from env", []string{"--dev"}, map[string]string{"KMSD_DEV_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "KMSD_DEV_SECRET_ACCESS_KEY": "s"}, "",
			func(c Config) bool {
				return c.DevAccessKeyID == "AKIAIOSFODNN7EXAMPLE" && c.DevSecretAccessKey.Reveal() == "s"
			}},
		{"dev id without secret", []string{"--dev", "--dev-access-key-id", "AKIAIOSFODNN7EXAMPLE"}, nil, "together", nil},
		{"dev secret without id", []string{"--dev"}, map[string]string{"KMSD_DEV_SECRET_ACCESS_KEY": "s"}, "together", nil},
		{"dev credentials outside dev mode", nil, map[string]string{"KMSD_DEV_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "KMSD_DEV_SECRET_ACCESS_KEY": "s"}, "are for dev mode", nil},
		{"dev credentials and a file", []string{"--dev", "--admin-credentials-file", "/f"}, map[string]string{"KMSD_DEV_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "KMSD_DEV_SECRET_ACCESS_KEY": "s"}, "not both", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, func(k string) string { return tc.env[k] })
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || !tc.ok(c) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
		})
	}
}

func TestReadAdminCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		id, secret    string
		want          string
	}{
		{"default profile", "# preset\n[other]\naws_access_key_id=AKIAOTHER\n[default]\naws_access_key_id = AKIAONE\naws_secret_access_key = sec/ret+\n", 0o600, "AKIAONE", "sec/ret+", ""},
		{"only profile", "[ci]\naws_access_key_id=AKIATWO\naws_secret_access_key=s2\n", 0o400, "AKIATWO", "s2", ""},
		{"no header", "aws_access_key_id=AKIATHREE\naws_secret_access_key=s3\n", 0o600, "AKIATHREE", "s3", ""},
		{"two profiles, no default", "[a]\naws_access_key_id=A\naws_secret_access_key=x\n[b]\naws_access_key_id=B\naws_secret_access_key=y\n", 0o600, "", "", "one profile"},
		{"readable by others", "aws_access_key_id=A\naws_secret_access_key=topsecret\n", 0o644, "", "", "chmod 600"},
		{"not key = value", "aws_access_key_id AKIA\n", 0o600, "", "", "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			id, secret, err := ReadAdminCredentials(p)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "topsecret") {
					t.Fatalf("ReadAdminCredentials = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || id != tc.id || secret.Reveal() != tc.secret {
				t.Fatalf("ReadAdminCredentials = %q, %v", id, err)
			}
		})
	}
}

func TestSeedSection(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noEnv := func(string) string { return "" }
	cfgFile := write("kmsd.yaml", "seed:\n  keys:\n    - aliases: [alias/a]\n      policy_file: p.json\n", 0o644)
	c, err := Load([]string{"--config", cfgFile}, noEnv)
	if err != nil || c.Seed == nil || len(c.Seed.Keys) != 1 || c.Seed.Path("p.json") != filepath.Join(dir, "p.json") {
		t.Fatalf("seed section: %+v, %v", c.Seed, err)
	}
	both := write("both.yaml", "seed_file: s.yaml\nseed:\n  keys: []\n", 0o600)
	if _, err := Load([]string{"--config", both}, noEnv); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("seed and seed_file: %v", err)
	}
	rel := write("rel.yaml", "seed_file: s.yaml\n", 0o600)
	if c, err := Load([]string{"--config", rel}, noEnv); err != nil || c.SeedFile != filepath.Join(dir, "s.yaml") {
		t.Fatalf("relative seed_file: %q, %v", c.SeedFile, err)
	}
	// A configuration whose seed holds key material must be private.
	material := write("material.yaml", "seed:\n  keys:\n    - aliases: [alias/a]\n      material: {hex: '00'}\n", 0o644)
	if _, err := Load([]string{"--config", material}, noEnv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable configuration with material: %v", err)
	}
	if err := os.Chmod(material, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{"--config", material}, noEnv); err != nil {
		t.Fatalf("private configuration with material: %v", err)
	}
}

func TestNodeID(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		want   string
		accept bool
	}{
		{nil, nil, "", false},
		{nil, map[string]string{"KMSD_NODE_ID": "env"}, "env", false},
		{[]string{"--node-id", "flag", "--accept-lost-log"}, map[string]string{"KMSD_NODE_ID": "env"}, "flag", true},
	} {
		c, err := Load(tc.args, env(tc.env))
		if err != nil || c.NodeID != tc.want || c.AcceptLostLog != tc.accept {
			t.Errorf("%v %v: node id %q, accept %v, %v; want %q, %v", tc.args, tc.env, c.NodeID, c.AcceptLostLog, err, tc.want, tc.accept)
		}
	}
}

func TestCacheSizes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	if err := os.WriteFile(file, []byte("cache:\n  keys: 500\n  materials: 600\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		args           []string
		env            map[string]string
		keys, material int
		wantErr        bool
	}{
		{name: "defaults"},
		{name: "yaml", args: []string{"--config", file}, keys: 500, material: 600},
		{name: "env over yaml", args: []string{"--config", file}, env: map[string]string{"KMSD_KEY_CACHE_SIZE": "700"}, keys: 700, material: 600},
		{name: "flag over env", args: []string{"--key-cache-size", "800", "--material-cache-size", "900"},
			env: map[string]string{"KMSD_KEY_CACHE_SIZE": "700", "KMSD_MATERIAL_CACHE_SIZE": "10"}, keys: 800, material: 900},
		{name: "negative", args: []string{"--key-cache-size", "-1"}, wantErr: true},
		{name: "too large", args: []string{"--material-cache-size", "10000001"}, wantErr: true},
		{name: "env not a number", env: map[string]string{"KMSD_KEY_CACHE_SIZE": "lots"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if tc.wantErr {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Cache.Keys != tc.keys || c.Cache.Materials != tc.material {
				t.Errorf("cache sizes %d, %d; want %d, %d", c.Cache.Keys, c.Cache.Materials, tc.keys, tc.material)
			}
		})
	}
}

func TestGCPercent(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kmsd.yaml")
	if err := os.WriteFile(file, []byte("gc_percent: 300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr bool
	}{
		{name: "default", want: 0},
		{name: "yaml", args: []string{"--config", file}, want: 300},
		{name: "env over yaml", args: []string{"--config", file}, env: map[string]string{"KMSD_GC_PERCENT": "150"}, want: 150},
		{name: "flag over env", args: []string{"--gc-percent", "800"}, env: map[string]string{"KMSD_GC_PERCENT": "150"}, want: 800},
		{name: "too small", args: []string{"--gc-percent", "10"}, wantErr: true},
		{name: "too large", args: []string{"--gc-percent", "20000"}, wantErr: true},
		{name: "negative", env: map[string]string{"KMSD_GC_PERCENT": "-1"}, wantErr: true},
		{name: "env not a number", env: map[string]string{"KMSD_GC_PERCENT": "off"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted, gc_percent %d", c.GCPercent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.GCPercent != tc.want {
				t.Errorf("gc_percent %d; want %d", c.GCPercent, tc.want)
			}
		})
	}
}

// TestReaperInterval: reaper_interval comes from the file or the
// environment (over the file), 1m by default, and is refused outside 1s to
// 24h or when it is no duration.
func TestReaperInterval(t *testing.T) {
	dir := t.TempDir()
	file := func(v string) string {
		p := filepath.Join(dir, "kmsd-"+v+".yaml")
		if err := os.WriteFile(p, []byte("reaper_interval: "+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{name: "default", want: time.Minute},
		{name: "file", args: []string{"--config", file("10s")}, want: 10 * time.Second},
		{name: "env over file", args: []string{"--config", file("10s")}, env: map[string]string{"KMSD_REAPER_INTERVAL": "2h"}, want: 2 * time.Hour},
		{name: "bounds", env: map[string]string{"KMSD_REAPER_INTERVAL": "1s"}, want: time.Second},
		{name: "too short", env: map[string]string{"KMSD_REAPER_INTERVAL": "999ms"}, wantErr: "reaper_interval 999ms is not between 1s and 24h0m0s"},
		{name: "zero in the file", args: []string{"--config", file("0s")}, wantErr: "reaper_interval 0s"},
		{name: "too long", args: []string{"--config", file("25h")}, wantErr: "reaper_interval 25h0m0s"},
		{name: "not a duration", env: map[string]string{"KMSD_REAPER_INTERVAL": "soon"}, wantErr: "KMSD_REAPER_INTERVAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.ReaperInterval != tc.want {
				t.Fatalf("Load: reaper interval %v, %v; want %v", c.ReaperInterval, err, tc.want)
			}
		})
	}
}

func TestAuditCommitDelay(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kmsd.yaml")
	load := func(yaml string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load([]string{"--config", file}, env(nil))
	}
	for yaml, want := range map[string]time.Duration{
		"audit:\n  stdout: false\n":       0, // the audit log's default, 1ms
		"audit:\n  commit_delay: 250us\n": 250 * time.Microsecond,
		"audit:\n  commit_delay: -1s\n":   -time.Second, // none
	} {
		c, err := load(yaml)
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if c.Audit.CommitDelay != want {
			t.Errorf("%q: commit_delay %v, want %v", yaml, c.Audit.CommitDelay, want)
		}
	}
	if _, err := load("audit:\n  commit_delay: 1s\n"); err == nil || !strings.Contains(err.Error(), "commit_delay") {
		t.Errorf("a 1s commit delay: %v, want refused", err)
	}
}
