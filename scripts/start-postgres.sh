#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the PostgreSQL half of the tests.
# Installs the server with apt when it is missing (CI machines start without one).
# Prints the database URL on stdout; everything else goes to stderr.
set -euo pipefail
PORT="${GROUPSYNC_PG_PORT:-54329}"
DATA="${GROUPSYNC_PG_DATA:-/tmp/groupsync-pg-$PORT}"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN="$(find_bin || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "installing postgresql with apt-get ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)"
fi

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "postgresql already accepting connections on port $PORT" >&2
else
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null
  # Members of gs_password_checked must give their password (the wrong-password test);
  # everyone else is trusted, as a throwaway test server may be.
  { echo "host all +gs_password_checked 127.0.0.1/32 scram-sha-256"; cat "$DATA/pg_hba.conf"; } \
    > "$DATA/pg_hba.conf.new" && mv "$DATA/pg_hba.conf.new" "$DATA/pg_hba.conf"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA/pg_hba.conf"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
