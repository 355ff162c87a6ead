#!/usr/bin/env bash
# Runs the MCI stack on this machine (`make run`): PostgreSQL, NATS JetStream and whichever of the
# three services are built, all on 127.0.0.1, with their data under .local/ (reused next time).
#
#   PostgreSQL  127.0.0.1:55432, cluster in .local/pg, databases catalog, templates, marketplace
#   NATS        127.0.0.1:4222 (JetStream store in .local/nats, no HTTP monitor)
#   catalog     gRPC 50051, HTTP 9091     build/services/catalog/catalog-service
#   marketplace gRPC 50052, HTTP 9092     build/services/marketplace/marketplace-service
#   templates   gRPC 50053, HTTP 9093     build/services/templates/template-reference-service
#
# Logs go to .local/logs/<name>.log, pid files to .local/run/. The script stays in the foreground;
# Ctrl-C stops what it started. `deploy/local/stop.sh` (`make stop`) stops a stack left running.
# Running it again while the stack is up starts only what is missing.
#
# Environment: MCI_BUILD_DIR (default build), MCI_PG_BIN (PostgreSQL binaries, default
# /usr/lib/postgresql/15/bin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
BUILD="${MCI_BUILD_DIR:-$ROOT/build}"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PG_BIN="${MCI_PG_BIN:-/usr/lib/postgresql/15/bin}"
[ -x "$PG_BIN/pg_ctl" ] || PG_BIN="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
PGDATA="$LOCAL/pg"
PG_PORT=55432
NATS_PORT=4222
LOGS="$LOCAL/logs"
RUN="$LOCAL/run"
MCICTL="$BUILD/tools/mcictl/mcictl"

# name binary grpc-port http-port database extra-flags...
SERVICES=(
  "catalog|$BUILD/services/catalog/catalog-service|50051|9091|catalog|--templates-address=127.0.0.1:50053 --inventory-file=$ROOT/deploy/inventory.json"
  "templates|$BUILD/services/templates/template-reference-service|50053|9093|templates|--catalog-address=127.0.0.1:50051"
  "marketplace|$BUILD/services/marketplace/marketplace-service|50052|9092|marketplace|--catalog-address=127.0.0.1:50051 --templates-address=127.0.0.1:50053"
)

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
tail_log() {
  if [ -f "$1" ]; then
    { say "----- last lines of $1 -----"; tail -n 30 "$1"; say "-----"; } >&2
  fi
}

# Runs a command as the owner of the PostgreSQL cluster (postgres when we are root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# alive PIDFILE PATTERN: the pid in PIDFILE runs a command line containing PATTERN.
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# http_status URL: the HTTP status code, 000 when unreachable.
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# What this invocation started, stopped in reverse order on exit.
STARTED_SERVICES=()
STARTED_NATS=0
STARTED_PG=0

stop_pid() {  # stop_pid PIDFILE NAME
  local pid i
  [ -s "$1" ] || return 0
  pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "  $2 did not stop within 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$1"
}

