#!/usr/bin/env bash
# kmsd against the floor (a bare SigV4 + JSON + crypto server), in one run:
# the table of docs/performance.md.
#
#   bench/run.sh                      # 10 s per op and server, 16 requests in flight
#   DURATION=30s CONCURRENCY=32 bench/run.sh
#   bench/run.sh --json >result.json  # further flags go to kmsd bench
#
# Builds kmsd from this checkout, then runs kmsd bench --spawn --floor: a
# kmsd serve on a fresh data folder (under $TMPDIR: put it on the disk a
# real kmsd would use, its fsyncs count) and the floor, each in a process
# of its own, measured alternately round by round.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$repo" && go build -o "$work/kmsd" ./cmd/kmsd)
"$work/kmsd" bench --spawn --floor \
	--op "${OPS:-encrypt,decrypt,generate-data-key,sign:ECC_NIST_P256,sign:ECC_NIST_EDWARDS25519,generate-mac,create-key}" \
	--concurrency "${CONCURRENCY:-16}" --duration "${DURATION:-10s}" "$@"
