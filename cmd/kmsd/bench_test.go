package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/internal/lockedbuf"

	"github.com/kmsd/kmsd/internal/loadgen"
)

// runMainEnv makes this test binary behave as kmsd: "kmsd bench --spawn"
// and "--floor" start os.Executable(), which under go test is the test
// binary, with the environment variable set.
const runMainEnv = "KMSD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchReport runs kmsd bench with args (and --json) and decodes the
// report.
func benchReport(t *testing.T, args []string, getenv func(string) string) (*loadgen.Report, string) {
	t.Helper()
	var stdout, stderr lockedbuf.Buffer
	err := run(context.Background(), append(append([]string{"bench"}, args...), "--json"), &stdout, &stderr, getenv)
	if err != nil {
		t.Fatalf("kmsd bench: %v\n%s", err, stderr.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	return &rep, stdout.String() + stderr.String()
}

// checkReport asserts that every op ran on every target without an error,
// with the server's CPU measured.
func checkReport(t *testing.T, rep *loadgen.Report, ops, targets int) {
	t.Helper()
	if len(rep.Ops) != ops {
		t.Fatalf("%d ops reported, want %d", len(rep.Ops), ops)
	}
	for _, op := range rep.Ops {
		if len(op.Targets) != targets {
			t.Fatalf("%s: %d targets, want %d", op.Op, len(op.Targets), targets)
		}
		for _, r := range op.Targets {
			if r.Errors != 0 || r.Requests == 0 || r.ServerCPU == nil || *r.ServerCPU <= 0 || r.Latency.P99 <= 0 {
				t.Errorf("%s on %s: %d requests, %d errors %v, server CPU %v, latency %+v", op.Op, r.Target, r.Requests, r.Errors, r.ErrorSamples, r.ServerCPU, r.Latency)
			}
		}
	}
}

// TestBenchSpawnFloor runs "kmsd bench --spawn --floor": a kmsd serve and
// the floor, each in a process of its own, measured alternately.
func TestBenchSpawnFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kmsd serve and the floor as processes")
	}
	t.Setenv(runMainEnv, "1")
	rep, _ := benchReport(t, []string{"--spawn", "--floor", "--spawn-dir", t.TempDir(), "--op", "encrypt,decrypt",
		"--concurrency", "2", "--duration", "1s", "--round", "500ms", "--warmup", "100ms", "--quiet"}, os.Getenv)
	checkReport(t, rep, 2, 2)
	if rep.Targets[0].PID == 0 || rep.Targets[1].PID == 0 || rep.Targets[0].PID == os.Getpid() {
		t.Errorf("targets %+v: the servers run in processes of their own", rep.Targets)
	}
	for _, op := range rep.Ops {
		if op.Ratio == nil || op.Ratio.ServerCPU == nil || op.Ratio.OpsPerSec <= 0 {
			t.Errorf("%s: ratio %+v", op.Op, op.Ratio)
		}
	}
}

// TestBenchEndpointFromEnvironment benches a kmsd serve given by the AWS
// environment variables, with its CPU read by --pid (here this process,
// where kmsd serve runs).
func TestBenchEndpointFromEnvironment(t *testing.T) {
	banner, stop := start(t, filepath.Join(t.TempDir(), "data"))
	defer stop()
	env := map[string]string{
		"AWS_ENDPOINT_URL":      endpointRE.FindStringSubmatch(banner)[1],
		"AWS_ACCESS_KEY_ID":     regexp.MustCompile(`AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(banner)[1],
		"AWS_SECRET_ACCESS_KEY": regexp.MustCompile(`AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(banner)[1],
	}
	rep, out := benchReport(t, []string{"--op", "mixed,generate-mac", "--pid", fmt.Sprint(os.Getpid()),
		"--concurrency", "2", "--duration", "500ms", "--round", "250ms", "--warmup", "0s"}, func(k string) string { return env[k] })
	checkReport(t, rep, 2, 1)
	if strings.Contains(out, env["AWS_SECRET_ACCESS_KEY"]) {
		t.Fatal("kmsd bench printed the secret access key")
	}

	// Repeated, --endpoint makes targets of their own, measured
	// alternately; a comma-separated list is one target sent requests
	// round-robin (here twice the same node).
	ep := env["AWS_ENDPOINT_URL"]
	rep, _ = benchReport(t, []string{"--endpoint", ep, "--endpoint", ep + "," + ep, "--op", "encrypt",
		"--concurrency", "2", "--duration", "200ms", "--round", "100ms", "--warmup", "0s"}, func(k string) string { return env[k] })
	if len(rep.Targets) != 2 || rep.Targets[0].Name != "kmsd-1" || rep.Targets[1].Name != "kmsd-2" || rep.Targets[1].Endpoint != ep+","+ep {
		t.Fatalf("targets: %+v", rep.Targets)
	}
	for _, r := range rep.Ops[0].Targets {
		if r.Errors != 0 || r.Requests == 0 {
			t.Errorf("%s: %d requests, %d errors %v", r.Target, r.Requests, r.Errors, r.ErrorSamples)
		}
	}
	if err := run(context.Background(), []string{"bench", "--endpoint", ep, "--endpoint", ep, "--pid", "1"}, &lockedbuf.Buffer{}, &lockedbuf.Buffer{},
		func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "--pid goes with one --endpoint") {
		t.Errorf("--pid with two endpoints: %v", err)
	}

	// Without credentials it says what is missing.
	err := run(context.Background(), []string{"bench", "--endpoint", env["AWS_ENDPOINT_URL"]}, &lockedbuf.Buffer{}, &lockedbuf.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("bench without credentials: %v", err)
	}
}
