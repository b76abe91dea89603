package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/kmsd/kmsd/internal/tlsutil"
	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// TestHealthcheck runs kmsd serve configured by the environment alone, as
// a container is, and "kmsd healthcheck" with the same environment: it
// finds the server, over HTTPS when TLS is configured, and trusts exactly
// the configured server.
func TestHealthcheck(t *testing.T) {
	other, err := tlsutil.DevCertificates(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	served, err := tlsutil.DevCertificates(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		probe  map[string]string // overrides of env for the probe
		scheme string
		fail   string
	}{
		{name: "http", env: map[string]string{}, scheme: "http://127.0.0.1:"},
		{name: "dev TLS on every interface", env: map[string]string{"KMSD_DEV_TLS": "true", "KMSD_LISTEN": "0.0.0.0:"}, scheme: "https://127.0.0.1:"},
		{name: "certificate file", env: map[string]string{"KMSD_TLS_CERT": served.Cert, "KMSD_TLS_KEY": served.Key}, scheme: "https://127.0.0.1:"},
		{name: "another certificate", env: map[string]string{"KMSD_TLS_CERT": served.Cert, "KMSD_TLS_KEY": served.Key},
			probe: map[string]string{"KMSD_TLS_CERT": other.Cert, "KMSD_TLS_KEY": other.Key}, fail: "not the one"},
		{name: "plain probe of a TLS server", env: map[string]string{"KMSD_DEV_TLS": "true"}, probe: map[string]string{"KMSD_DEV_TLS": "false"}, fail: "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"KMSD_DATA_DIR": filepath.Join(t.TempDir(), "data")}
			for k, v := range tc.env {
				env[k] = v
			}
			if !strings.HasSuffix(env["KMSD_LISTEN"], ":") {
				env["KMSD_LISTEN"] = "127.0.0.1:"
			}
			env["KMSD_LISTEN"] += e2etest.FreePort(t)
			_, _, stop := startServe(t, nil, func(k string) string { return env[k] })
			defer stop()
			for k, v := range tc.probe {
				env[k] = v
			}
			var out, errOut lockedbuf.Buffer
			err := run(context.Background(), []string{"healthcheck"}, &out, &errOut, func(k string) string { return env[k] })
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("healthcheck = %v, want an error mentioning %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatalf("healthcheck: %v", err)
			}
			if !strings.HasPrefix(out.String(), tc.scheme) {
				t.Errorf("probed %q, want %s…", out.String(), tc.scheme)
			}
		})
	}
	// Nothing listening: a clear failure, not a hang.
	port := e2etest.FreePort(t)
	err = run(context.Background(), []string{"healthcheck", "--url", "http://127.0.0.1:" + port + "/healthz", "--timeout", "2s"}, &lockedbuf.Buffer{}, &lockedbuf.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("healthcheck of a closed port = %v, want connection refused", err)
	}
}
