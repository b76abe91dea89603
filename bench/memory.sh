#!/usr/bin/env bash
# kmsd serve's memory with a million keys stored, for several cache sizes
# (the "Memory" section of docs/performance.md):
#
#   bench/memory.sh                                  # 1,000,000 keys; 1000, 10000, 100000
#   KEYS=200000 SIZES=10000 DURATION=20s bench/memory.sh
#
# Builds kmsd and bench/manykeys from this checkout; manykeys fills a
# temporary data folder through the store API, then drives DescribeKey
# over random keys against kmsd serve --key-cache-size SIZE for each size
# and prints kmsd's resident memory. Listens on 127.0.0.1:47110 (LISTEN).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$repo" && go build -o "$work/kmsd" ./cmd/kmsd && go build -o "$work/manykeys" ./bench/manykeys)
"$work/manykeys" -kmsd "$work/kmsd" -dir "$work" -keys "${KEYS:-1000000}" \
	-cache-sizes "${SIZES:-1000,10000,100000}" -duration "${DURATION:-60s}" \
	-listen "${LISTEN:-127.0.0.1:47110}" 2> >(grep -v 'level=INFO' >&2)
