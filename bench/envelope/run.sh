#!/usr/bin/env bash
# Throughput of package envelope against age on the same stream, in one run:
#
#   bench/envelope/run.sh            # 1 GiB, best of 2 runs
#   MIB=256 RUNS=1 bench/envelope/run.sh
#
# Builds agecompare.go in a temporary module that uses this checkout of kmsd
# and filippo.io/age from the Go module proxy (nothing is vendored, and the
# kmsd module does not depend on age).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
age_version=${AGE_VERSION:-v1.3.2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sed '/^\/\/go:build ignore$/d' "$repo/bench/envelope/agecompare.go" >"$work/main.go"
cd "$work"
go mod init kmsd-envelope-bench >/dev/null 2>&1
go mod edit -require=github.com/kmsd/kmsd@v0.0.0 -replace=github.com/kmsd/kmsd="$repo"
go get "filippo.io/age@$age_version" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
go build -o agecompare .
./agecompare -mib "${MIB:-1024}" -runs "${RUNS:-2}"