cleanup() {
  local status=$? i
  trap '' INT TERM HUP
  trap - EXIT
  if [ "${#STARTED_SERVICES[@]}" -gt 0 ] || [ "$STARTED_NATS" = 1 ] || [ "$STARTED_PG" = 1 ]; then
    say ""
    say "Stopping the local stack..."
  fi
  for ((i = ${#STARTED_SERVICES[@]} - 1; i >= 0; i--)); do
    say "  ${STARTED_SERVICES[$i]}"
    stop_pid "$RUN/${STARTED_SERVICES[$i]}.pid" "${STARTED_SERVICES[$i]}"
  done
  if [ "$STARTED_NATS" = 1 ]; then
    say "  nats"
    stop_pid "$RUN/nats.pid" nats-server
  fi
  if [ "$STARTED_PG" = 1 ]; then
    say "  postgres"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

command -v nats-server >/dev/null || die "nats-server is not installed (apt-get install nats-server)."
[ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL binaries not found; set MCI_PG_BIN (e.g. /usr/lib/postgresql/15/bin)."
command -v curl >/dev/null || die "curl is not installed."

mkdir -p "$LOCAL" "$LOGS" "$RUN" "$LOCAL/nats"

# ---- PostgreSQL ------------------------------------------------------------------------------
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  say "Creating the PostgreSQL cluster in .local/pg"
  mkdir -p "$PGDATA"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user (PostgreSQL refuses root)."
    chown postgres:postgres "$PGDATA"
    runuser -u postgres -- test -w "$PGDATA" ||
      die "the postgres user cannot reach $PGDATA (a parent directory is not traversable)."
  fi
  chmod 700 "$PGDATA"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres -E UTF8 --locale=C >"$LOGS/initdb.log" 2>&1 ||
    { tail_log "$LOGS/initdb.log"; die "initdb failed."; }
  cat <<EOF | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null

# Local MCI stack (deploy/local/run.sh)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
EOF
fi
touch "$LOGS/postgres.log"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$LOGS/postgres.log"
if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
else
  say "Starting PostgreSQL on 127.0.0.1:$PG_PORT"
  STARTED_PG=1
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" -w -t 60 start >/dev/null ||
    { tail_log "$LOGS/postgres.log"; die "PostgreSQL did not start (is port $PG_PORT taken?)."; }
fi
PSQL=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA)
for db in catalog templates marketplace; do
  if [ "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    say "  creating database $db"
    "${PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
  fi
done

# ---- NATS ------------------------------------------------------------------------------------
if alive "$RUN/nats.pid" nats-server; then
  say "NATS already running on 127.0.0.1:$NATS_PORT"
else
  port_open "$NATS_PORT" && die "port $NATS_PORT is taken by another process (not this stack's NATS)."
  say "Starting NATS JetStream on 127.0.0.1:$NATS_PORT"
  STARTED_NATS=1
  nohup nats-server -js -sd "$LOCAL/nats" -p "$NATS_PORT" -a 127.0.0.1 >>"$LOGS/nats.log" 2>&1 &
  echo $! >"$RUN/nats.pid"
  for _ in $(seq 1 100); do
    port_open "$NATS_PORT" && break
    alive "$RUN/nats.pid" nats-server || { tail_log "$LOGS/nats.log"; die "nats-server exited."; }
    sleep 0.1
  done
  port_open "$NATS_PORT" || { tail_log "$LOGS/nats.log"; die "nats-server does not listen on $NATS_PORT."; }
fi

# ---- JWT secret ------------------------------------------------------------------------------
if [ ! -s "$LOCAL/jwt-secret" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n/+=' >"$LOCAL/jwt-secret")
fi
SECRET="$(cat "$LOCAL/jwt-secret")"

# ---- Services --------------------------------------------------------------------------------
RUNNING=()
for entry in "${SERVICES[@]}"; do
  IFS='|' read -r name bin grpc_port http_port db extra <<<"$entry"
  if [ ! -x "$bin" ]; then
    say "Skipping $name: ${bin#"$ROOT"/} is not built (make build)"
    continue
  fi
  RUNNING+=("$name|$grpc_port|$http_port")
  if alive "$RUN/$name.pid" "$bin"; then
    say "$name already running (gRPC 127.0.0.1:$grpc_port)"
    continue
  fi
  port_open "$grpc_port" && die "port $grpc_port (for $name) is taken by another process."
  say "Starting $name (gRPC 127.0.0.1:$grpc_port, HTTP 127.0.0.1:$http_port)"
  printf '=== %s run.sh starts %s\n' "$(date -u +%FT%TZ)" "$name" >>"$LOGS/$name.log"
  # The secret travels in the environment, not on the command line (ps).
  # shellcheck disable=SC2086  # extra holds several flags
  MCI_JWT_SECRET="$SECRET" nohup "$bin" \
    --grpc-address="127.0.0.1:$grpc_port" --http-address="127.0.0.1:$http_port" \
    --database-url="postgresql://postgres@127.0.0.1:$PG_PORT/$db" \
    --nats-url="nats://127.0.0.1:$NATS_PORT" $extra >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  STARTED_SERVICES+=("$name")
done

for entry in "${RUNNING[@]}"; do
  IFS='|' read -r name grpc_port http_port <<<"$entry"
  ok=0
  for _ in $(seq 1 600); do
    [ "$(http_status "http://127.0.0.1:$http_port/readyz")" = 200 ] && { ok=1; break; }
    if ! kill -0 "$(cat "$RUN/$name.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
      tail_log "$LOGS/$name.log"
      die "$name exited (log: .local/logs/$name.log)."
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { tail_log "$LOGS/$name.log"; die "$name is not ready after 60 s (log: .local/logs/$name.log)."; }
done

# ---- What to do with it ----------------------------------------------------------------------
say ""
say "The MCI stack is up:"
for entry in "${RUNNING[@]}"; do
  IFS='|' read -r name grpc_port http_port <<<"$entry"
  printf '  %-12s gRPC 127.0.0.1:%s   http://127.0.0.1:%s/{healthz,readyz,metrics}   .local/logs/%s.log\n' \
    "$name" "$grpc_port" "$http_port" "$name"
done
say "  PostgreSQL   postgresql://postgres@127.0.0.1:$PG_PORT/{catalog,templates,marketplace}"
say "  NATS         nats://127.0.0.1:$NATS_PORT"
say "  JWT secret   .local/jwt-secret"

if [ -x "$MCICTL" ]; then
  TOKEN="$(MCI_JWT_SECRET="$SECRET" "$MCICTL" token --account demo \
    --roles observer,actor,designer,library,publisher,admin --ttl-hours 720)"
  (umask 077 && printf '%s\n' "$TOKEN" >"$LOCAL/token")
  cat <<EOF

A development token for account demo with every role (30 days; also in .local/token):

  export TOKEN='$TOKEN'

Create an MCI, then read it back (grpcurl: https://github.com/fullstorydev/grpcurl, not packaged
on Debian; the create answers ALREADY_EXISTS when the data of an earlier run has it):

  grpcurl -plaintext -H "authorization: Bearer \$TOKEN" -d '{"parent":"accounts/demo","multi_cloud_image_id":"base-v1","multi_cloud_image":{"display_name":"Base v1","description":"My first MCI"}}' localhost:50051 mci.catalog.v1.CatalogService/CreateMultiCloudImage
  grpcurl -plaintext -H "authorization: Bearer \$TOKEN" -d '{"name":"accounts/demo/multiCloudImages/base-v1"}' localhost:50051 mci.catalog.v1.CatalogService/GetMultiCloudImage
  grpcurl -plaintext localhost:50051 list

The same with the Buf CLI (npm package @bufbuild/buf):

  npx --yes @bufbuild/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"parent":"accounts/demo","multi_cloud_image_id":"base-v1","multi_cloud_image":{"display_name":"Base v1","description":"My first MCI"}}' http://localhost:50051/mci.catalog.v1.CatalogService/CreateMultiCloudImage
  npx --yes @bufbuild/buf curl --protocol grpc --http2-prior-knowledge -H "authorization: Bearer \$TOKEN" -d '{"name":"accounts/demo/multiCloudImages/base-v1"}' http://localhost:50051/mci.catalog.v1.CatalogService/GetMultiCloudImage

Other tokens: $MCICTL token --account ACCOUNT --roles observer,designer --secret "\$(cat $LOCAL/jwt-secret)"
EOF
else
  say ""
  say "mcictl is not built (${MCICTL#"$ROOT"/}): build it to get a development token."
fi

if [ "${#STARTED_SERVICES[@]}" -eq 0 ] && [ "$STARTED_NATS" = 0 ] && [ "$STARTED_PG" = 0 ]; then
  say ""
  say "Everything was already running; nothing to wait for (stop it with make stop)."
  exit 0
fi

say ""
say "Press Ctrl-C to stop what this run started."
warned=()
while true; do
  sleep 2 &
  wait $! || true
  for name in "${STARTED_SERVICES[@]}"; do
    if [ -s "$RUN/$name.pid" ] && ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null &&
      [[ " ${warned[*]-} " != *" $name "* ]]; then
      say "$name has exited; see .local/logs/$name.log"
      tail_log "$LOGS/$name.log"
      warned+=("$name")
    fi
  done
done
