package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsd/kmsd/internal/config"
	"github.com/kmsd/kmsd/internal/datafolder"
)

// healthcheckMain is "kmsd healthcheck": it asks the kmsd serving on this
// machine for /healthz and fails unless the answer is 200. A container
// image has no curl: its HEALTHCHECK runs this instead.
//
// Without --url it reads the configuration exactly as kmsd serve would
// (KMSD_CONFIG and the KMSD_* environment, as a container sets them) and
// probes the configured listen address on loopback, over HTTPS when TLS
// is configured.
func healthcheckMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to probe (default: /healthz of the configured listen address, on loopback)")
	caFile := fs.String("ca-bundle", "", "PEM CA bundle that verifies the server of --url (default: the system's)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected arguments %v", fs.Args())
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	target := *url
	if target == "" {
		cfg, err := config.Load(nil, getenv)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		if target, err = probeTarget(cfg, tlsConf); err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
	}
	if *caFile != "" {
		pool, err := certPool(*caFile)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		tlsConf.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", target, resp.Status, bytes.TrimSpace(body))
	}
	fmt.Fprintf(stdout, "%s: %s\n", target, bytes.TrimSpace(body))
	return nil
}

// probeTarget returns the /healthz URL of the kmsd that cfg describes,
// reached on loopback (a wildcard listen address serves loopback too), and
// sets up tlsConf to trust exactly that server.
func probeTarget(cfg config.Config, tlsConf *tls.Config) (string, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	switch {
	case cfg.TLS.Dev:
		// The development CA in the data folder signed a certificate
		// for localhost and the loopback addresses.
		pool, err := certPool(filepath.Join(cfg.DataDir, datafolder.DevTLSDir, "ca.pem"))
		if err != nil {
			return "", err
		}
		tlsConf.RootCAs = pool
	case cfg.TLS.CertFile != "":
		// The served certificate names the service's public name, not
		// loopback: trust exactly the certificate in the configured
		// file, byte for byte, instead of a name check that cannot
		// succeed on 127.0.0.1.
		leaf, err := firstCertificate(cfg.TLS.CertFile)
		if err != nil {
			return "", err
		}
		tlsConf.InsecureSkipVerify = true // replaced by the exact comparison below
		tlsConf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], leaf) {
				return errors.New("the server's certificate is not the one in the configured certificate file")
			}
			return nil
		}
	default:
		return "http://" + addr + "/healthz", nil
	}
	return "https://" + addr + "/healthz", nil
}

// certPool reads a PEM bundle into a pool.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// firstCertificate returns the DER of the first certificate in a PEM file.
func firstCertificate(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", file)
		}
		if blk.Type == "CERTIFICATE" {
			return blk.Bytes, nil
		}
	}
}
