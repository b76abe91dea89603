// Package container_test builds kmsd's container image the way CI can
// (container/build-offline.sh: the Containerfile's own stage, from a
// static binary, no base image pulled), then runs it as a container
// runtime would, with what these machines allow: the image's root
// filesystem unpacked from its archive, its entrypoint run under chroot as
// the image's user with the image's environment, its health check run the
// same way, and a key created and used with the AWS CLI from the host.
package container_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kmsd/kmsd/test/e2e/e2etest"
)

// imageConfig is the part of a Docker image configuration that says how
// to run the image.
type imageConfig struct {
	User         string
	Env          []string
	Entrypoint   []string
	Cmd          []string
	ExposedPorts map[string]struct{}
	Volumes      map[string]struct{}
	Healthcheck  struct{ Test []string }
}

func TestOfflineImage(t *testing.T) {
	_, err := exec.LookPath("buildah")
	e2etest.Need(t, err == nil, "buildah is missing: apt-get install -y buildah")
	_, err = os.Stat(e2etest.AWSCLI)
	e2etest.Need(t, err == nil, e2etest.InstallCLI)
	e2etest.Need(t, os.Geteuid() == 0, "building and running the image under chroot needs root")
	if testing.Short() {
		t.Skip("container test skipped in -short mode")
	}
	// Recorded in go test's cache key: an edited Containerfile or script
	// runs the test again.
	for _, f := range []string{"../../Containerfile", "../../container/rootfs.sh", "../../container/build-offline.sh"} {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}

	tmp := t.TempDir()
	bin := e2etest.BuildKmsd(t, tmp, "CGO_ENABLED=0")
	archive := filepath.Join(tmp, "kmsd.tar")
	script, _ := filepath.Abs("../../container/build-offline.sh")
	if out, err := exec.Command(script, bin, archive).CombinedOutput(); err != nil {
		t.Fatalf("build-offline.sh: %v\n%s", err, out)
	}
	rootfs := filepath.Join(tmp, "rootfs")
	cfg := unpack(t, archive, rootfs)

	// What the Containerfile promises.
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want the unprivileged 65532:65532", cfg.User)
	}
	if _, ok := cfg.ExposedPorts["4599/tcp"]; !ok {
		t.Errorf("image exposes %v, want 4599/tcp", cfg.ExposedPorts)
	}
	if _, ok := cfg.Volumes["/data"]; !ok {
		t.Errorf("image volumes %v, want /data", cfg.Volumes)
	}
	if want := []string{"CMD", "/kmsd", "healthcheck"}; !slices.Equal(cfg.Healthcheck.Test, want) {
		t.Errorf("image health check %q, want %q", cfg.Healthcheck.Test, want)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "bin/sh")); err == nil {
		t.Error("the static image has a shell")
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "data")); err != nil || fi.Mode().Perm() != 0o700 || owner(fi) != 65532 {
		t.Fatalf("/data: %v %v, want a folder of mode 0700 owned by 65532", fi, err)
	}

	// The port is the image's, moved to a free one, on every interface
	// as in the image: that is allowed because the image serves TLS.
	port := e2etest.FreePort(t)
	env := append(slices.Clone(cfg.Env), "KMSD_LISTEN=0.0.0.0:"+port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := inImage(ctx, rootfs, cfg, env, append(slices.Clone(cfg.Entrypoint), cfg.Cmd...))
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	serve.Stderr = &testWriter{t: t, prefix: "kmsd: "}
	if err := serve.Start(); err != nil {
		t.Fatalf("start the entrypoint: %v", err)
	}
	defer func() {
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
	}()
	creds := e2etest.Banner(t, stdout)
	// A wildcard listener is named by the address a client uses, which
	// the development certificate covers.
	if got, want := creds["AWS_ENDPOINT_URL_KMS"], "https://localhost:"+port; got != want {
		t.Errorf("the banner exports AWS_ENDPOINT_URL_KMS=%s, want %s", got, want)
	}

	// The image's own health check, run as the runtime would.
	hc := inImage(ctx, rootfs, cfg, env, cfg.Healthcheck.Test[1:])
	if out, err := hc.CombinedOutput(); err != nil {
		t.Fatalf("health check: %v\n%s", err, out)
	} else if !strings.HasPrefix(string(out), "https://127.0.0.1:"+port+"/healthz") {
		t.Errorf("health check probed %q", out)
	}

	// A key created and used from the host with the AWS CLI, trusting
	// the development CA that kmsd made in the data volume.
	if fi, err := os.Stat(filepath.Join(rootfs, "data/root.key")); err != nil || fi.Mode().Perm() != 0o600 || owner(fi) != 65532 {
		t.Errorf("root.key: %v %v, want mode 0600 owned by the image's user", fi, err)
	}
	ca := filepath.Join(rootfs, "data/dev-tls/ca.pem")
	aws := func(args ...string) map[string]any {
		t.Helper()
		c := exec.Command(e2etest.AWSCLI, append([]string{"kms", "--endpoint-url", "https://127.0.0.1:" + port, "--ca-bundle", ca, "--output", "json"}, args...)...)
		c.Env = append(os.Environ(), "HOME="+tmp, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_DEFAULT_REGION=us-east-1", "AWS_ACCESS_KEY_ID="+creds["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY="+creds["AWS_SECRET_ACCESS_KEY"])
		out, err := c.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("aws kms %s: %v\n%s", args[0], err, msg)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("aws kms %s: %v\n%s", args[0], err, out)
		}
		return m
	}
	key := aws("create-key", "--description", "from the container test")["KeyMetadata"].(map[string]any)["KeyId"].(string)
	blob := aws("encrypt", "--key-id", key, "--plaintext", "aGVsbG8gZnJvbSB0aGUgaG9zdA==")["CiphertextBlob"].(string)
	if got := aws("decrypt", "--ciphertext-blob", blob)["Plaintext"]; got != "aGVsbG8gZnJvbSB0aGUgaG9zdA==" {
		t.Errorf("decrypt gave %v", got)
	}
}

