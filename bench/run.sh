#!/usr/bin/env bash
# kmsd against the floor (a bare SigV4 + JSON + crypto server), in one run:
# the table of docs/performance.md.
#
#   bench/run.sh                      # 10 s per op and server, 16 requests in flight
#   DURATION=30s CONCURRENCY=32 bench/run.sh
#   bench/run.sh --json >result.json  # further flags go to kmsd bench
#   BASE=main~3 OPS=encrypt bench/run.sh   # that revision too: before and after in one run
#
# Builds kmsd from this checkout, then runs kmsd bench --spawn --floor
# --durable-floor: a kmsd serve on a fresh data folder (under $TMPDIR: put
# it on the disk a real kmsd would use, its fsyncs count), the floor and the
# durable floor (the floor plus a line per request fsynced before its
# answer, in $TMPDIR too), each in a process of its own, measured
# alternately round by round. With BASE, kmsd is also
# built at that revision (from a temporary git worktree) and measured in
# the same rounds: kmsd-1 is BASE, kmsd-2 this checkout, each with its
# ratios to the floor.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
cleanup() {
	if [ -d "$work/base" ]; then
		git -C "$repo" worktree remove --force "$work/base" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/kmsd" ./cmd/kmsd)
binaries=$work/kmsd
if [ -n "${BASE:-}" ]; then
	git -C "$repo" worktree add --detach --quiet "$work/base" "$BASE"
	(cd "$work/base" && go build -o "$work/kmsd-base" ./cmd/kmsd)
	binaries=$work/kmsd-base,$work/kmsd
fi
"$work/kmsd" bench --spawn --floor --durable-floor --kmsd "$binaries" \
	--op "${OPS:-encrypt,decrypt,generate-data-key,sign:ECC_NIST_P256,sign:ECC_NIST_EDWARDS25519,generate-mac,create-key}" \
	--concurrency "${CONCURRENCY:-16}" --duration "${DURATION:-10s}" "$@"
