package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kmsd/kmsd/internal/loadgen"
)

const benchUsage = `usage: kmsd bench [flags]

Drives a kmsd (or any AWS KMS endpoint) with SigV4-signed requests from
--concurrency workers, checks every answer, and prints ops/s, latency,
errors by AWS code, and the CPU time per request of the client and, with
--pid or --spawn, of the server.

  kmsd bench --spawn --floor --op encrypt
  kmsd bench --spawn --floor --op encrypt,decrypt,generate-data-key,sign,sign:ECC_NIST_EDWARDS25519,generate-mac,create-key

Ops (comma-separated, each NAME or NAME:KEYSPEC): encrypt, decrypt,
generate-data-key, describe-key, sign, verify, generate-mac, create-key,
mixed (50% decrypt, 30% generate-data-key, 15% encrypt, 5% describe-key).

--floor also starts the floor, a bare reference server (net/http,
encoding/json, kmsd's SigV4 check, the operation's cryptography with
in-memory keys, nothing else) in a process of its own, measures it in the
same run, alternating with kmsd round by round, and prints kmsd's figures
as ratios to it. On a shared machine the absolute figures are noise; the
ratios are the result. --durable-floor also measures the floor with a line
per request appended and fsynced before its answer: kmsd's ratio to it is
its own cost beyond a durable record. --kmsd OLD,NEW with --spawn compares
builds in the same rounds.

The endpoint and credentials come from the flags or the AWS environment
(AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION, AWS_CA_BUNDLE); the
secret is never taken from the command line (--secret-file reads it from a
file) and never printed. --spawn instead starts kmsd serve on a temporary
data folder and uses the access key its banner shows.

flags:
`

