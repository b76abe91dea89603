package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	Concurrency  int          `json:"concurrency"`
	PayloadBytes int          `json:"payload_bytes"`
	Rounds       int          `json:"rounds"`
	RoundSeconds float64      `json:"round_seconds"`
	WarmupSecs   float64      `json:"warmup_seconds"`
	Targets      []TargetInfo `json:"targets"`
	Ops          []OpReport   `json:"ops"`
}

// TargetInfo names a target of the run.
type TargetInfo struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	PID      int    `json:"pid,omitempty"`
	Binary   string `json:"binary,omitempty"`
}

// OpReport is one op's figures on every target.
type OpReport struct {
	Op      string   `json:"op"`
	Targets []Result `json:"targets"`
	// Ratio compares the first target with the second (kmsd to the
	// floor), when there are two.
	Ratio *Ratio `json:"ratio,omitempty"`
	// Ratios compares every other target with the last, the floor, when
	// there are more than two (builds compared in one run: kmsd bench
	// --spawn --floor --kmsd OLD,NEW).
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Result is what one target did over the measured rounds of one op.
type Result struct {
	Target string `json:"target"`
	// Requests counts successful answers in the measured windows, whose
	// total length is Seconds.
	Requests  int64   `json:"requests"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// Errors counts failed requests; ErrorCodes by AWS exception (or
	// Transport, Malformed, Mismatch), ErrorSamples the first message of
	// each.
	Errors       int64             `json:"errors"`
	ErrorCodes   map[string]int64  `json:"error_codes,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// Latency of successful requests, in microseconds.
	Latency Latency `json:"latency_us"`
	// ClientCPU is the load generator's CPU time per answered request, in
	// microseconds (0 where the platform does not report it).
	ClientCPU float64 `json:"client_cpu_us_per_request"`
	// ServerCPU is the server process's CPU time per answered request, in
	// microseconds, user and system included; nil when the server's
	// process is not known.
	ServerCPU       *float64 `json:"server_cpu_us_per_request,omitempty"`
	ServerCPUUser   *float64 `json:"server_cpu_user_us_per_request,omitempty"`
	ServerCPUSystem *float64 `json:"server_cpu_system_us_per_request,omitempty"`
	// RoundOpsPerSec is the throughput of each round, for judging noise.
	RoundOpsPerSec []float64 `json:"round_ops_per_sec"`
	// Breakdown is given for a blend of operations (mixed): each one's
	// share.
	Breakdown []Share `json:"breakdown,omitempty"`
}

// Latency percentiles and maximum, in microseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Share is one operation of a blend.
type Share struct {
	Op       string  `json:"op"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Latency `json:"latency_us"`
}

// Ratio is a target's figures divided by another's (kmsd's by the
// floor's): below 1 for throughput, above 1 for latency and CPU.
type Ratio struct {
	// Of names the two targets ("kmsd/floor"); set in OpReport.Ratios.
	Of        string   `json:"of,omitempty"`
	OpsPerSec float64  `json:"ops_per_sec"`
	P50       float64  `json:"p50"`
	P99       float64  `json:"p99"`
	ServerCPU *float64 `json:"server_cpu,omitempty"`
}

func latencyOf(ls []time.Duration) Latency {
	if len(ls) == 0 {
		return Latency{}
	}
	slices.Sort(ls)
	q := func(p float64) float64 {
		// Nearest rank.
		i := int(float64(len(ls))*p+0.999999) - 1
		return micros(ls[max(0, min(i, len(ls)-1))])
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: micros(ls[len(ls)-1])}
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func (t *tally) report(target string) Result {
	r := Result{Target: target, Seconds: t.window.Seconds(), Errors: t.errors, RoundOpsPerSec: t.roundRates}
	var all []time.Duration
	for _, ls := range t.latencies {
		r.Requests += int64(len(ls))
		all = append(all, ls...)
	}
	if r.Seconds > 0 {
		r.OpsPerSec = float64(r.Requests) / r.Seconds
	}
	r.Latency = latencyOf(all)
	if t.errors > 0 {
		r.ErrorCodes = map[string]int64{}
		r.ErrorSamples = map[string]string{}
		for _, by := range t.errorsBy {
			for ci, n := range by {
				r.ErrorCodes[t.codes[ci]] += n
			}
		}
		for code, msg := range t.samples {
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			r.ErrorSamples[code] = msg
		}
	}
	if t.completed > 0 {
		per := func(d time.Duration) float64 { return micros(d) / float64(t.completed) }
		r.ClientCPU = per(t.client.total())
		if t.serverOK {
			total, user, sys := per(t.server.total()), per(t.server.User), per(t.server.System)
			r.ServerCPU, r.ServerCPUUser, r.ServerCPUSystem = &total, &user, &sys
		}
	}
	if len(t.labels) > 1 {
		for i, label := range t.labels {
			s := Share{Op: label, Requests: int64(len(t.latencies[i])), Latency: latencyOf(t.latencies[i])}
			for _, n := range t.errorsBy[i] {
				s.Errors += n
			}
			r.Breakdown = append(r.Breakdown, s)
		}
	}
	return r
}

func ratioOf(a, b Result) *Ratio {
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	r := &Ratio{OpsPerSec: div(a.OpsPerSec, b.OpsPerSec), P50: div(a.Latency.P50, b.Latency.P50), P99: div(a.Latency.P99, b.Latency.P99)}
	if a.ServerCPU != nil && b.ServerCPU != nil {
		c := div(*a.ServerCPU, *b.ServerCPU)
		r.ServerCPU = &c
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteText writes the report as a table, then the errors.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%d requests in flight per target, %d-byte payloads, %d rounds of %s per op and target (warm-up %s)\n",
		r.Concurrency, r.PayloadBytes, r.Rounds, secs(r.RoundSeconds), secs(r.WarmupSecs))
	for _, t := range r.Targets {
		pid := "CPU not measured"
		if t.PID != 0 {
			pid = fmt.Sprintf("pid %d", t.PID)
		}
		if t.Binary != "" {
			pid += ", " + t.Binary
		}
		fmt.Fprintf(w, "  %-11s %s (%s)\n", t.Name, t.Endpoint, pid)
	}
	fmt.Fprintln(w)
	const row = "%-28s %-16s %8s %9s %9s %9s %9s %7s %14s %14s\n"
	fmt.Fprintf(w, row, "op", "target", "ops/s", "p50", "p90", "p99", "max", "errors", "client µs/req", "server µs/req")
	for _, op := range r.Ops {
		for i, t := range op.Targets {
			name := ""
			if i == 0 {
				name = op.Op
			}
			server := "-"
			if t.ServerCPU != nil {
				server = fmt.Sprintf("%.1f", *t.ServerCPU)
			}
			fmt.Fprintf(w, row, name, t.Target, fmt.Sprintf("%.0f", t.OpsPerSec), dur(t.Latency.P50), dur(t.Latency.P90),
				dur(t.Latency.P99), dur(t.Latency.Max), fmt.Sprint(t.Errors), fmt.Sprintf("%.1f", t.ClientCPU), server)
			for _, s := range t.Breakdown {
				fmt.Fprintf(w, row, "", "  "+s.Op, fmt.Sprintf("%.0f", float64(s.Requests)/t.Seconds), dur(s.Latency.P50),
					dur(s.Latency.P90), dur(s.Latency.P99), dur(s.Latency.Max), fmt.Sprint(s.Errors), "", "")
			}
		}
		ratios := op.Ratios
		if op.Ratio != nil && len(op.Targets) == 2 {
			r := *op.Ratio
			r.Of = op.Targets[0].Target + "/" + op.Targets[1].Target
			ratios = []Ratio{r}
		}
		for _, r := range ratios {
			cpu := "-"
			if r.ServerCPU != nil {
				cpu = fmt.Sprintf("×%.2f", *r.ServerCPU)
			}
			fmt.Fprintf(w, row, "", r.Of, fmt.Sprintf("×%.2f", r.OpsPerSec),
				fmt.Sprintf("×%.2f", r.P50), "", fmt.Sprintf("×%.2f", r.P99), "", "", "", cpu)
		}
	}
	var errs []string
	for _, op := range r.Ops {
		for _, t := range op.Targets {
			codes := make([]string, 0, len(t.ErrorCodes))
			for c := range t.ErrorCodes {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			for _, c := range codes {
				errs = append(errs, fmt.Sprintf("  %s on %s: %d × %s (first: %s)", op.Op, t.Target, t.ErrorCodes[c], c, t.ErrorSamples[c]))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nerrors:\n%s\n", strings.Join(errs, "\n"))
	}
	return nil
}

// dur formats microseconds for the table.
func dur(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

func secs(s float64) string { return time.Duration(s * float64(time.Second)).String() }
