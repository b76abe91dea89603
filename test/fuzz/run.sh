#!/usr/bin/env bash
# Runs every fuzz target in the module for a short time, one after the
# other, and stops at the first failure. CI runs it on every change (.ci/run);
# run it by hand the same way, or longer: FUZZTIME=1m test/fuzz/run.sh, or
# for some packages only: test/fuzz/run.sh ./internal/sigv4 ./envelope.
#
# Time: the whole run is bounded. FUZZ_BUDGET seconds of fuzzing (default
# 80) are shared evenly among the targets found (at least 1s each), so that
# a new target costs the others time rather than lengthening the run;
# FUZZTIME (a go test -fuzztime value) instead gives each target that much.
# A new input that widens coverage is minimized for at most the target's
# time (go test's default, a minute per input, would overrun the budget).
# FUZZ_TIMEOUT seconds (default 240 when FUZZTIME is not set, else none; 0:
# none) bound the whole script, building the test binaries included: past
# it, the run is stopped and fails, saying so. The time taken is printed at
# the end. Each target costs about a second more than its fuzzing time
# (starting, gathering the corpus's coverage); building the instrumented
# binaries took 33s with a warm build cache and 196s with a cold one, on
# two cores shared with other builds.
#
# The targets are found by listing each test binary's Fuzz functions
# (-test.list), so a new Fuzz function is fuzzed without being registered
# here. A failure leaves the input that caused it in the package's
# testdata/fuzz/FuzzXxx/ folder: fix the parser, then commit that file as a
# regression seed (plain `go test` runs it).
#
# Each package's instrumented test binary is built once (go test -c -fuzz)
# and runs each of its targets in turn, as `go test -fuzz` would, with the
# same cache of interesting inputs: linking a binary per target would cost
# more than the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${KMSD_FUZZ_BOUNDED:-}" ]; then
  # This copy only bounds and times the run; the copy it starts fuzzes.
  if [ -n "${FUZZTIME:-}" ]; then
    limit=${FUZZ_TIMEOUT:-0}
  else
    limit=${FUZZ_TIMEOUT:-240}
  fi
  case $limit in
    '' | *[!0-9]*) echo "fuzz: FUZZ_TIMEOUT=$limit is not a number of seconds" >&2; exit 2 ;;
  esac
  start=$SECONDS
  rc=0
  # timeout stops the whole process group (the test binaries and their
  # fuzzing workers too); --kill-after ends what ignores SIGTERM.
  KMSD_FUZZ_BOUNDED=1 timeout --kill-after=10 "$limit" "$0" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "fuzz: stopped after ${limit}s (FUZZ_TIMEOUT): the run took longer than it may" >&2
    rc=1
  fi
  echo "fuzz: took $((SECONDS - start))s in all (limit: ${limit}s, 0 is none)"
  exit "$rc"
fi

budget=${FUZZ_BUDGET:-80}
case $budget in
  '' | *[!0-9]* | 0) echo "fuzz: FUZZ_BUDGET=$budget is not a positive number of seconds" >&2; exit 2 ;;
esac
patterns=("$@")
[ ${#patterns[@]} -gt 0 ] || patterns=(./...)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=$(go env GOCACHE)/fuzz

# Packages whose test files declare a Fuzz function.
pkgs=()
while read -r pkg dir files; do
  for f in $files; do
    if grep -q '^func Fuzz' "$dir/$f"; then
      pkgs+=("$pkg:$dir")
      break
    fi
  done
done < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{range .TestGoFiles}} {{.}}{{end}}{{range .XTestGoFiles}} {{.}}{{end}}{{end}}' "${patterns[@]}")

# Build every binary and list every target first: the budget is shared
# among them all.
start=$SECONDS
targets=()
for entry in "${pkgs[@]}"; do
  pkg=${entry%%:*}
  dir=${entry#*:}
  bin=$work/$(echo "$pkg" | tr '/' '_').test
  go test -c -fuzz '^Fuzz' -o "$bin" "$pkg"
  for name in $(cd "$dir" && "$bin" -test.list '^Fuzz'); do
    targets+=("$pkg:$dir:$bin:$name")
  done
done
count=${#targets[@]}
if [ "$count" -eq 0 ]; then
  echo "fuzz: no targets found" >&2
  exit 1
fi
if [ -n "${FUZZTIME:-}" ]; then
  fuzztime=$FUZZTIME minimize=60s testTimeout=0
else
  ms=$((budget * 1000 / count))
  [ "$ms" -ge 1000 ] || ms=1000
  fuzztime=${ms}ms minimize=${ms}ms testTimeout=$((ms / 1000 + 60))s
fi
echo "fuzz: $count targets built in $((SECONDS - start))s; fuzzing each for $fuzztime"

# fuzz runs one target; it fails when the target does.
fuzz() {
  # Run in the package's folder, as go test does: seeds are read from,
  # and a failing input written to, testdata/fuzz there.
  (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$fuzztime" \
    -test.fuzzminimizetime "$minimize" -test.fuzzcachedir "$cache/$pkg" -test.timeout "$testTimeout") >"$work/out" 2>&1
}

# inputs lists the failing inputs a target has written.
inputs() { ls "$dir/testdata/fuzz/$name" 2>/dev/null || true; }

start=$SECONDS
flaked=0
for target in "${targets[@]}"; do
  IFS=: read -r pkg dir bin name <<<"$target"
  t0=$SECONDS
  before=$(inputs)
  if ! fuzz; then
    # Go's fuzzing coordinator can fail a target at the end of its
    # -fuzztime with a bare "context deadline exceeded", having found
    # nothing, when the machine is busy (golang/go#75804): no failing
    # input is written. Such a target runs once more; a finding always
    # writes its input, and fails the run.
    if [ "$(inputs)" = "$before" ] && grep -q '^    context deadline exceeded$' "$work/out"; then
      echo "fuzz: $pkg $name: the fuzzing coordinator stopped late without a finding (golang/go#75804); once more"
      if fuzz; then
        echo "fuzz: $pkg $name ok ($((SECONDS - t0))s, second run)"
        continue
      fi
      if [ "$(inputs)" = "$before" ] && grep -q '^    context deadline exceeded$' "$work/out"; then
        echo "fuzz: $pkg $name: again stopped late without a finding; counted as not run" >&2
        flaked=$((flaked + 1))
        continue
      fi
    fi
    cat "$work/out"
    echo "fuzz: $pkg $name failed" >&2
    exit 1
  fi
  echo "fuzz: $pkg $name ok ($((SECONDS - t0))s)"
done
echo "fuzz: $count targets in $((SECONDS - start))s ($flaked not run: the coordinator's late stop twice)"
if [ $((flaked * 4)) -gt "$count" ]; then
  echo "fuzz: more than a quarter of the targets did not run: the machine is too busy for this run to mean anything" >&2
  exit 1
fi
