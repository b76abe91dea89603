#!/usr/bin/env bash
# Runs every fuzz target in the module for a short fixed time, one after the
# other, and stops at the first failure. CI runs it on every change (.ci/run);
# run it by hand the same way, or longer: FUZZTIME=1m test/fuzz/run.sh, or
# for some packages only: test/fuzz/run.sh ./internal/sigv4 ./envelope.
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

fuzztime=${FUZZTIME:-3s}
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

start=$SECONDS
count=0
for entry in "${pkgs[@]}"; do
  pkg=${entry%%:*}
  dir=${entry#*:}
  bin=$work/$(basename "$dir").test
  go test -c -fuzz '^Fuzz' -o "$bin" "$pkg"
  names=$(cd "$dir" && "$bin" -test.list '^Fuzz')
  for name in $names; do
    t0=$SECONDS
    # Run in the package's folder, as go test does: seeds are read from,
    # and a failing input written to, testdata/fuzz there.
    if ! (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$fuzztime" \
      -test.fuzzcachedir "$cache/$pkg" -test.timeout 10m) >"$work/out" 2>&1; then
      cat "$work/out"
      echo "fuzz: $pkg $name failed" >&2
      exit 1
    fi
    count=$((count + 1))
    echo "fuzz: $pkg $name ok ($((SECONDS - t0))s)"
  done
done
if [ $count -eq 0 ]; then
  echo "fuzz: no targets found" >&2
  exit 1
fi
echo "fuzz: $count targets in $((SECONDS - start))s"
