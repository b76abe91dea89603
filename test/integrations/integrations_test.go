// Package integrations runs every recipe of docs/integrations.md, as
// written there, against a real kmsd: each block marked
// "<!-- test: NAME -->" runs in a fresh shell after the "setup" block,
// with the port of the kmsd the test started in place of 4599. The
// recipes drive the AWS CLI, boto3, aws-sdk-go-v2, the JavaScript SDK,
// SOPS, cosign, the JavaScript AWS Encryption SDK and Vault's seal
// library; without them the test skips locally and fails under CI=true
// (.ci/run installs them).
package integrations

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// recipe is one tested block of the document.
type recipe struct {
	name, lang, body string
}

var marker = regexp.MustCompile(`^<!-- test: ([a-z0-9-]+) -->$`)

// recipes returns the tested blocks of the Markdown document doc, in
// order. A marker must be followed by a fenced block.
func recipes(t *testing.T, doc string) []recipe {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []recipe
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		m := marker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s:%d: %q is not followed by a fenced block", doc, i+1, lines[i])
		}
		r := recipe{name: m[1], lang: strings.TrimPrefix(lines[i+1], "```")}
		var body []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s: the block of %s never ends", doc, r.name)
		}
		r.body = strings.Join(body, "\n") + "\n"
		out = append(out, r)
	}
	return out
}

// tool finds a program on PATH or in the Go bin folder (where .ci/run's
// go install puts SOPS and cosign).
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
	_, err := os.Stat(p)
	e2etest.Need(t, err == nil, name+" is missing: "+install)
	return p
}

// boto3Python is a python3 that has boto3 (Debian's, when another python3
// comes first on PATH).
func boto3Python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import boto3").Run() == nil {
			return p
		}
	}
	e2etest.Need(t, false, "no python3 with boto3: apt-get install -y python3-boto3")
	return ""
}

var cliVersion = regexp.MustCompile(`^aws-cli/(\d+)\.(\d+)\.`)

// endpointVariables reports whether the AWS CLI at path reads
// AWS_ENDPOINT_URL_KMS and endpoint_url (2.13 and later, 1.29 and later).
func endpointVariables(path string) (bool, string) {
	out, _ := exec.Command(path, "--version").CombinedOutput()
	m := cliVersion.FindSubmatch(out)
	if m == nil {
		return false, string(out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return (major == 2 && minor >= 13) || (major == 1 && minor >= 29) || major > 2, strings.TrimSpace(string(out))
}

func TestRecipes(t *testing.T) {
	if testing.Short() {
		t.Skip("integration recipes skipped in -short mode")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	all := recipes(t, filepath.Join(root, "docs/integrations.md"))
	// The setup block runs before each recipe; the config block is the
	// configuration kmsd starts with.
	blocks := map[string]string{}
	for _, r := range all {
		blocks[r.name] = r.body
	}
	setup, conf := blocks["setup"], blocks["config"]
	if setup == "" || conf == "" {
		t.Fatal("docs/integrations.md lacks its setup or config block")
	}

	aws := tool(t, "aws", "apt-get install -y awscli")
	sops := tool(t, "sops", "go install github.com/getsops/sops/v3/cmd/sops@v3.13.3")
	cosign := tool(t, "cosign", "go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5")
	node := tool(t, "node", "apt-get install -y nodejs npm")
	nodeModules := filepath.Join(root, "test/interop/node_modules")
	_, err = os.Stat(filepath.Join(nodeModules, "@aws-crypto/client-node"))
	e2etest.Need(t, err == nil, "the JavaScript SDKs are missing: (cd test/interop && npm ci)")
	python := boto3Python(t)
	modern, awsVersion := endpointVariables(aws)

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	e2etest.BuildKmsd(t, bin)
	// The recipes' tools first on PATH, under their own names.
	for _, p := range []string{aws, sops, cosign, node, python} {
		link := filepath.Join(bin, filepath.Base(p))
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(p, link); err != nil {
				t.Fatal(err)
			}
		}
	}
	home := filepath.Join(tmp, "home")
	port := e2etest.FreePort(t)
	env := []string{
		"HOME=" + home,
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"KMSD_REPO=" + root,
		"NODE_PATH=" + nodeModules,
		"LANG=C.UTF-8",
	}
	// The Go toolchain's own settings, for the Go recipes.
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOFLAGS", "GOTOOLCHAIN", "CI"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE"} {
		if _, ok := os.LookupEnv(k); !ok {
			v, _ := exec.Command("go", "env", k).Output()
			env = append(env, k+"="+strings.TrimSpace(string(v)))
		}
	}

	// kmsd as the document starts it: kmsd serve --dev-tls, its data in
	// the default folder under HOME.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	confFile := filepath.Join(tmp, "kmsd.yaml")
	write(t, confFile, conf)
	serve := exec.CommandContext(ctx, filepath.Join(bin, "kmsd"), "serve", "--dev-tls", "--config", confFile, "--listen", "127.0.0.1:"+port)
	serve.Env = env
	serve.Cancel = func() error { return serve.Process.Signal(syscall.SIGTERM) }
	serve.WaitDelay = 10 * time.Second
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var kmsdLog bytes.Buffer
	serve.Stderr = &kmsdLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		serve.Wait()
		if t.Failed() {
			t.Logf("kmsd's log:\n%s", kmsdLog.String())
		}
	}()
	creds := e2etest.Banner(t, stdout)
	env = append(env, "AWS_ACCESS_KEY_ID="+creds["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY="+creds["AWS_SECRET_ACCESS_KEY"])
	setup = strings.ReplaceAll(setup, "localhost:4599", "localhost:"+port)

	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, r := range all {
		if r.name == "setup" || r.name == "config" {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			if strings.HasPrefix(r.name, "aws-cli-") && r.name != "aws-cli-flag" && !modern {
				// Not kmsd's limitation, nor one CI can lift: Debian
				// ships no newer CLI. The flag form runs with it.
				t.Skipf("%s reads neither AWS_ENDPOINT_URL_KMS nor endpoint_url", awsVersion)
			}
			work := filepath.Join(tmp, "work", r.name)
			if err := os.MkdirAll(work, 0o755); err != nil {
				t.Fatal(err)
			}
			body := strings.ReplaceAll(r.body, "localhost:4599", "localhost:"+port)
			var run string
			switch r.lang {
			case "sh":
				run = body
			case "python":
				write(t, filepath.Join(work, "recipe.py"), body)
				run = "python3 recipe.py\n"
			case "js":
				write(t, filepath.Join(work, "recipe.js"), body)
				run = "NODE_EXTRA_CA_CERTS=$AWS_CA_BUNDLE node recipe.js\n"
			case "go":
				// A module of its own, with kmsd's requirements (the
				// SDK among them) and their sums.
				write(t, filepath.Join(work, "main.go"), body)
				req := gomod[bytes.Index(gomod, []byte("\ngo ")):]
				write(t, filepath.Join(work, "go.mod"), "module recipe\n"+string(req))
				sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(work, "go.sum"), string(sum))
				run = "go run -mod=mod .\n"
			default:
				t.Fatalf("recipe %s: no way to run a %q block", r.name, r.lang)
			}
			cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", setup+run)
			cmd.Dir = work
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("recipe %s: %v", r.name, err)
			}
			ran++
		})
	}
	if ran == 0 {
		t.Fatal("no recipe ran")
	}
}

func write(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
