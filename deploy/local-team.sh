#!/usr/bin/env bash
# The whole prefpipe team stack on one machine, from Debian's packages and processes:
# PostgreSQL (annotation store, Dagster instance, lakehouse catalog), Redis (Celery broker),
# the Dagster webserver and daemon, two Celery workers and two annotation app replicas over the
# one annotation store in PostgreSQL.
#
#   deploy/local-team.sh start     # prints the environment to load: source "$TEAM_DIR/team.env"
#   deploy/local-team.sh status
#   deploy/local-team.sh stop
#
# Needs: apt-get install postgresql redis-server, and pip install -e '.[team]' in the venv that
# PREFPIPE_PYTHON names (default .venv/bin/python). Everything it makes lives under TEAM_DIR
# (default ./.team): data, logs, pids, the generated PostgreSQL password (0600). Ports:
# PG_PORT (55432), REDIS_PORT (56379), WEB_PORT (3000), APP_PORTS ("8101 8102"). All servers
# listen on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
PROJECT="$PWD"
TEAM_DIR="$(realpath -m "${TEAM_DIR:-$PROJECT/.team}")"
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
WEB_PORT="${WEB_PORT:-3000}"
APP_PORTS="${APP_PORTS:-8101 8102}"
WORKERS="${WORKERS:-2}"
PYTHON="${PREFPIPE_PYTHON:-$PROJECT/.venv/bin/python}"
BIN="$(cd "$(dirname "$PYTHON")" && pwd)"  # the venv's bin folder (not the interpreter its python links to)
PYTHON="$BIN/$(basename "$PYTHON")"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
export PATH="$BIN:$PATH"  # dagster-celery starts `celery` from PATH
export PG_HOST=127.0.0.1 PG_PORT PG_USER=prefpipe PG_DB=prefpipe REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" SHARED_DIR="$TEAM_DIR/shared"

