package e2etest

import (
	"bufio"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

var exportRE = regexp.MustCompile(`^\s*export (AWS_[A-Z_]+)=(\S+)`)

// Banner reads kmsd serve's first-start banner from r and returns the
// variables it exports; the rest of r is drained in the background.
func Banner(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	vars := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("kmsd serve ended before its banner was out")
			}
			if m := exportRE.FindStringSubmatch(line); m != nil {
				vars[m[1]] = m[2]
			}
			if strings.Contains(line, "create-key") {
				if vars["AWS_ACCESS_KEY_ID"] == "" || vars["AWS_SECRET_ACCESS_KEY"] == "" {
					t.Fatal("the banner exported no credentials")
				}
				go func() {
					for range lines {
					}
				}()
				return vars
			}
		case <-timeout:
			t.Fatal("no banner from kmsd serve after 30s")
		}
	}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// Need fails the test under CI=true, and skips it elsewhere, when ok is
// false: msg says what is missing and how to install it.
func Need(t *testing.T, ok bool, msg string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
