#!/usr/bin/env bash
# Throwaway PostgreSQL for the tests: `start DIR` prints a URL on stdout, `stop DIR` stops it.
#
#   url=$(.ci/postgres.sh start /tmp/skpg)   # initdb (as an unprivileged user when run as root),
#                                            # 127.0.0.1, a free port, socket in DIR
#   .ci/postgres.sh stop /tmp/skpg
#
# Installs Debian's postgresql package when no server binaries are found (CI runs on a fresh machine).
set -euo pipefail
cmd=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}
OSUSER=${PGOSUSER:-skpg}

find_bin() {
  for d in "${PGBIN:-}" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$OSUSER" -- "$@"; else "$@"; fi; }

case $cmd in
start)
  if ! bin=$(find_bin); then
    echo "postgres.sh: no PostgreSQL server found; installing Debian's postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >/dev/null
    bin=$(find_bin)
  fi
  if [ "$(id -u)" = 0 ] && ! id "$OSUSER" >/dev/null 2>&1; then useradd -M -r -s /usr/sbin/nologin "$OSUSER"; fi
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown "$OSUSER" "$dir"
  chmod 700 "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
         echo $((20000 + RANDOM % 20000)))
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >"$dir/initdb.log" 2>&1
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 -c fsync=on" start >&2
  echo "$port" >"$dir/port"
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  bin=$(find_bin) || exit 0
  [ -f "$dir/data/postmaster.pid" ] || exit 0
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  ;;
*) echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac
