package main

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/lockedbuf"
)

func TestTakePprofFlag(t *testing.T) {
	for _, c := range []struct {
		args, rest []string
		addr       string
	}{
		{[]string{"--data-dir", "d"}, []string{"--data-dir", "d"}, ""},
		{[]string{"--pprof-listen", "127.0.0.1:6060", "--data-dir", "d"}, []string{"--data-dir", "d"}, "127.0.0.1:6060"},
		{[]string{"--data-dir", "d", "-pprof-listen=127.0.0.1:1"}, []string{"--data-dir", "d"}, "127.0.0.1:1"},
		{[]string{"--", "--pprof-listen=x"}, []string{"--", "--pprof-listen=x"}, ""},
	} {
		addr, rest, err := takePprofFlag(c.args)
		if err != nil || addr != c.addr || !slices.Equal(rest, c.rest) {
			t.Errorf("takePprofFlag(%q) = %q, %q, %v; want %q, %q", c.args, addr, rest, err, c.addr, c.rest)
		}
	}
	if _, _, err := takePprofFlag([]string{"--pprof-listen"}); err == nil {
		t.Error("--pprof-listen without a value accepted")
	}
	if err := startPprof(context.Background(), "0.0.0.0:0", &lockedbuf.Buffer{}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("a non-loopback pprof listener: %v", err)
	}
}

// TestServePprof starts kmsd serve with --pprof-listen and fetches the
// profile index.
func TestServePprof(t *testing.T) {
	_, logs, stop := startServe(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--pprof-listen", "127.0.0.1:0"},
		func(string) string { return "" })
	defer stop()
	m := regexp.MustCompile(`pprof listening at (http://\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no pprof address in the log:\n%s", logs.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", m[1], resp.Status)
	}
}
