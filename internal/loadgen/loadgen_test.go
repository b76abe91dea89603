package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kmsd/kmsd/internal/kmstest"
	"github.com/kmsd/kmsd/internal/sigv4"
)

// TestSignerMatchesSDK signs one request with Signer and with
// aws-sdk-go-v2's signer: the Authorization headers must be equal, and
// internal/sigv4 must accept it.
func TestSignerMatchesSDK(t *testing.T) {
	body := []byte(`{"KeyId":"alias/x","Plaintext":"AAAA"}`)
	now := time.Date(2026, 12, 6, 21, 39, 56, 0, time.UTC)
	newReq := func() *http.Request {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("X-Amz-Target", "TrentService.Encrypt")
		r.Header.Set("Amz-Sdk-Invocation-Id", "a2383344-53d6-4e07-8ab4-ed94cd1bd3ae")
		r.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
		return r
	}
	const akid, secret = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

	mine := newReq()
	NewSigner(akid, secret, "us-east-1", "kms").Sign(mine, body, now)
	sdk := newReq()
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}, sdk,
		hex.EncodeToString(sum[:]), "kms", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	if got, want := mine.Header.Get("Authorization"), sdk.Header.Get("Authorization"); got != want {
		t.Fatalf("Authorization\n got %s\nwant %s", got, want)
	}

	v := &sigv4.Verifier{Service: "kms", Regions: []string{"us-east-1"}, Now: func() time.Time { return now },
		Lookup: func(context.Context, string) ([]byte, error) { return []byte(secret), nil }}
	mine.Host = mine.URL.Host
	if _, err := v.Verify(context.Background(), mine, body); err != nil {
		t.Fatalf("sigv4 refuses the signature: %v", err)
	}
}

// startFloor serves a floor for the test and returns its target.
func startFloor(t *testing.T) Target {
	t.Helper()
	const akid, secret = "AKIAFLOORTEST0000000", "floor-test-secret"
	ts := httptest.NewServer(NewFloor(kmstest.Region, akid, secret))
	t.Cleanup(ts.Close)
	return Target{Name: "floor", Endpoint: ts.URL, Region: kmstest.Region, AccessKeyID: akid, SecretAccessKey: secret, PID: os.Getpid()}
}

// TestRunEveryOp runs every op for a second (half on an in-process kmsd,
// half on the floor, alternating), two requests in flight: no answer may
// fail its check, and the report must be sane. It checks correctness, not
// speed.
func TestRunEveryOp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 12 seconds")
	}
	env := kmstest.Start(t)
	kmsd := Target{Name: "kmsd", Endpoint: env.URL, Region: kmstest.Region, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret, PID: os.Getpid()}
	ops, err := ParseOps("encrypt,decrypt,generate-data-key,describe-key,sign,sign:ECC_NIST_EDWARDS25519,sign:RSA_2048,verify,generate-mac,create-key,mixed", specP256)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rep, err := Run(context.Background(), []Target{kmsd, startFloor(t)}, Options{
		Ops: ops, Concurrency: 2, Duration: 500 * time.Millisecond, Round: 250 * time.Millisecond,
		Warmup: 50 * time.Millisecond, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ops) != len(ops) {
		t.Fatalf("%d op reports for %d ops", len(rep.Ops), len(ops))
	}
	for _, op := range rep.Ops {
		for _, r := range op.Targets {
			if r.Errors != 0 {
				t.Errorf("%s on %s: %d errors: %v %v", op.Op, r.Target, r.Errors, r.ErrorCodes, r.ErrorSamples)
			}
			l := r.Latency
			// Each window lasts at least its round (a loaded machine may
			// stretch it: no upper bound).
			if r.Requests == 0 || r.OpsPerSec <= 0 || len(r.RoundOpsPerSec) != 2 || r.Seconds < 0.5 {
				t.Errorf("%s on %s: %d requests, %.0f ops/s in %.2fs, rounds %v", op.Op, r.Target, r.Requests, r.OpsPerSec, r.Seconds, r.RoundOpsPerSec)
			}
			if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("%s on %s: latency %+v", op.Op, r.Target, l)
			}
			if r.ServerCPU == nil || *r.ServerCPU <= 0 {
				t.Errorf("%s on %s: no server CPU", op.Op, r.Target)
			}
		}
		if op.Ratio == nil || op.Ratio.OpsPerSec <= 0 || op.Ratio.ServerCPU == nil {
			t.Errorf("%s: ratio %+v", op.Op, op.Ratio)
		}
	}
	mixed := rep.Ops[len(rep.Ops)-1].Targets[0]
	if len(mixed.Breakdown) != 4 || mixed.Breakdown[0].Op != "decrypt" || mixed.Breakdown[0].Requests <= mixed.Breakdown[3].Requests {
		t.Errorf("mixed breakdown %+v", mixed.Breakdown)
	}

	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sign:ECC_NIST_EDWARDS25519", "kmsd/floor", "server µs/req"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	for _, out := range []string{text.String(), js.String(), progress.String()} {
		if strings.Contains(out, env.Secret) {
			t.Fatal("a report shows the secret access key")
		}
	}
	t.Logf("\n%s", text.String())
}

