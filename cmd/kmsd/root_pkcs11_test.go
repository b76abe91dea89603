//go:build cgo

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/rootmgr"
)

// TestRootMigrate moves a data folder from the file root to a PKCS#11 root
// (SoftHSM) and back, checking after each step that every secret is under
// the new root and that kmsd serves everything with the same credentials.
func TestRootMigrate(t *testing.T) {
	token, pin := softHSMToken(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{"--data-dir", data, "--listen", "127.0.0.1:0"}
	f := populate(t, args, noEnv)
	fileRoot := mustSingleRoot(t, data)

	// The PKCS#11 settings go into the configuration; the roots manifest
	// decides which root is current.
	cfgFile := filepath.Join(dir, "kmsd.yaml")
	yaml := "keystore:\n  type: pkcs11\n  pkcs11:\n    module: " + softHSMModule + "\n    token_label: " + token +
		"\n    key_label: kmsd-root\n    pin_env: KMSD_TEST_HSM_PIN\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "KMSD_TEST_HSM_PIN" {
			return pin
		}
		return ""
	}
	hsmArgs := append([]string{"--config", cfgFile}, args...)

	runRoot(t, getenv, "migrate", "--to", "pkcs11", "--config", cfgFile, "--data-dir", data)
	m := mustManifest(t, data)
	if m.Current.Kind != "pkcs11" || !strings.HasPrefix(m.Current.Label, "kmsd-root-") || len(m.Kept) != 1 || m.Kept[0].ID != fileRoot {
		t.Fatalf("manifest after migrating to pkcs11: %+v", m)
	}
	checkAllUnder(t, data, m.Current.ID)
	verifyFixture(t, f, hsmArgs, getenv)
	hsmRoot := m.Current.ID
	runRoot(t, getenv, "retire", fileRoot, "--config", cfgFile, "--data-dir", data)

	// Migrating to the kind already current is refused.
	if out, err := runRootErr(getenv, "migrate", "--to", "pkcs11", "--config", cfgFile, "--data-dir", data); err == nil {
		t.Fatalf("migrate to the current kind accepted:\n%s", out)
	}

	// Rotate within the token: a second key under a new label.
	runRoot(t, getenv, "rotate", "--config", cfgFile, "--data-dir", data)
	m = mustManifest(t, data)
	if m.Current.Kind != "pkcs11" || m.Current.Label == m.Kept[0].Label || len(m.Kept) != 1 || m.Kept[0].ID != hsmRoot {
		t.Fatalf("manifest after rotating the HSM root: %+v", m)
	}
	checkAllUnder(t, data, m.Current.ID)
	hsmRoot2 := m.Current.ID

	// And back to a file root (a new file; the PKCS#11 settings stay
	// until the HSM roots are retired).
	runRoot(t, getenv, "migrate", "--to", "file", "--config", cfgFile, "--data-dir", data)
	m = mustManifest(t, data)
	if m.Current.Kind != "file" || m.Current.File == rootmgr.RootKeyFile || len(m.Kept) != 2 || m.Kept[0].ID != hsmRoot2 {
		t.Fatalf("manifest after migrating back to file: %+v", m)
	}
	checkAllUnder(t, data, m.Current.ID)
	verifyFixture(t, f, hsmArgs, getenv)
	runRoot(t, getenv, "retire", hsmRoot, "--config", cfgFile, "--data-dir", data)
	runRoot(t, getenv, "retire", hsmRoot2, "--config", cfgFile, "--data-dir", data)
	// With no PKCS#11 root left, the configuration can drop its settings.
	verifyFixture(t, f, args, noEnv)
}