as_postgres() {  # PostgreSQL refuses to run as root: run its tools as the postgres user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pidfile() { echo "$TEAM_DIR/pids/$1.pid"; }

alive() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

launch() {  # launch NAME CMD...: in the background, its log under logs/, its pid under pids/
  local name="$1"; shift
  if alive "$name"; then echo "  $name already running"; return; fi
  nohup "$@" >"$TEAM_DIR/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
  echo "  $name: pid $!, log $TEAM_DIR/logs/$name.log"
}

wait_for() {  # wait_for WHAT COMMAND...: up to 60 s
  local what="$1"; shift
  for _ in $(seq 1 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "gave up waiting for $what (see $TEAM_DIR/logs)" >&2
  return 1
}

start_postgres() {
  [ -n "$PG_BIN" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
  mkdir -p "$TEAM_DIR/pg"
  [ "$(id -u)" = 0 ] && chmod o+x "$TEAM_DIR"  # the postgres user must reach its data folder (nothing else is readable)
  if [ ! -f "$TEAM_DIR/secrets.env" ]; then
    (umask 077; echo "PGPASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')" >"$TEAM_DIR/secrets.env")
  fi
  # shellcheck disable=SC1091
  . "$TEAM_DIR/secrets.env"; export PGPASSWORD
  if [ ! -f "$TEAM_DIR/pg/data/PG_VERSION" ]; then
    mkdir -p "$TEAM_DIR/pg/data"
    [ "$(id -u)" = 0 ] && chown -R postgres "$TEAM_DIR/pg"
    (umask 077; printf '%s\n' "$PGPASSWORD" >"$TEAM_DIR/pg/pwfile")
    [ "$(id -u)" = 0 ] && chown postgres "$TEAM_DIR/pg/pwfile"
    as_postgres "$PG_BIN/initdb" -D "$TEAM_DIR/pg/data" -U "$PG_USER" --pwfile="$TEAM_DIR/pg/pwfile" -A scram-sha-256 >"$TEAM_DIR/logs/initdb.log"
    rm -f "$TEAM_DIR/pg/pwfile"
  fi
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg/data" status >/dev/null 2>&1; then
    as_postgres "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg/data" -l "$TEAM_DIR/pg/server.log" -w \
      -o "-p $PG_PORT -k $TEAM_DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  fi
  echo "  postgresql: 127.0.0.1:$PG_PORT, data $TEAM_DIR/pg/data"
  for db in "$PG_DB" "${PG_DB}_dagster" "${PG_DB}_lake" "${PG_DB}_annotations"; do
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "create database $db" >/dev/null
    fi
  done
}

start_redis() {
  command -v redis-server >/dev/null || { echo "Redis is not installed: apt-get install redis-server" >&2; exit 1; }
  mkdir -p "$TEAM_DIR/redis"
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TEAM_DIR/redis" --daemonize yes \
      --pidfile "$(pidfile redis)" --logfile "$TEAM_DIR/logs/redis.log" --save "" --appendonly no >/dev/null
  fi
  wait_for redis redis-cli -p "$REDIS_PORT" ping
  echo "  redis: $REDIS_URL"
}

write_env() {
  mkdir -p "$SHARED_DIR/data" "$SHARED_DIR/lake" "$SHARED_DIR/dagster_home"
  envsubst <"$PROJECT/deploy/team.env" | grep -v '^#' | grep -v '^$' | sed 's/^/export /' >"$TEAM_DIR/team.env"
  echo "export WEB_PORT=$WEB_PORT APP_PORTS=\"$APP_PORTS\"" >>"$TEAM_DIR/team.env"
  echo ". $TEAM_DIR/secrets.env; export PGPASSWORD" >>"$TEAM_DIR/team.env"
  chmod 600 "$TEAM_DIR/team.env"
  cp "$PROJECT/deploy/dagster.yaml" "$SHARED_DIR/dagster_home/dagster.yaml"
  [ -d "$SHARED_DIR/data/guidelines" ] || cp -r "$PROJECT/data/guidelines" "$SHARED_DIR/data/guidelines"
  [ -d "$SHARED_DIR/data/batches" ] || cp -r "$PROJECT/data/batches" "$SHARED_DIR/data/batches"
  # the workers' Celery settings (broker, late acks so a killed worker's step is run again): the same as the runs'
  "$PYTHON" -m prefpipe.defs.executors >"$TEAM_DIR/celery.yaml"
}

start_processes() {
  # shellcheck disable=SC1091
  . "$TEAM_DIR/team.env"
  # schemas first, once: processes that start together would race to create them
  "$BIN/dagster" instance migrate >"$TEAM_DIR/logs/instance-migrate.log" 2>&1 || { cat "$TEAM_DIR/logs/instance-migrate.log" >&2; exit 1; }
  "$PYTHON" -c 'from prefpipe.core.warehouse import connect_for_write; connect_for_write(None, {}).close()' \
    >"$TEAM_DIR/logs/lake-init.log" 2>&1 || { cat "$TEAM_DIR/logs/lake-init.log" >&2; exit 1; }  # the lakehouse catalog
  "$BIN/prefpipe" store info >"$TEAM_DIR/logs/store-init.log" 2>&1 || { cat "$TEAM_DIR/logs/store-init.log" >&2; exit 1; }  # the annotation store's tables
  launch webserver "$BIN/dagster-webserver" -h 127.0.0.1 -p "$WEB_PORT" -w "$PROJECT/workspace.yaml"
  launch daemon "$BIN/dagster-daemon" run -w "$PROJECT/workspace.yaml"
  for i in $(seq 1 "$WORKERS"); do
    launch "worker$i" "$BIN/dagster-celery" worker start -A dagster_celery.app -y "$TEAM_DIR/celery.yaml" -n "prefpipe-worker$i" -l warning
  done
  for port in $APP_PORTS; do
    launch "app$port" "$BIN/prefpipe" annotate --host 127.0.0.1 --port "$port"
  done
  wait_for webserver curl -sf "http://127.0.0.1:$WEB_PORT/server_info"
  for port in $APP_PORTS; do wait_for "app on $port" curl -sf "http://127.0.0.1:$port/api/health"; done
}

stop_all() {
  for f in "$TEAM_DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    name="$(basename "$f" .pid)"
    [ "$name" = redis ] && continue
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
      pkill -TERM -P "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "  stopped $name"
    fi
    rm -f "$f"
  done
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 && echo "  stopped redis" || true
  rm -f "$(pidfile redis)"
  if [ -n "$PG_BIN" ] && [ -f "$TEAM_DIR/pg/data/PG_VERSION" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg/data" -m fast -w stop >/dev/null 2>&1 && echo "  stopped postgresql" || true
  fi
}

status() {
  for f in "$TEAM_DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    name="$(basename "$f" .pid)"
    if kill -0 "$(cat "$f")" 2>/dev/null; then echo "  $name: running (pid $(cat "$f"))"; else echo "  $name: DEAD"; fi
  done
  as_postgres "$PG_BIN/pg_ctl" -D "$TEAM_DIR/pg/data" status >/dev/null 2>&1 && echo "  postgresql: running" || echo "  postgresql: stopped"
}

mkdir -p "$TEAM_DIR/logs" "$TEAM_DIR/pids"
case "${1:-}" in
  start)
    echo "starting the prefpipe team stack under $TEAM_DIR"
    start_postgres
    start_redis
    write_env
    start_processes
    echo "up. Load its environment:  source $TEAM_DIR/team.env"
    echo "UI: http://127.0.0.1:$WEB_PORT   annotation app: $(for p in $APP_PORTS; do printf 'http://127.0.0.1:%s ' "$p"; done)"
    ;;
  stop) echo "stopping the prefpipe team stack under $TEAM_DIR"; stop_all ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
