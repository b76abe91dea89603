package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a server the load generator started: kmsd serve or the
// floor. Stop ends it.
type Process struct {
	cmd  *exec.Cmd
	done chan error
	// stdin is held open: the child sees EOF on its standard input when
	// this process exits, however it exits.
	stdin io.WriteCloser
	// bannerRead ends the forwarding of output lines.
	bannerRead chan struct{}
	// Log is the file holding its standard error ("" for the floor,
	// whose standard error is the load generator's).
	Log     string
	cleanup func()
}

// PID returns the process id, whose CPU time the load generator measures.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop asks the process to exit (SIGTERM: kmsd serve closes its audit log
// cleanly), kills it if it has not within 30 seconds, and removes what it
// was given to work in.
func (p *Process) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		err = <-p.done
	}
	if p.cleanup != nil {
		p.cleanup()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil // ended by our SIGTERM before it could exit by itself
	}
	return err
}

// SpawnConfig is how SpawnKmsd starts kmsd serve.
type SpawnConfig struct {
	// Binary is the kmsd executable.
	Binary string
	// Dir is where the temporary data folder is made ("": the system's
	// temporary directory). The audit log and the store fsync there: put
	// it on the disk a real kmsd would use.
	Dir string
	// Args are further arguments of kmsd serve.
	Args []string
}

// SpawnKmsd starts "kmsd serve" on a fresh data folder, listening on a
// free loopback port, and returns it with the target its banner describes
// (endpoint, the admin access key created for the folder, region). The
// data folder is removed by Stop; kmsd's standard error goes to a log file
// beside it, kept for the caller to show when something fails.
func SpawnKmsd(ctx context.Context, cfg SpawnConfig) (*Process, Target, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "kmsd-bench-")
	if err != nil {
		return nil, Target{}, fmt.Errorf("spawn kmsd: %w", err)
	}
	logPath := filepath.Join(dir, "kmsd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, Target{}, fmt.Errorf("spawn kmsd: %w", err)
	}
	defer logFile.Close()
	args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0"}, cfg.Args...)
	cmd := exec.Command(cfg.Binary, args...)
	cmd.Stderr = logFile
	p, lines, err := start(cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, Target{}, fmt.Errorf("spawn kmsd: %w", err)
	}
	p.Log = logPath
	p.cleanup = func() { os.RemoveAll(dir) }

	// The banner ends with the line suggesting "aws kms create-key".
	t := Target{Name: "kmsd", PID: p.PID()}
	var caFile string
	err = readBanner(ctx, p, lines, "aws kms create-key", func(line string) {
		v := func(name string) (string, bool) { return strings.CutPrefix(line, "export "+name+"=") }
		if s, ok := v("AWS_ACCESS_KEY_ID"); ok {
			t.AccessKeyID = s
		} else if s, ok := v("AWS_SECRET_ACCESS_KEY"); ok {
			t.SecretAccessKey = s
		} else if s, ok := v("AWS_ENDPOINT_URL_KMS"); ok {
			t.Endpoint = s
		} else if s, ok := v("AWS_DEFAULT_REGION"); ok {
			t.Region = s
		} else if s, ok := v("AWS_CA_BUNDLE"); ok {
			caFile = s
		}
	})
	if err == nil && (t.Endpoint == "" || t.SecretAccessKey == "") {
		err = errors.New("its banner shows no endpoint or no new access key")
	}
	if err == nil && caFile != "" {
		t.TLS, err = TLSConfig(caFile)
	}
	if err != nil {
		p.Stop()
		return nil, Target{}, fmt.Errorf("spawn kmsd: %w (its log: %s)", err, tail(logPath))
	}
	return p, t, nil
}

