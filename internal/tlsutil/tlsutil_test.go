package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDevCertificatesServeAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	f, err := DevCertificates(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ca-key.pem", "server-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v", name, fi.Mode(), err)
		}
	}
	// A second call reuses the files.
	before, _ := os.ReadFile(f.Cert)
	if _, err := DevCertificates(dir, now); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(f.Cert)
	if string(before) != string(after) {
		t.Fatal("server certificate re-issued although valid")
	}

	rl, err := NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", rl.Config())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })}
	go srv.Serve(ln)
	defer srv.Close()
	url := "https://" + ln.Addr().String()

	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(f.CA)
	pool.AppendCertsFromPEM(ca)
	get := func() (*x509.Certificate, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0], nil
	}
	first, err := get()
	if err != nil {
		t.Fatalf("client trusting the dev CA: %v", err)
	}

	// Re-issue (a year later) and reload: new connections get the new one.
	os.Remove(f.Cert)
	if _, err := DevCertificates(dir, now); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	second, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if first.SerialNumber.Cmp(second.SerialNumber) == 0 {
		t.Fatal("reload kept serving the old certificate")
	}
	// A broken file keeps the last good certificate.
	os.WriteFile(f.Cert, []byte("garbage"), 0o644)
	if err := rl.Reload(); err == nil {
		t.Fatal("reload of a garbage certificate succeeded")
	}
	if _, err := get(); err != nil {
		t.Fatalf("serving after a failed reload: %v", err)
	}
}
