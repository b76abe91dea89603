#!/usr/bin/env bash
# The envelope CLI (kmsd encrypt / kmsd decrypt) on a file, against
# openssl on the same file, in one run (docs/envelope.md, "Performance"):
#
#   bench/envelope/cli.sh             # 1 GiB
#   MIB=256 bench/envelope/cli.sh
#
# openssl enc refuses AEAD ciphers (GCM), so the file-to-file reference is
# openssl enc -aes-256-ctr, single-threaded, which does less than GCM (no
# authentication); `openssl speed -evp aes-256-gcm` gives openssl's
# single-thread AES-256-GCM in memory, the ceiling of any single-threaded
# GCM tool. Files live in the work folder ($TMPDIR): its disk counts.
# kmsd serve listens on 127.0.0.1:47120 (LISTEN).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
mib=${MIB:-1024}
listen=${LISTEN:-127.0.0.1:47120}
work=$(mktemp -d)
serve_pid=
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/kmsd" ./cmd/kmsd)
"$work/kmsd" serve --data-dir "$work/data" --listen "$listen" >"$work/banner.txt" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 100); do grep -q 'aws kms create-key' "$work/banner.txt" 2>/dev/null && break; sleep 0.2; done
eval "$(grep '^export AWS_' "$work/banner.txt")"
key=$(aws kms create-key --query KeyMetadata.Arn --output text)

head -c "$((mib << 20))" /dev/urandom >"$work/plain"
sync

# run LABEL CMD...: wall time, throughput and peak RSS of CMD.
run() {
	local label=$1
	shift
	/usr/bin/time -f '%e %M' -o "$work/time" "$@"
	read -r secs kb <"$work/time"
	awk -v l="$label" -v s="$secs" -v kb="$kb" -v mib="$mib" \
		'BEGIN { printf "%-44s %7.2f s %8.0f MB/s %7.0f MB peak RSS\n", l, s, mib * 1.048576 / s, kb / 1024 }'
}

k=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
iv=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$mib MiB, $(nproc) cores"
run "openssl enc -aes-256-ctr (1 thread)" openssl enc -aes-256-ctr -K "$k" -iv "$iv" -in "$work/plain" -out "$work/ossl"
run "kmsd encrypt --suite 0478 (unsigned)" "$work/kmsd" encrypt -q --key "$key" --suite 0478 -o "$work/e0478" "$work/plain"
run "kmsd decrypt (0478)" "$work/kmsd" decrypt -q --key "$key" -o "$work/d0478" "$work/e0478"
cmp "$work/plain" "$work/d0478"
run "kmsd encrypt (default 0578, signed)" "$work/kmsd" encrypt -q --key "$key" -o "$work/e0578" "$work/plain"
run "kmsd decrypt (0578)" "$work/kmsd" decrypt -q --key "$key" -o "$work/d0578" "$work/e0578"
cmp "$work/plain" "$work/d0578"
echo "to /dev/null (the disk's write speed left out):"
run "openssl enc -aes-256-ctr (1 thread)" openssl enc -aes-256-ctr -K "$k" -iv "$iv" -in "$work/plain" -out /dev/null
run "kmsd encrypt --suite 0478 (unsigned)" "$work/kmsd" encrypt -q --key "$key" --suite 0478 -o /dev/null "$work/plain"
run "kmsd encrypt (default 0578, signed)" "$work/kmsd" encrypt -q --key "$key" -o /dev/null "$work/plain"
echo "openssl speed, AES-256-GCM, 16 KiB blocks, 1 thread, in memory:"
openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null | awk 'tolower($1) == "aes-256-gcm" { printf "  %.0f MB/s\n", $2 / 1000 }'
