#!/usr/bin/env bash
# Stops a local MCI stack left running by deploy/local/run.sh (`make stop`): the services and NATS
# by their pid files in .local/run/, then the PostgreSQL cluster in .local/pg. Data is kept.
# Safe to run when nothing is running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
PGDATA="$LOCAL/pg"
PG_BIN="${MCI_PG_BIN:-/usr/lib/postgresql/15/bin}"
[ -x "$PG_BIN/pg_ctl" ] || PG_BIN="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# stop NAME PATTERN: SIGTERM the pid in .local/run/NAME.pid if it still runs PATTERN, wait 15 s,
# then SIGKILL.
stop() {
  local file="$RUN/$1.pid" pid
  [ -s "$file" ] || return 0
  pid="$(cat "$file")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"; then
    echo "Stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $1 did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

stop marketplace marketplace-service
stop templates template-reference-service
stop catalog catalog-service
stop nats nats-server

if [ -s "$PGDATA/PG_VERSION" ] && [ -x "$PG_BIN/pg_ctl" ] &&
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  echo "Stopping PostgreSQL"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
echo "The local stack is stopped (data kept in .local/)."