// TestRunWithKey drives an existing key given by alias.
func TestRunWithKey(t *testing.T) {
	env := kmstest.Start(t)
	ctx := context.Background()
	ts := &targetState{keys: map[string]*key{}}
	var err error
	if ts.c, err = newClient(Target{Name: "kmsd", Endpoint: env.URL, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}, 1); err != nil {
		t.Fatal(err)
	}
	k, err := ts.keyFor(ctx, specSymmetric)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.c.call(ctx, "CreateAlias", map[string]string{"AliasName": "alias/bench", "TargetKeyId": k.id}, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	kmsd := Target{Name: "kmsd", Endpoint: env.URL, AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret, KeyID: "alias/bench"}
	rep, err := Run(ctx, []Target{kmsd, startFloor(t)}, Options{Ops: []Op{{"decrypt", specSymmetric}}, Concurrency: 2,
		Duration: 100 * time.Millisecond, Round: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Ops[0].Targets[0]; r.Errors != 0 || r.Requests == 0 {
		t.Fatalf("%+v", r)
	}
	// A signing op cannot use a symmetric key.
	if _, err := Run(ctx, []Target{kmsd}, Options{Ops: []Op{{"sign", specP256}}, Duration: 50 * time.Millisecond, Round: 50 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), "SYMMETRIC_DEFAULT key") {
		t.Fatalf("sign with a symmetric --key: %v", err)
	}
}

// TestRunReportsAWSErrors checks that a refused request is reported with
// its AWS error code, and never with the secret.
func TestRunReportsAWSErrors(t *testing.T) {
	floor := startFloor(t)
	floor.SecretAccessKey = "not-the-secret"
	_, err := Run(context.Background(), []Target{floor}, Options{Ops: []Op{{"encrypt", specSymmetric}}, Duration: 50 * time.Millisecond, Round: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), floor.SecretAccessKey) {
		t.Fatalf("the error shows the secret: %v", err)
	}
}

func TestParseOps(t *testing.T) {
	ops, err := ParseOps("encrypt, sign, sign:ECC_NIST_EDWARDS25519,generate-mac,create-key:ECC_NIST_P384", "ECC_NIST_P384")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range ops {
		got = append(got, op.String())
	}
	if s := strings.Join(got, ","); s != "encrypt,sign:ECC_NIST_P384,sign:ECC_NIST_EDWARDS25519,generate-mac,create-key:ECC_NIST_P384" {
		t.Fatalf("ParseOps: %s", s)
	}
	for _, bad := range []string{"", "frob", "encrypt:ECC_NIST_P256", "sign:SYMMETRIC_DEFAULT", "generate-mac:RSA_2048"} {
		if _, err := ParseOps(bad, specP256); err == nil {
			t.Errorf("ParseOps(%q) accepted", bad)
		}
	}
}

// TestRunRoundRobin drives one target given as two endpoints (two fronts
// of one service, as the nodes of a cluster): every request succeeds and
// each endpoint gets half of them.
func TestRunRoundRobin(t *testing.T) {
	env := kmstest.Start(t)
	backend, err := url.Parse(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	var counts [2]atomic.Int64
	var fronts []string
	for i := range counts {
		proxy := httputil.NewSingleHostReverseProxy(backend)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			counts[i].Add(1)
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(ts.Close)
		fronts = append(fronts, ts.URL)
	}
	kmsd := Target{Name: "kmsd", Endpoint: strings.Join(fronts, ","), AccessKeyID: env.AccessKeyID, SecretAccessKey: env.Secret}
	rep, err := Run(context.Background(), []Target{kmsd}, Options{Ops: []Op{{"encrypt", specSymmetric}}, Concurrency: 2,
		Duration: 100 * time.Millisecond, Round: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Ops[0].Targets[0]
	if r.Errors != 0 || r.Requests == 0 {
		t.Fatalf("%+v", r)
	}
	a, b := counts[0].Load(), counts[1].Load()
	if d := a - b; d < -1 || d > 1 {
		t.Errorf("requests per endpoint: %d and %d, want them equal (±1)", a, b)
	}
	if _, err := newClient(Target{Name: "kmsd", Endpoint: fronts[0] + ",ftp://x", AccessKeyID: "a", SecretAccessKey: "s"}, 1); err == nil ||
		!strings.Contains(err.Error(), `"ftp://x" is not an http`) {
		t.Errorf("a bad second endpoint: %v", err)
	}
}

// TestRatiosOfSeveralBuilds: with more than two targets (kmsd bench
// --spawn --floor --kmsd OLD,NEW), each is compared with the last, the
// floor, and the table shows a ratio row for each.
func TestRatiosOfSeveralBuilds(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	rep := OpReport{Op: "encrypt", Targets: []Result{
		{Target: "kmsd-1", OpsPerSec: 500, ServerCPU: cpu(300), Latency: Latency{P50: 4, P99: 10}},
		{Target: "kmsd-2", OpsPerSec: 800, ServerCPU: cpu(150), Latency: Latency{P50: 2, P99: 5}},
		{Target: "floor", OpsPerSec: 1000, ServerCPU: cpu(100), Latency: Latency{P50: 2, P99: 5}},
	}}
	rep.setRatios()
	if rep.Ratio != nil || len(rep.Ratios) != 2 {
		t.Fatalf("ratio %+v, ratios %+v", rep.Ratio, rep.Ratios)
	}
	for i, want := range []struct {
		of       string
		ops, cpu float64
	}{{"kmsd-1/floor", 0.5, 3}, {"kmsd-2/floor", 0.8, 1.5}} {
		r := rep.Ratios[i]
		if r.Of != want.of || r.OpsPerSec != want.ops || r.ServerCPU == nil || *r.ServerCPU != want.cpu {
			t.Errorf("ratio %d = %+v, want %+v", i, r, want)
		}
	}
	var b strings.Builder
	if err := (&Report{Ops: []OpReport{rep}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.Contains(f[0], "/") {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for of, want := range map[string]string{"kmsd-1/floor": "×0.50 ×2.00 ×2.00 ×3.00", "kmsd-2/floor": "×0.80 ×1.00 ×1.00 ×1.50"} {
		if rows[of] != want {
			t.Errorf("row %s = %q, want %q:\n%s", of, rows[of], want, b.String())
		}
	}
}

// TestRatiosToBothFloors: with the floor and the durable floor, kmsd is
// compared with each.
func TestRatiosToBothFloors(t *testing.T) {
	cpu := func(v float64) *float64 { return &v }
	rep := OpReport{Op: "encrypt", Targets: []Result{
		{Target: "kmsd", OpsPerSec: 500, ServerCPU: cpu(200)},
		{Target: "floor", OpsPerSec: 1000, ServerCPU: cpu(100)},
		{Target: "floor-fsync", OpsPerSec: 625, ServerCPU: cpu(160)},
	}}
	rep.setRatios()
	if len(rep.Ratios) != 2 || rep.Ratios[0].Of != "kmsd/floor" || rep.Ratios[1].Of != "kmsd/floor-fsync" ||
		*rep.Ratios[0].ServerCPU != 2 || *rep.Ratios[1].ServerCPU != 1.25 || rep.Ratios[1].OpsPerSec != 0.8 {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
}

// TestJournal: concurrent appends are all durable in the file, each once,
// and an append after close fails instead of waiting forever.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := j.append(fmt.Appendf(nil, "line %02d\n", i)); err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	data, err := os.ReadFile(j.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	slices.Sort(lines)
	if len(lines) != 50 || lines[0] != "line 00" || lines[49] != "line 49" || len(slices.Compact(lines)) != 50 {
		t.Fatalf("%d lines in the journal: %q…", len(lines), lines[:min(3, len(lines))])
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	if err := j.append([]byte("late\n")); err == nil {
		t.Error("append after close succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("close left %d files", len(entries))
	}
}
