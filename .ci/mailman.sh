#!/usr/bin/env bash
# GNU Mailman 3 core for the tests (called by servers.sh): only its REST runner, on
# 127.0.0.1, with its own var directory under BASE; no mail is sent or received.
#   mailman.sh install BASE        the virtual environment BASE/mm
#   mailman.sh start BASE PORT     a fresh server; its master's pid goes to BASE/mm.pid
set -euo pipefail
cmd=$1
BASE=$2
VERSION=3.3.10
REST_USER=restadmin
PASS='Mailman!Rest1'

case "$cmd" in
  install)
    t0=$SECONDS
    if [ ! -x "$BASE/mm/bin/mailman" ]; then
      python3 -m venv "$BASE/mm"
      # Mailman 3.3.10's user list fails (500) on SQLAlchemy 2.1.
      "$BASE/mm/bin/pip" install -q "mailman==$VERSION" 'sqlalchemy<2.1'
    fi
    echo "mailman: installed in $(( SECONDS - t0 )) s"
    ;;
  start)
    PORT=$3
    t0=$SECONDS
    D="$BASE/mm-data"
    rm -rf "$D"
    mkdir -p "$D"
    {
      printf '[mailman]\nlayout: enlist\nsite_owner: postmaster@enlist.test\n\n'
      printf '[paths.enlist]\nvar_dir: %s/var\n\n' "$D"
      printf '[webservice]\nhostname: 127.0.0.1\nport: %s\nadmin_user: %s\nadmin_pass: %s\n\n' \
        "$PORT" "$REST_USER" "$PASS"
      # Every create stores a password hash (a random password when the row has none):
      # passlib's default 656,000 rounds would make the server, not enlist, the test's
      # bottleneck on 2 cores.
      # No mail goes anywhere: no MTA alias maps to write (the default wants Postfix's postmap).
      printf '[mta]\nincoming: mailman.mta.null.NullMTA\n\n'
      printf '[passwords]\nconfiguration: %s/passlib.cfg\n\n' "$D"
      # The REST API is all the tests use: every other runner stays off.
      for r in archive bad bounces command digest in lmtp nntp out pipeline retry shunt task virgin; do
        printf '[runner.%s]\nstart: no\n\n' "$r"
      done
    } >"$D/mailman.cfg"
    printf '[passlib]\nschemes = sha512_crypt\ndefault = sha512_crypt\nsha512_crypt__default_rounds = 1000\nsha512_crypt__min_rounds = 1000\n' \
      >"$D/passlib.cfg"
    # --run-as-root: CI runs as root; the flag changes nothing for any other user.
    started=0
    "$BASE/mm/bin/mailman" --run-as-root -C "$D/mailman.cfg" start >"$BASE/mm.log" 2>&1 \
      </dev/null || started=$?
    # The master forks before `start` returns: record it even when `start` failed, so
    # that `servers.sh stop` ends it.
    for _ in $(seq 1 50); do
      [ -s "$D/var/master.pid" ] && break
      sleep 0.1
    done
    if [ -s "$D/var/master.pid" ]; then cp "$D/var/master.pid" "$BASE/mm.pid"; fi
    if [ "$started" != 0 ]; then
      echo "mailman start failed ($started):" >&2
      tail -20 "$BASE/mm.log" >&2
      exit 1
    fi
    for _ in $(seq 1 900); do
      if curl -s -o /dev/null -f -u "$REST_USER:$PASS" "http://127.0.0.1:$PORT/3.1/system/versions"; then
        break
      fi
      sleep 0.1
    done
    curl -s -o /dev/null -f -u "$REST_USER:$PASS" "http://127.0.0.1:$PORT/3.1/system/versions" || {
      echo "mailman at 127.0.0.1:$PORT did not come up in 90 s; see $D/var/logs/mailman.log" >&2
      tail -20 "$BASE/mm.log" "$D/var/logs/mailman.log" >&2 || true
      exit 1
    }
    echo "mailman: up at 127.0.0.1:$PORT in $(( SECONDS - t0 )) s"
    ;;
  *)
    echo "usage: $0 install|start BASE [PORT]" >&2
    exit 2
    ;;
esac
