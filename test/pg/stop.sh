#!/usr/bin/env bash
# Stops the cluster test/pg/start.sh started in DIR and removes DIR.
set -euo pipefail

bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
dir=${1:?usage: stop.sh DIR}
if [ -f "$dir/data/postmaster.pid" ]; then
  as=()
  if [ "$(id -u)" = 0 ]; then
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
fi
rm -rf "$dir"
