#!/usr/bin/env bash
# Matrix Synapse for the tests (called by servers.sh): a homeserver "enlist.test" on
# 127.0.0.1 with SQLite, cheap password hashing and no login rate limit (the tests log in
# once per run), and one server admin made with the shared registration secret.
#   synapse.sh install BASE        the virtual environment BASE/syn
#   synapse.sh start BASE PORT     a fresh server; its pid goes to BASE/syn.pid
set -euo pipefail
cmd=$1
BASE=$2
VERSION=1.163.2
SECRET=enlist-ci-registration-secret
ADMIN=enlistadmin
ADMIN_PASS='Synapse!Adm1n'

case "$cmd" in
  install)
    t0=$SECONDS
    if [ ! -x "$BASE/syn/bin/synapse_homeserver" ]; then
      python3 -m venv "$BASE/syn"
      "$BASE/syn/bin/pip" install -q "matrix-synapse==$VERSION"
    fi
    echo "synapse: installed in $(( SECONDS - t0 )) s"
    ;;
  start)
    PORT=$3
    t0=$SECONDS
    D="$BASE/syn-data"
    rm -rf "$D"
    mkdir -p "$D"
    cat >"$D/homeserver.yaml" <<YAML
server_name: "enlist.test"
pid_file: $D/homeserver.pid
listeners:
  - port: $PORT
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: $D/homeserver.db
media_store_path: $D/media
signing_key_path: $D/signing.key
registration_shared_secret: "$SECRET"
macaroon_secret_key: "enlist-ci-macaroon-secret"
form_secret: "enlist-ci-form-secret"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
bcrypt_rounds: 4
rc_login:
  address: {per_second: 100, burst_count: 1000}
  account: {per_second: 100, burst_count: 1000}
  failed_attempts: {per_second: 100, burst_count: 1000}
YAML
    "$BASE/syn/bin/python" -m synapse.app.homeserver -c "$D/homeserver.yaml" --generate-keys \
      >"$BASE/syn.log" 2>&1
    "$BASE/syn/bin/python" -m synapse.app.homeserver -c "$D/homeserver.yaml" \
      >>"$BASE/syn.log" 2>&1 </dev/null &
    echo $! >"$BASE/syn.pid"
    for _ in $(seq 1 900); do
      if curl -s -o /dev/null -f "http://127.0.0.1:$PORT/health"; then break; fi
      if ! kill -0 "$(cat "$BASE/syn.pid")" 2>/dev/null; then
        echo "synapse exited; see $BASE/syn.log" >&2
        tail -20 "$BASE/syn.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    curl -s -o /dev/null -f "http://127.0.0.1:$PORT/health" || {
      echo "synapse at 127.0.0.1:$PORT did not come up in 90 s; see $BASE/syn.log" >&2
      exit 1
    }
    "$BASE/syn/bin/register_new_matrix_user" -u "$ADMIN" -p "$ADMIN_PASS" -a -k "$SECRET" \
      "http://127.0.0.1:$PORT" >/dev/null
    echo "synapse: up at 127.0.0.1:$PORT (admin @$ADMIN:enlist.test) in $(( SECONDS - t0 )) s"
    ;;
  *)
    echo "usage: $0 install|start BASE [PORT]" >&2
    exit 2
    ;;
esac