// benchMain is "kmsd bench".
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		shown := flag.NewFlagSet("bench", flag.ContinueOnError)
		shown.SetOutput(fs.Output())
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != "floor-server" && f.Name != "floor-journal" {
				shown.Var(f.Value, f.Name, f.Usage)
			}
		})
		shown.PrintDefaults()
	}
	ops := fs.String("op", "encrypt", "ops to run, comma-separated, each NAME or NAME:KEYSPEC")
	spec := fs.String("spec", "ECC_NIST_P256", "key spec of sign and verify without one (ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, RSA_2048, …)")
	concurrency := fs.Int("concurrency", 16, "requests in flight per target (the connection pool is as large)")
	duration := fs.Duration("duration", 10*time.Second, "measured time per op and target")
	round := fs.Duration("round", time.Second, "length of one measured round: targets alternate round by round")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load per op and target before its first round")
	size := fs.Int("size", 32, "bytes of each plaintext or message (1 to 4096)")
	keyID := fs.String("key", "", "existing key (id, ARN or alias) for every op (default: bench creates keys of the specs it needs)")
	var endpoints stringList
	fs.Var(&endpoints, "endpoint", "endpoint URL (env AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL); several, comma-separated, are the nodes of one cluster, sent requests round-robin. Repeated, each is a target of its own (kmsd-1, kmsd-2, …), measured alternately round by round: e.g. 1, 2 and 3 nodes of a cluster")
	region := fs.String("region", "", "signing region (env AWS_REGION, AWS_DEFAULT_REGION; default us-east-1)")
	akid := fs.String("access-key-id", "", "access key id (env AWS_ACCESS_KEY_ID)")
	secretFile := fs.String("secret-file", "", "file holding the secret access key (default: env AWS_SECRET_ACCESS_KEY)")
	caBundle := fs.String("ca-bundle", "", "PEM CA certificates for an https endpoint (env AWS_CA_BUNDLE)")
	pid := fs.Int("pid", 0, "process id of the kmsd serving the endpoint, to measure its CPU time per request")
	spawn := fs.Bool("spawn", false, "start kmsd serve on a temporary data folder and bench it")
	kmsdBinary := fs.String("kmsd", "", "the kmsd executable --spawn and --floor start (default: this one); with --spawn, several comma-separated are each a target, measured alternately (builds compared in one run; the floor is the first's)")
	spawnDir := fs.String("spawn-dir", "", "where --spawn makes its data folder (default: $TMPDIR); its disk's fsync speed counts")
	var serveArgs stringList
	fs.Var(&serveArgs, "serve-arg", "an argument for the kmsd serve --spawn starts (repeatable), e.g. --serve-arg=--pprof-listen=127.0.0.1:6060")
	floor := fs.Bool("floor", false, "also measure the floor, alternately, and print kmsd's figures as ratios to it")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress line per round (on standard error)")
	durableFloor := fs.Bool("durable-floor", false, "also measure the durable floor: the floor plus a line per request appended and fsynced (group commit) before its answer, in --spawn-dir or $TMPDIR; kmsd's ratios to it are its own cost beyond a durable record")
	floorServer := fs.Bool("floor-server", false, "")  // hidden: the floor's own process
	floorJournal := fs.String("floor-journal", "", "") // hidden: the durable floor's folder
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if *region == "" {
		*region = firstNonEmpty(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"), "us-east-1")
	}
	if *floorServer {
		// KMSD_FLOOR_PPROF_LISTEN profiles the floor as --pprof-listen
		// profiles kmsd serve (bench/profile.sh TARGET=floor), so that the
		// two can be compared concern by concern.
		if addr := getenv("KMSD_FLOOR_PPROF_LISTEN"); addr != "" {
			if err := startPprof(ctx, addr, os.Stderr); err != nil {
				return err
			}
		}
		return loadgen.ServeFloorProcess(ctx, *region, *floorJournal, os.Stdin, stdout)
	}

	opList, err := loadgen.ParseOps(*ops, *spec)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	binaries := strings.Split(*kmsdBinary, ",")
	if *kmsdBinary == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding the kmsd executable: %w", err)
		}
		binaries = []string{self}
	}
	self := binaries[0]
	if len(binaries) > 1 && !*spawn {
		return errors.New("bench: several --kmsd executables go with --spawn")
	}

	var kmsds []loadgen.Target
	if *spawn {
		if len(endpoints) > 0 || *pid != 0 || *akid != "" || *secretFile != "" {
			return errors.New("bench: --spawn starts its own kmsd: --endpoint, --pid, --access-key-id and --secret-file do not go with it")
		}
		for i, bin := range binaries {
			p, t, err := loadgen.SpawnKmsd(ctx, loadgen.SpawnConfig{Binary: bin, Dir: *spawnDir, Args: serveArgs})
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			defer func() {
				if err := p.Stop(); err != nil {
					fmt.Fprintf(stderr, "kmsd bench: stopping the spawned kmsd: %v\n", err)
				}
			}()
			if len(binaries) > 1 {
				t.Name, t.Binary = fmt.Sprintf("kmsd-%d", i+1), bin
			}
			kmsds = append(kmsds, t)
			*region = t.Region
		}
	} else {
		if len(serveArgs) > 0 {
			return errors.New("bench: --serve-arg goes with --spawn")
		}
		if len(endpoints) > 1 && *pid != 0 {
			return errors.New("bench: --pid goes with one --endpoint")
		}
		if len(endpoints) == 0 {
			endpoints = stringList{""}
		}
		for i, e := range endpoints {
			t, err := targetFromEnv(e, *region, *akid, *secretFile, *caBundle, getenv)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			t.PID = *pid
			if len(endpoints) > 1 {
				t.Name = fmt.Sprintf("kmsd-%d", i+1)
			}
			kmsds = append(kmsds, t)
		}
	}
	for i := range kmsds {
		kmsds[i].KeyID = *keyID
	}
	targets := kmsds
	if *floor {
		p, t, err := loadgen.SpawnFloor(ctx, self, *region, "")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer p.Stop()
		targets = append(targets, t)
	}
	if *durableFloor {
		dir := *spawnDir
		if dir == "" {
			dir = os.TempDir()
		}
		p, t, err := loadgen.SpawnFloor(ctx, self, *region, dir)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer p.Stop()
		targets = append(targets, t)
	}

	opts := loadgen.Options{Ops: opList, Concurrency: *concurrency, Duration: *duration, Round: *round, Warmup: *warmup, PayloadSize: *size}
	if !*quiet {
		opts.Progress = stderr
	}
	rep, err := loadgen.Run(ctx, targets, opts)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if *jsonOut {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

// targetFromEnv resolves the endpoint and credentials of a kmsd that is
// already running: flags first, then the AWS environment.
func targetFromEnv(endpoint, region, akid, secretFile, caBundle string, getenv func(string) string) (loadgen.Target, error) {
	t := loadgen.Target{
		Name:        "kmsd",
		Endpoint:    firstNonEmpty(endpoint, getenv("AWS_ENDPOINT_URL_KMS"), getenv("AWS_ENDPOINT_URL")),
		Region:      region,
		AccessKeyID: firstNonEmpty(akid, getenv("AWS_ACCESS_KEY_ID")),
	}
	if t.Endpoint == "" {
		return t, errors.New("no endpoint: give --endpoint (or AWS_ENDPOINT_URL), or --spawn to start a kmsd")
	}
	if t.AccessKeyID == "" {
		return t, errors.New("no access key: give --access-key-id or AWS_ACCESS_KEY_ID")
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return t, fmt.Errorf("secret access key: %w", err)
		}
		t.SecretAccessKey = strings.TrimSpace(string(b))
	} else {
		t.SecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
	}
	if t.SecretAccessKey == "" {
		return t, errors.New("no secret access key: set AWS_SECRET_ACCESS_KEY or give --secret-file")
	}
	if ca := firstNonEmpty(caBundle, getenv("AWS_CA_BUNDLE")); ca != "" {
		cfg, err := loadgen.TLSConfig(ca)
		if err != nil {
			return t, err
		}
		t.TLS = cfg
	}
	return t, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
