#!/usr/bin/env bash
# Starts a private PostgreSQL 15 cluster for the tests and prints the shell
# line that points them at it:
#
#   pgdir=$(mktemp -d)
#   pgenv=$(test/pg/start.sh "$pgdir") && eval "$pgenv"
#   go test ./internal/store/postgres/...
#   test/pg/stop.sh "$pgdir"
#
# The cluster lives in DIR (default: a new temporary folder): its data in
# DIR/data, its log in DIR/postgres.log and its unix socket in DIR itself.
# It listens on no TCP address at all (listen_addresses=''), lets local
# socket connections in without a password (trust: only users of this
# machine who can reach DIR can connect; but the role kmsd_password_test,
# which the tests of a wrong password use, must give its password) and
# keeps fsync on, so that the durability the store promises is what the
# tests exercise.
#
# initdb and postgres refuse to run as root; run as root, the script runs
# them as the postgres user (runuser) and gives that user DIR, which must
# then be reachable by it (a folder under /tmp is).
set -euo pipefail

bindir=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
if [ ! -x "$bindir/initdb" ]; then
  echo "start.sh: $bindir/initdb not found: install PostgreSQL 15 (apt-get install postgresql) or set PG_BINDIR" >&2
  exit 1
fi

dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ -e "$dir/data" ]; then
  echo "start.sh: $dir/data exists already; give an empty folder" >&2
  exit 1
fi

as=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$dir"
  as=(runuser -u postgres --)
fi
chmod 700 "$dir"

if ! "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=reject \
  --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
  echo "start.sh: initdb failed:" >&2
  cat "$dir/initdb.log" >&2
  exit 1
fi

# Local socket connections only, with trust; nothing over TCP. The one
# exception, kmsd_password_test, must give its password: the tests of a
# wrong password create that role.
printf 'local all kmsd_password_test scram-sha-256\nlocal all all trust\n' >"$dir/data/pg_hba.conf"
cat >>"$dir/data/postgresql.conf" <<CONF

# test/pg/start.sh: a private test cluster.
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
CONF

if ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
  echo "start.sh: the cluster did not start:" >&2
  cat "$dir/postgres.log" >&2 || true
  exit 1
fi
if ! "${as[@]}" "$bindir/psql" -h "$dir" -U postgres -d postgres -qAt -c 'SELECT 1' >/dev/null; then
  echo "start.sh: the cluster started but does not answer on $dir" >&2
  exit 1
fi

echo "export KMSD_TEST_POSTGRES_DSN='host=$dir user=postgres dbname=postgres sslmode=disable'"
echo "# stop it with: test/pg/stop.sh $dir"
