// Package loadgen is the load generator of "kmsd bench": it drives servers
// speaking the AWS KMS API with SigV4-signed requests, as an AWS SDK does,
// from a fixed number of concurrent workers over keep-alive connections,
// checks every answer, and reports throughput, latency and the CPU time the
// client and each server spent per request.
//
// Several targets (kmsd and the floor, a bare reference server: see Floor)
// are measured in the same run, alternately, in short rounds, so that
// whatever else the machine does hits all of them alike: on a shared
// machine the absolute figures are noise, the ratios are the result.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a run. Zero values take the defaults shown.
type Options struct {
	// Ops are run one after the other.
	Ops []Op
	// Concurrency is the number of requests in flight per target (16).
	Concurrency int
	// Duration is the measured time per op and target (10s), split into
	// rounds of Round (1s): target A, target B, target B, target A, …
	Duration time.Duration
	Round    time.Duration
	// Warmup is unmeasured load on each target before an op's first
	// round (none when zero).
	Warmup time.Duration
	// PayloadSize is the size of plaintexts and messages in bytes (32).
	PayloadSize int
	// Progress, if set, receives a line per round.
	Progress io.Writer
}

func (o *Options) defaults() error {
	if o.Concurrency == 0 {
		o.Concurrency = 16
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Round == 0 {
		o.Round = time.Second
	}
	if o.PayloadSize == 0 {
		o.PayloadSize = 32
	}
	switch {
	case len(o.Ops) == 0:
		return errors.New("no op to run")
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("concurrency %d is not between 1 and 4096", o.Concurrency)
	case o.Duration < 0 || o.Round < 10*time.Millisecond || o.Warmup < 0:
		return errors.New("duration and warm-up must not be negative, and a round is at least 10ms")
	case o.PayloadSize < 1 || o.PayloadSize > 4096:
		return fmt.Errorf("payload size %d is not between 1 and 4096 bytes (the KMS limit)", o.PayloadSize)
	}
	return nil
}

// settleTime is the unmeasured start of every round: the workers start,
// the server that was idle during the other target's round wakes up.
func settleTime(round time.Duration) time.Duration {
	return min(round/5, 100*time.Millisecond)
}

// Run runs every op of opts against every target and reports the
// measured figures. The targets are measured alternately, round by round.
func Run(ctx context.Context, targets []Target, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("no target")
	}
	states := make([]*targetState, len(targets))
	for i, t := range targets {
		c, err := newClient(t, opts.Concurrency)
		if err != nil {
			return nil, err
		}
		defer c.idleConn()
		states[i] = &targetState{c: c, keys: map[string]*key{}}
	}
	rounds := max(1, int((opts.Duration+opts.Round-1)/opts.Round))
	rep := &Report{
		Concurrency:  opts.Concurrency,
		PayloadBytes: opts.PayloadSize,
		Rounds:       rounds,
		RoundSeconds: opts.Round.Seconds(),
		WarmupSecs:   opts.Warmup.Seconds(),
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, TargetInfo{Name: t.Name, Endpoint: t.Endpoint, PID: t.PID, Binary: t.Binary})
	}
	for _, op := range opts.Ops {
		r, err := runOp(ctx, states, op, opts, rounds)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		rep.Ops = append(rep.Ops, *r)
	}
	return rep, nil
}

