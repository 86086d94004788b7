#!/usr/bin/env bash
# Start or stop a throwaway PgBouncer in front of the local PostgreSQL, for the tests.
#
#   .ci/pgbouncer.sh start DIR PORT [SETTING=VALUE ...]   prints the test variables to export
#   .ci/pgbouncer.sh stop DIR
#
# The config lives in DIR (created, handed to the postgres user when run as root,
# since PgBouncer refuses to run as root). Logins are not checked (auth_type trust;
# the PostgreSQL behind it trusts loopback too). Databases:
#   sw_session      -> postgres, pool_mode=session
#   sw_transaction  -> postgres, pool_mode=transaction
#   sw_tiny         -> postgres, pool_mode=session, pool_size=1 (to make clients wait)
#   sw_tiny_transaction -> the same in pool_mode=transaction
#   *               -> the database of the same name, session mode
# Extra SETTING=VALUE pairs go to the [pgbouncer] section (query_wait_timeout=2 …).
# PGBOUNCER_PG_HOST / PGBOUNCER_PG_PORT / PGBOUNCER_USERS (space separated, default
# "postgres") say where PostgreSQL listens and which users may log in.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT [SETTING=VALUE ...] | stop DIR" >&2; exit 2; }

command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || usage

pidfile="$dir/pgbouncer.pid"

stop() {
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "$command" in
  stop)
    stop
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

port="${3:-}"
[ -n "$port" ] || usage
shift 3

binary="$(command -v pgbouncer || true)"
[ -n "$binary" ] || binary=/usr/sbin/pgbouncer
[ -x "$binary" ] || { echo "pgbouncer.sh: pgbouncer is not installed (apt-get install pgbouncer)" >&2; exit 3; }

pg_host="${PGBOUNCER_PG_HOST:-127.0.0.1}"
pg_port="${PGBOUNCER_PG_PORT:-5432}"
users="${PGBOUNCER_USERS:-postgres}"

mkdir -p "$dir"
stop
server="host=$pg_host port=$pg_port"
{
  echo "[databases]"
  echo "sw_session = $server dbname=postgres pool_mode=session"
  echo "sw_transaction = $server dbname=postgres pool_mode=transaction"
  echo "sw_tiny = $server dbname=postgres pool_mode=session pool_size=1"
  echo "sw_tiny_transaction = $server dbname=postgres pool_mode=transaction pool_size=1"
  echo "* = $server"
  echo "[pgbouncer]"
  echo "listen_addr = 127.0.0.1"
  echo "listen_port = $port"
  echo "unix_socket_dir ="
  echo "auth_type = trust"
  echo "auth_file = $dir/userlist.txt"
  echo "admin_users = postgres"
  echo "stats_users = postgres"
  echo "pidfile = $pidfile"
  echo "logfile = $dir/pgbouncer.log"
  echo "default_pool_size = 40"
  echo "max_client_conn = 200"
  echo "server_reset_query = DISCARD ALL"
  echo "ignore_startup_parameters = extra_float_digits"
  for setting in "$@"; do
    echo "${setting%%=*} = ${setting#*=}"
  done
} >"$dir/pgbouncer.ini"
: >"$dir/userlist.txt"
for user in $users; do
  echo "\"$user\" \"\"" >>"$dir/userlist.txt"
done

if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$dir"
  runuser -u postgres -- "$binary" -d -q "$dir/pgbouncer.ini"
else
  "$binary" -d -q "$dir/pgbouncer.ini"
fi

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    base="postgresql://postgres@127.0.0.1:$port"
    echo "export SESSIONWARD_TEST_PGBOUNCER_ADMIN_DSN=$base/pgbouncer"
    echo "export SESSIONWARD_TEST_PGBOUNCER_SESSION_DSN=$base/sw_session"
    echo "export SESSIONWARD_TEST_PGBOUNCER_TRANSACTION_DSN=$base/sw_transaction"
    exit 0
  fi
  sleep 0.05
done
echo "pgbouncer.sh: PgBouncer did not start on 127.0.0.1:$port; see $dir/pgbouncer.log" >&2
tail -n 5 "$dir/pgbouncer.log" >&2 2>/dev/null || true
exit 1