// unpack extracts the single image of a docker-archive into rootfs, as a
// runtime lays out a container's root filesystem, and returns its
// configuration.
func unpack(t *testing.T, archive, rootfs string) imageConfig {
	t.Helper()
	files := map[string][]byte{}
	var layers []string
	read := func(visit func(name string, r io.Reader) error) {
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tr := tar.NewReader(f)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", archive, err)
			}
			if err := visit(h.Name, tr); err != nil {
				t.Fatalf("%s: %s: %v", archive, h.Name, err)
			}
		}
	}
	read(func(name string, r io.Reader) error {
		if strings.HasSuffix(name, ".json") {
			b, err := io.ReadAll(r)
			files[name] = b
			return err
		}
		return nil
	})
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v (%d images)", err, len(manifest))
	}
	layers = manifest[0].Layers
	var cfg struct{ Config imageConfig }
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		t.Fatalf("image configuration: %v", err)
	}
	// The root of a container's filesystem: every user may enter it.
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, layer := range layers {
		read(func(name string, r io.Reader) error {
			if name != layer {
				return nil
			}
			return extract(r, rootfs)
		})
	}
	return cfg.Config
}

// extract writes one layer into dir with the modes and owners it
// records. Entries that would land outside dir are refused.
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if strings.HasPrefix(filepath.Base(h.Name), ".wh.") {
			return fmt.Errorf("whiteout %s in a single-layer image", h.Name)
		}
		mode := os.FileMode(h.Mode).Perm()
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, name); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err := os.Lchown(name, h.Uid, h.Gid); err != nil {
			return err
		}
		if err := os.Chmod(name, mode); err != nil {
			return err
		}
	}
}

// inImage is the command argv of the image at rootfs, run as a runtime
// runs it: chrooted into rootfs, as the image's user, with env only.
func inImage(ctx context.Context, rootfs string, cfg imageConfig, env, argv []string) *exec.Cmd {
	uid, gid := userOf(cfg.User)
	// Not exec.Command: its path lookup would look on the host, where
	// the image's /kmsd is not.
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Env: env, Dir: "/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		Setpgid:    true,
	}
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	}()
	return cmd
}

// userOf parses an image's "uid:gid" user.
func userOf(user string) (uid, gid uint32) {
	u, g, _ := strings.Cut(user, ":")
	un, _ := strconv.ParseUint(u, 10, 32)
	gn, _ := strconv.ParseUint(g, 10, 32)
	return uint32(un), uint32(gn)
}

func owner(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// testWriter logs what it is given.
type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
