package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// pprofFlag is kmsd serve's opt-in profiling listener: --pprof-listen ADDR
// (env KMSD_PPROF_LISTEN) serves net/http/pprof at
// http://ADDR/debug/pprof/, for profiling kmsd under load (kmsd bench
// --spawn --serve-arg=--pprof-listen=127.0.0.1:6060). Loopback only: the
// profiles show the program's internals. It is taken out of the arguments
// before the configuration reads them, so that the configuration does not
// need to know it.
const pprofFlag = "pprof-listen"

const pprofUsage = `  -pprof-listen address
    	loopback address of a net/http/pprof listener, for profiling (env KMSD_PPROF_LISTEN; default off)
`

// serveWithPprof is kmsd serve with the --pprof-listen flag.
func serveWithPprof(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	addr, rest, err := takePprofFlag(args)
	if err != nil {
		return err
	}
	if addr == "" {
		addr = getenv("KMSD_PPROF_LISTEN")
	}
	if addr != "" {
		if err := startPprof(ctx, addr, stderr); err != nil {
			return err
		}
	}
	err = serve(ctx, rest, stdout, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, pprofUsage)
	}
	return err
}

// takePprofFlag returns the value of --pprof-listen (-pprof-listen, with
// "=" or as the next argument) and the other arguments.
func takePprofFlag(args []string) (addr string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return addr, append(rest, args[i:]...), nil
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != pprofFlag {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", nil, fmt.Errorf("flag needs an argument: -%s", pprofFlag)
			}
			i++
			value = args[i]
		}
		addr = value
	}
	return addr, rest, nil
}

// startPprof serves net/http/pprof on addr, a loopback address, until ctx
// ends.
func startPprof(ctx context.Context, addr string, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: %w", pprofFlag, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--%s %q: profiles show kmsd's internals, so the listener must be on a loopback address", pprofFlag, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--%s: %w", pprofFlag, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stderr, "kmsd: pprof listening at http://%s/debug/pprof/\n", ln.Addr())
	return nil
}
