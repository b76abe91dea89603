#!/usr/bin/env bash
# Where kmsd's CPU time goes under load: kmsd bench drives a kmsd serve
# (--spawn, with --pprof-listen and --metrics-listen), this script takes a
# CPU profile of it meanwhile, counts the requests served in the same
# window (kmsd_requests_total), and prints the CPU time per request of each
# concern of the request path.
#
#   bench/profile.sh                      # Encrypt, 30-second profile
#   OP=sign:ECC_NIST_P256 PROFILE_SECONDS=20 bench/profile.sh
#   KEEP=kmsd-encrypt.prof bench/profile.sh   # keep the profile (go tool pprof -http=: kmsd KEEP)
#
# The concerns overlap nowhere except "of which" lines; what no concern
# names is "other" (net/http's goroutine plumbing, the runtime, …).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
op=${OP:-encrypt}
seconds=${PROFILE_SECONDS:-30}
pprof_addr=${PPROF_ADDR:-127.0.0.1:6061}
metrics_addr=${METRICS_ADDR:-127.0.0.1:6062}
work=$(mktemp -d)
bench_pid=
cleanup() {
	[ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null && wait "$bench_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/kmsd" ./cmd/kmsd)
"$work/kmsd" bench --spawn --quiet --op "$op" --warmup 5s --duration "$((seconds + 15))s" \
	--serve-arg="--pprof-listen=$pprof_addr" --serve-arg="--metrics-listen=$metrics_addr" \
	"$@" >"$work/bench.txt" 2>&1 &
bench_pid=$!

requests() {
	curl -sf "http://$metrics_addr/metrics" | awk '/^kmsd_requests_total/ {n += $NF} END {printf "%d\n", n}'
}
for _ in $(seq 100); do
	requests >/dev/null 2>&1 && break
	sleep 0.2
done
sleep 7 # past the warm-up
# kmsd serve is kmsd bench's child; its CPU time (utime + stime, in ticks
# of 10 ms) over the profile's window checks the profile's total.
kmsd_pid=$(pgrep -P "$bench_pid" -f ' serve ' | head -n1)
ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$kmsd_pid/stat"; }
n0=$(requests)
t0=$(ticks)
curl -sf -o "$work/cpu.prof" "http://$pprof_addr/debug/pprof/profile?seconds=$seconds"
t1=$(ticks)
n1=$(requests)
wait "$bench_pid" || { cat "$work/bench.txt"; exit 1; }
bench_pid=
n=$((n1 - n0))

go tool pprof -top -cum -unit=ms -nodefraction=0 -edgefraction=0 -nodecount=100000 "$work/kmsd" "$work/cpu.prof" 2>/dev/null >"$work/top.txt"
[ -n "${KEEP:-}" ] && cp "$work/cpu.prof" "$KEEP"

echo "kmsd bench --op $op: $n requests in the ${seconds}s profile;" \
	"kmsd's CPU time over it (/proc): $(( (t1 - t0) * 10000000 / n / 1000 )) µs per request"
awk -v n="$n" '
function ms(s) { sub(/ms$/, "", s); return s + 0 }
/Total samples =/ { for (i = 1; i <= NF; i++) if ($i == "=") total = ms($(i + 1)) }
NF >= 6 && $4 ~ /ms$/ {
	name = $6; for (i = 7; i <= NF; i++) name = name " " $i
	cum[name] = ms($4)
}
function c(re,   k, v) { v = 0; for (k in cum) if (k ~ re && cum[k] > v) v = cum[k]; return v }
function line(label, v) { printf "  %-52s %7.1f µs  %5.1f %%\n", label, v * 1000 / n, 100 * v / total }
END {
	if (n <= 0) { print "no request counted"; exit 1 }
	handler = c("^github.com/kmsd/kmsd/internal/server\\.\\(\\*Server\\)\\.ServeHTTP$")
	http = c("^net/http\\.\\(\\*conn\\)\\.serve$") - handler
	body = c("^github.com/kmsd/kmsd/internal/server\\.readBody$")
	sig = c("^github.com/kmsd/kmsd/internal/sigv4\\.\\(\\*Verifier\\)\\.Verify$")
	dec = c("^github.com/kmsd/kmsd/internal/awsjson\\.decode")
	enc = c("^github.com/kmsd/kmsd/internal/awsjson\\.encode")
	authz = c("^github.com/kmsd/kmsd/internal/kms\\.\\(\\*Rule\\[.*\\]\\)\\.Check")
	svc = c("^github.com/kmsd/kmsd/internal/kms\\.\\(\\*Service\\)\\.(Encrypt|Decrypt|GenerateDataKey|Sign|Verify|GenerateMac|CreateKey|DescribeKey)$")
	arq = c("^github.com/kmsd/kmsd/internal/server\\.\\(\\*Server\\)\\.audit$")
	awr = c("^github.com/kmsd/kmsd/internal/audit\\.\\(\\*Log\\)\\.run$")
	met = c("^github.com/kmsd/kmsd/internal/metrics\\.\\(\\*Metrics\\)\\.ObserveRequest$")
	gc = c("^runtime\\.gcBgMarkWorker$")
	sched = c("^runtime\\.schedule$")
	printf "  %-52s %7.1f µs  %5.1f %%\n", "all (profile samples / requests)", total * 1000 / n, 100
	line("net/http: read request, write response, conn loop", http)
	line("reading the body (server.readBody)", body)
	line("SigV4 verify (internal/sigv4)", sig)
	line("  of which the signing key derivation", c("sigv4\\.deriveSigningKey$"))
	line("JSON decode (awsjson.decode)", dec)
	line("JSON encode (awsjson.encode)", enc)
	line("authorization (kms Rule.Check)", authz)
	line("the operation (kms Service method)", svc)
	line("  of which blob seal/open (keys.Seal, keys.Open)", c("internal/keys\\.Seal$") + c("internal/keys\\.Open$"))
	line("audit, request side (server.audit)", arq)
	line("  of which encoding the record (audit Log.Append)", c("internal/audit\\.\\(\\*Log\\)\\.Append$"))
	line("  of which the audited members (awsjson AuditedRequest)", c("awsjson\\.\\(\\*Route\\)\\.AuditedRequest"))
	line("audit writer goroutine (audit Log.run)", awr)
	line("  of which fsync (os.File.Sync)", c("^os\\.\\(\\*File\\)\\.Sync$"))
	line("metrics", met)
	line("GC background marking", gc)
	line("scheduler (runtime.schedule)", sched)
	rest = handler - body - sig - dec - enc - authz - svc - arq - met
	line("rest of the handler (headers, ids, routing, checks)", rest)
	line("runtime and net/http plumbing otherwise", total - http - handler - awr - gc - sched)
	line("malloc, within the above (runtime.mallocgc)", c("^runtime\\.mallocgc$"))
}' "$work/top.txt"
echo
sed -n '/^op /,$p' "$work/bench.txt"
