package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/iam"
	"github.com/kmsd/kmsd/internal/keystore"
	"github.com/kmsd/kmsd/internal/rootmgr"
)

func TestIAMCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "kmsd.yaml")
	yaml := `data_dir: ` + data + `
iam:
  accounts:
    - id: "111122223333"
      users:
        - name: alice
          path: /team/
      roles:
        - name: app
`
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	noenv := func(string) string { return "" }
	kmsdIAM := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"iam"}, args...), &stdout, &stderr, noenv)
		return stdout.String(), stderr.String(), err
	}

	// kmsd iam works on a data folder kmsd serve made, and never makes
	// one itself: a folder of access keys without its audit log would be
	// refused by kmsd serve as incomplete.
	if _, _, err := kmsdIAM("create-access-key", "--user", "alice", "--config", cfgFile); err == nil || !strings.Contains(err.Error(), "kmsd serve creates it") {
		t.Fatalf("kmsd iam on an empty data folder: %v", err)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatalf("kmsd iam created the data folder")
	}
	_, stop := start(t, data)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	out, _, err := kmsdIAM("create-access-key", "--user", "alice", "--config", cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^export AWS_ACCESS_KEY_ID=(AKIA[A-Z0-9]{16})\nexport AWS_SECRET_ACCESS_KEY=(\S{40})$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "arn:aws:iam::111122223333:user/team/alice") {
		t.Fatalf("create-access-key printed:\n%s", out)
	}
	out, _, err = kmsdIAM("create-access-key", "--role", "app", "--session", "batch-7", "--config", cfgFile)
	if err != nil || !strings.Contains(out, "arn:aws:sts::111122223333:assumed-role/app/batch-7") {
		t.Fatalf("role key: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"create-access-key", "--user", "bob", "--config", cfgFile},
		{"create-access-key", "--role", "nope", "--config", cfgFile},
		{"create-access-key", "--config", cfgFile},
		{"create-access-key", "--user", "alice", "--account", "444455556666", "--config", cfgFile},
		{"frobnicate"},
	} {
		if _, _, err := kmsdIAM(args...); err == nil {
			t.Errorf("kmsd iam %v succeeded", args)
		}
	}
	out, _, err = kmsdIAM("list-access-keys", "--config", cfgFile)
	// alice's key, the role session's and the admin's of the first start.
	if err != nil || !strings.Contains(out, m[1]) || strings.Contains(out, m[2]) || strings.Count(out, "\n") != 3 {
		t.Fatalf("list-access-keys: %v\n%s", err, out)
	}
	out, _, err = kmsdIAM("check", "--config", cfgFile)
	if err != nil || !strings.Contains(out, "user arn:aws:iam::111122223333:user/team/alice") {
		t.Fatalf("check: %v\n%s", err, out)
	}

	// The key works for a Directory on the same data folder (a running
	// kmsd looks unknown access keys up in the store).
	ks, err := keystore.OpenFile(filepath.Join(data, rootmgr.RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	d := iam.NewDirectory(openTestStore(t, data), ks, nil)
	cfg, err := config.Load([]string{"--config", cfgFile}, noenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadIdentities(d, cfg); err != nil {
		t.Fatal(err)
	}
	secret, err := d.Secret(ctx, m[1])
	if err != nil || string(secret) != m[2] {
		t.Fatalf("Secret: %v", err)
	}
	c, err := d.Caller(ctx, m[1])
	if err != nil || c.Identity == nil || c.Identity.UserName != "alice" || c.Identity.Type != "User" {
		t.Fatalf("Caller = %+v, %v", c, err)
	}
}