// runOp prepares op on every target, warms each up, then runs the rounds.
func runOp(ctx context.Context, states []*targetState, op Op, opts Options, rounds int) (*OpReport, error) {
	// A target with a key of its own decides the spec; the others create
	// keys of that spec.
	if op.Name != "create-key" {
		for _, ts := range states {
			if ts.c.target.KeyID == "" {
				continue
			}
			k, err := ts.describeTargetKey(ctx)
			if err != nil {
				return nil, err
			}
			if !kinds[op.Name].specOK(k.spec) {
				return nil, fmt.Errorf("key %s on %s is a %s key, which %s cannot use", ts.c.target.KeyID, ts.c.target.Name, k.spec, op.Name)
			}
			op.Spec = k.spec
		}
	}
	loads := make([]*workload, len(states))
	tallies := make([]*tally, len(states))
	for i, ts := range states {
		w, err := prepare(ctx, ts, op, opts.Concurrency, opts.PayloadSize)
		if err != nil {
			return nil, err
		}
		loads[i] = w
		tallies[i] = newTally(w.labels)
	}
	if opts.Warmup > 0 {
		for i, ts := range states {
			if err := runRound(ctx, ts.c, loads[i], opts.Concurrency, 0, opts.Warmup, nil); err != nil {
				return nil, fmt.Errorf("warm-up on %s: %w", ts.c.target.Name, err)
			}
		}
	}
	settle := settleTime(opts.Round)
	order := make([]int, len(states))
	for r := range rounds {
		// ABBA order: a drift in the machine's speed during the run
		// favours no target.
		for i := range order {
			order[i] = i
			if r%2 == 1 {
				order[i] = len(order) - 1 - i
			}
		}
		for _, i := range order {
			ts := states[i]
			if err := runRound(ctx, ts.c, loads[i], opts.Concurrency, settle, opts.Round, tallies[i]); err != nil {
				return nil, fmt.Errorf("round %d on %s: %w", r+1, ts.c.target.Name, err)
			}
			if opts.Progress != nil {
				t := tallies[i]
				fmt.Fprintf(opts.Progress, "%-28s %-6s round %2d/%d  %8.0f ops/s  %d errors\n",
					op, ts.c.target.Name, r+1, rounds, t.roundRates[len(t.roundRates)-1], t.errors)
			}
		}
	}
	rep := &OpReport{Op: op.String()}
	for i, ts := range states {
		rep.Targets = append(rep.Targets, tallies[i].report(ts.c.target.Name))
	}
	rep.setRatios()
	return rep, nil
}

// setRatios compares the targets: the first with the second when there
// are two (Ratio); when there are more (Ratios), every kmsd with every
// floor (the targets named floor…: the floor and the durable floor), or,
// without a floor, every other target with the last.
func (rep *OpReport) setRatios() {
	n := len(rep.Targets)
	if n == 2 {
		rep.Ratio = ratioOf(rep.Targets[0], rep.Targets[1])
		return
	}
	if n < 2 {
		return
	}
	var refs, others []Result
	for _, t := range rep.Targets {
		if strings.HasPrefix(t.Target, "floor") {
			refs = append(refs, t)
		} else {
			others = append(others, t)
		}
	}
	if len(refs) == 0 || len(others) == 0 {
		refs, others = rep.Targets[n-1:], rep.Targets[:n-1]
	}
	for _, ref := range refs {
		for _, t := range others {
			r := ratioOf(t, ref)
			r.Of = t.Target + "/" + ref.Target
			rep.Ratios = append(rep.Ratios, *r)
		}
	}
}

// tally accumulates one target's measured rounds of one op.
type tally struct {
	labels    []string
	latencies [][]time.Duration // of successful requests, by label
	errorsBy  [][]int64         // by label, then code index
	codes     []string
	errors    int64
	samples   map[string]string // the first message of each error code
	completed int64             // requests answered in the windows, errors included
	window    time.Duration
	client    cpuTimes
	server    cpuTimes
	serverOK  bool
	// roundRates are the successful requests per second of each round.
	roundRates []float64
}

func newTally(labels []string) *tally {
	return &tally{labels: labels, latencies: make([][]time.Duration, len(labels)), errorsBy: make([][]int64, len(labels)),
		samples: map[string]string{}, serverOK: true}
}

func (t *tally) codeIndex(code string) int {
	if i := slices.Index(t.codes, code); i >= 0 {
		return i
	}
	t.codes = append(t.codes, code)
	return len(t.codes) - 1
}

// worker is one request loop's state during a round.
type worker struct {
	rnd       *rand.Rand
	reqs      []*request
	cum       []int
	n         uint64
	latencies [][]time.Duration
	errs      []error // the measured window's failures, in order
	errLabels []int
}