// SpawnFloor starts the floor in a process of its own ("kmsd bench
// --floor-server", binary being kmsd) and returns it with its target.
//
// A process of its own is what makes the floor's figures honest. Run in
// the load generator's process, its CPU time could only be estimated as
// the process's total minus the client's share, with the client's cost
// per request itself changing with the load; and the two would share one
// heap and one garbage collector, so that the floor would pay for the
// client's garbage and the client for the floor's. As a child process it
// is measured exactly as kmsd is, from /proc/PID/stat, and it runs as a
// bare server would: its own runtime, GOMAXPROCS and GC.
//
// With journalDir set, it is the durable floor (named "floor-fsync"): every
// request's line is appended and fsynced, with group commit, to a file in
// journalDir before its answer (see journal).
func SpawnFloor(ctx context.Context, binary, region, journalDir string) (*Process, Target, error) {
	args := []string{"bench", "--floor-server", "--region", region}
	name := "floor"
	if journalDir != "" {
		args = append(args, "--floor-journal", journalDir)
		name = "floor-fsync"
	}
	cmd := exec.Command(binary, args...)
	cmd.Stderr = os.Stderr
	p, lines, err := start(cmd)
	if err != nil {
		return nil, Target{}, fmt.Errorf("spawn floor: %w", err)
	}
	t := Target{Name: name, Region: region, PID: p.PID()}
	err = readBanner(ctx, p, lines, floorBanner, func(line string) {
		f := strings.Fields(strings.TrimPrefix(line, floorBanner))
		if len(f) == 3 {
			t.Endpoint, t.AccessKeyID, t.SecretAccessKey = f[0], f[1], f[2]
		}
	})
	if err == nil && t.Endpoint == "" {
		err = errors.New("no endpoint announced")
	}
	if err != nil {
		p.Stop()
		return nil, Target{}, fmt.Errorf("spawn floor: %w", err)
	}
	return p, t, nil
}

// floorBanner starts the line by which the floor server announces its
// endpoint and credentials to its parent, over a pipe only the parent
// reads.
const floorBanner = "kmsd-bench-floor "

// ServeFloorProcess is the floor server's process ("kmsd bench
// --floor-server"): it listens on a free loopback port, writes its
// endpoint and a fresh access key to out for the parent, and serves until
// ctx ends or in (the parent's end of a pipe) closes, so that it never
// outlives the load generator.
//
// With journalDir set, it serves the durable floor (see SpawnFloor).
func ServeFloorProcess(ctx context.Context, region, journalDir string, in io.Reader, out io.Writer) error {
	var j *journal
	if journalDir != "" {
		var err error
		if j, err = openJournal(journalDir); err != nil {
			return err
		}
		defer j.close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	id, secret := make([]byte, 8), make([]byte, 30)
	rand.Read(id)
	rand.Read(secret)
	akid := "AKIAFLOOR" + strings.ToUpper(hex.EncodeToString(id))[:11]
	sk := hex.EncodeToString(secret)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	if _, err := fmt.Fprintf(out, "%shttp://%s %s %s\n", floorBanner, ln.Addr(), akid, sk); err != nil {
		ln.Close()
		return fmt.Errorf("floor: %w", err)
	}
	f := NewFloor(region, akid, sk)
	f.journal = j
	return ServeFloor(ctx, ln, f)
}

// start starts cmd with its standard output on a pipe, read line by line
// into the returned channel (closed at EOF; once readBanner is done, lines
// are read and dropped, so that the child never blocks on a full pipe),
// and its standard input on a pipe that closes when this process exits.
func start(cmd *exec.Cmd) (*Process, <-chan string, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	p := &Process{cmd: cmd, done: make(chan error, 1), stdin: stdin, bannerRead: make(chan struct{})}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-p.bannerRead:
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	return p, lines, nil
}

// readBanner passes the child's output lines to each until a line holding
// last, for at most a minute.
func readBanner(ctx context.Context, p *Process, lines <-chan string, last string, each func(string)) error {
	defer close(p.bannerRead)
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return errors.New("it exited before it was ready")
			}
			each(line)
			if strings.Contains(line, last) {
				return nil
			}
		case <-timeout.C:
			return errors.New("not ready after a minute")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tail returns the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// TLSConfig returns a TLS configuration trusting the PEM certificates in
// caFile (as AWS_CA_BUNDLE names it).
func TLSConfig(caFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
