# shellcheck shell=bash
# script/lib/pg.sh: a throwaway PostgreSQL 15 cluster for the demo and tests. Sourced.
#
#   pg_temp_start DIR   initdb a cluster in DIR/data and start it on a free port of
#                       127.0.0.1, with its Unix socket in the private DIR/pgsock.
#                       Sets and exports PGHOST, PGPORT, PGUSER, PGPASSWORD (the
#                       superuser's, random), PGDATABASE=postgres, and sets
#                       PG_TEMP_DATA, PG_TEMP_SOCKET_DIR, PG_TEMP_LOG.
#   pg_temp_psql ARGS   psql as the superuser over TCP (-X, ON_ERROR_STOP).
#   pg_temp_stop        pg_ctl stop -m fast (safe to call twice).
#
# DIR is made owned by the `postgres` user when we are root: initdb and pg_ctl
# refuse to run as root, so they run as postgres through setpriv. (Not runuser
# or su: their PAM session resets the open-file limit to 1024.) The cluster
# never depends on Debian's default cluster on port 5432.
# Needs script/lib/common.sh sourced first.

PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
PG_TEMP_DATA=""
PG_TEMP_SOCKET_DIR=""
PG_TEMP_LOG=""

# Run a command as the owner of the cluster: postgres when we are root, else us.
pg_as_owner() {
  if [[ $EUID -eq 0 ]]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

pg_temp_start() {
  local dir="$1" pwfile attempt
  [[ -x "$PG_BINDIR/initdb" ]] || tp_die "$PG_BINDIR/initdb not found: run script/bootstrap"
  PG_TEMP_DATA="$dir/data"
  PG_TEMP_SOCKET_DIR="$dir/pgsock"
  PG_TEMP_LOG="$dir/postgresql.log"
  mkdir -p "$PG_TEMP_SOCKET_DIR"
  # DIR stays readable so that sockets placed there (tidepool's) are reachable;
  # the data directory (initdb makes it 0700) and the socket directory are private.
  chmod 0755 "$dir"
  chmod 0700 "$PG_TEMP_SOCKET_DIR"
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres "$dir" "$PG_TEMP_SOCKET_DIR"
  fi

  PGPASSWORD="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  pwfile="$dir/superuser.pw"
  (umask 077 && printf '%s\n' "$PGPASSWORD" >"$pwfile")
  if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$pwfile"; fi

  # The tools chdir nowhere; give them a cwd postgres can read.
  (cd "$dir" && pg_as_owner "$PG_BINDIR/initdb" -D "$PG_TEMP_DATA" -U postgres \
    --pwfile="$pwfile" -A scram-sha-256 -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1) \
    || { cat "$dir/initdb.log" >&2; tp_die "initdb failed"; }
  rm -f "$pwfile"

  # The port is probed, then bound by the postmaster a moment later: if someone
  # else took it in between, try another one.
  for attempt in 1 2 3; do
    PGPORT="$(tp_free_port)"
    cat >"$PG_TEMP_DATA/postgresql.auto.conf" <<EOF
# Written by script/lib/pg.sh for a throwaway test cluster.
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_TEMP_SOCKET_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    if [[ $EUID -eq 0 ]]; then chown postgres:postgres "$PG_TEMP_DATA/postgresql.auto.conf"; fi
    if (cd "$dir" && pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_TEMP_DATA" -l "$PG_TEMP_LOG" \
          -w -t 60 start >/dev/null); then
      break
    fi
    if [[ $attempt -eq 3 ]] || ! grep -q 'could not bind\|could not create any TCP/IP sockets' "$PG_TEMP_LOG" 2>/dev/null; then
      cat "$PG_TEMP_LOG" >&2 || true
      tp_die "PostgreSQL did not start"
    fi
  done

  PGHOST=127.0.0.1
  PGUSER=postgres
  PGDATABASE=postgres
  export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
}

pg_temp_psql() {
  PGCONNECT_TIMEOUT=10 "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres "$@"
}

pg_temp_stop() {
  if [[ -n "$PG_TEMP_DATA" && -f "$PG_TEMP_DATA/postmaster.pid" ]]; then
    (cd "$(dirname "$PG_TEMP_DATA")" && pg_as_owner "$PG_BINDIR/pg_ctl" -D "$PG_TEMP_DATA" \
      -m fast -w -t 60 stop >/dev/null) || true
  fi
}