func (w *worker) pick() *request {
	if len(w.reqs) == 1 {
		return w.reqs[0]
	}
	x := w.rnd.IntN(w.cum[len(w.cum)-1])
	for i, c := range w.cum {
		if x < c {
			return w.reqs[i]
		}
	}
	return w.reqs[len(w.reqs)-1]
}

// Phases of a round.
const (
	phaseSettle int32 = iota
	phaseMeasure
	phaseStop
)

func (w *worker) loop(ctx context.Context, c *client, phase *atomic.Int32) {
	for phase.Load() != phaseStop && ctx.Err() == nil {
		r := w.pick()
		start := time.Now()
		b, err := c.do(ctx, r.api, r.body, w.rnd)
		if err == nil {
			w.n++
			err = r.check(b, w.n)
		}
		d := time.Since(start)
		// Only answers that arrive inside the measured window count.
		if phase.Load() != phaseMeasure {
			continue
		}
		if err != nil {
			w.errs = append(w.errs, err)
			w.errLabels = append(w.errLabels, r.label)
			continue
		}
		w.latencies[r.label] = append(w.latencies[r.label], d)
	}
}

// runRound runs conc workers against c for settle, then measures for
// length into t (nil: a warm-up, nothing measured).
func runRound(ctx context.Context, c *client, wl *workload, conc int, settle, length time.Duration, t *tally) error {
	var phase atomic.Int32
	if t == nil {
		settle, length = length, 0
	}
	workers := make([]*worker, conc)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{
			rnd:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
			reqs:      wl.reqs[i],
			cum:       wl.cum,
			latencies: make([][]time.Duration, len(wl.labels)),
		}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, c, &phase) })
	}
	stop := func() {
		phase.Store(phaseStop)
		wg.Wait()
	}
	if err := sleep(ctx, settle); err != nil {
		stop()
		return err
	}
	if t == nil {
		stop()
		return nil
	}

	pid := c.target.PID
	s0, err := snapshot(pid)
	if err != nil {
		stop()
		return err
	}
	phase.Store(phaseMeasure)
	sleepErr := sleep(ctx, length)
	phase.Store(phaseStop)
	s1, err := snapshot(pid)
	wg.Wait()
	if sleepErr != nil {
		return sleepErr
	}
	if err != nil {
		return err
	}

	window := s1.at.Sub(s0.at)
	t.window += window
	var ok, failed int64
	for _, w := range workers {
		for label, ls := range w.latencies {
			t.latencies[label] = append(t.latencies[label], ls...)
			ok += int64(len(ls))
		}
		for i, err := range w.errs {
			code := codeOf(err)
			ci := t.codeIndex(code)
			by := t.errorsBy[w.errLabels[i]]
			for len(by) <= ci {
				by = append(by, 0)
			}
			by[ci]++
			t.errorsBy[w.errLabels[i]] = by
			if _, seen := t.samples[code]; !seen {
				t.samples[code] = err.Error()
			}
			failed++
		}
	}
	t.errors += failed
	t.completed += ok + failed
	t.client = t.client.add(s1.client.sub(s0.client))
	if s0.serverOK && s1.serverOK {
		t.server = t.server.add(s1.server.sub(s0.server))
	} else {
		t.serverOK = false
	}
	t.roundRates = append(t.roundRates, float64(ok)/window.Seconds())
	if ok == 0 && failed > 0 {
		// The server is down or refuses everything: stop rather than spin.
		for _, w := range workers {
			if len(w.errs) > 0 {
				return fmt.Errorf("every request of the round failed, e.g. %w", w.errs[0])
			}
		}
	}
	return nil
}

// cpuSnapshot is the clock and the CPU times at one instant.
type cpuSnapshot struct {
	at       time.Time
	client   cpuTimes
	server   cpuTimes
	serverOK bool
}

// snapshot reads the load generator's CPU time and, when pid is not 0,
// the server's.
func snapshot(pid int) (cpuSnapshot, error) {
	var s cpuSnapshot
	var err error
	if pid != 0 {
		if s.server, err = processCPU(pid); err != nil {
			return s, err
		}
		s.serverOK = true
	}
	// A platform without CPU accounting reports zero for the client.
	s.client, _ = selfCPU()
	s.at = time.Now()
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
