#!/usr/bin/env bash
# Unthrottled `enlist run` vs `wrk` (and `oha`, when installed) against the same fast local
# endpoint, same concurrency, in the same run (issue 3: goal enlist >= 70 % of the raw HTTP
# tool's request rate; CPU time per row).
#
#   benches/run_vs_wrk.sh [ROWS] [CONCURRENCY] [RUNS]      (defaults 100000 16 3)
#
# The endpoint is examples/fast_target.rs (POST /users/user -> fixed 200 JSON, no auth check,
# on 127.0.0.1 only). enlist sends ROWS users-api rows with --rate 1000000 (no throttling),
# wrk sends the same request (same body shape, headers and Basic auth) for WRK_SECS seconds
# with 2 threads. Each tool runs RUNS times, alternating; the medians are compared, and so
# is each run of enlist with the wrk and oha runs right after it (this machine's speed
# drifts from minute to minute: a ratio of neighbouring runs is steadier than a ratio of
# medians taken minutes apart).
# Needs wrk (apt-get install -y wrk); oha (cargo install oha) is used too when on PATH: it
# is built on hyper like enlist's client, wrk is hand-tuned C. Set CARGO_TARGET_DIR to reuse
# a build.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
conc=${2:-16}
runs=${3:-3}
wrk_secs=${WRK_SECS:-10}
server_threads=${SERVER_THREADS:-1}
port=${PORT:-$((20000 + RANDOM % 20000))}
target=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

cargo build --release --quiet --bin enlist --example fast_target
dir=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$target/release/examples/fast_target" "127.0.0.1:$port" "$server_threads" 2>"$dir/server.log" &
server_pid=$!
for _ in $(seq 1 100); do   # bounded wait: at most 10 s
  if curl -s -o /dev/null -X POST "http://127.0.0.1:$port/users/user" -d '{}'; then break; fi
  sleep 0.1
done
curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/users/user" -d '{}' \
  || { echo "fast_target did not start" >&2; cat "$dir/server.log" >&2; exit 1; }

csv="$dir/users.csv"
awk -v n="$rows" 'BEGIN {
  print "email,password,name";
  for (i = 0; i < n; i++) printf "user%d@acme.example,Welcome-%d,User Number %d\n", i, i, i
}' >"$csv"

export ENLIST_USERS_API_USERNAME=bench ENLIST_USERS_API_PASSWORD=bench-secret
auth=$(printf '%s' "$ENLIST_USERS_API_USERNAME:$ENLIST_USERS_API_PASSWORD" | base64 -w0)
cat >"$dir/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"email":"user1@acme.example","password":"Welcome-1","name":"User Number 1"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic $auth"
wrk.headers["User-Agent"] = "enlist/bench"
LUA

echo "rows: $rows  concurrency: $conc  runs: $runs  wrk: -t2 -c$conc -d${wrk_secs}s  server threads: $server_threads"
echo "cpus: $(nproc)  load before: $(uptime)"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$dir/enlist.rates"; : >"$dir/enlist.cpu"; : >"$dir/wrk.rates"; : >"$dir/oha.rates"
: >"$dir/wrk.ratios"; : >"$dir/oha.ratios"
have_oha=$(command -v oha >/dev/null && echo yes || echo no)
for i in $(seq 1 "$runs"); do
  rm -f "$dir/report.jsonl"
  rc=0
  /usr/bin/time -v "$target/release/enlist" run "$csv" --profile users-api \
    --base-url "http://127.0.0.1:$port" --rate 1000000 --concurrency "$conc" \
    --full --progress never --report "$dir/report.jsonl" >"$dir/enlist.out" 2>"$dir/enlist.err" || rc=$?
  created=$(grep -c '"status":"created"' "$dir/report.jsonl" || true)
  if [ "$rc" != 0 ] || [ "$created" != "$rows" ]; then
    echo "enlist run $i: exit $rc, $created of $rows created" >&2; tail -20 "$dir/enlist.err" >&2; exit 1
  fi
  read -r wall user sys < <(awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = 0; for (k = 1; k <= n; k++) w = w * 60 + p[k] }
    /User time \(seconds\)/ { u = $2 } /System time \(seconds\)/ { s = $2 }
    END { print w, u, s }' "$dir/enlist.err")
  rate=$(awk -v r="$rows" -v w="$wall" 'BEGIN { printf "%.0f", r / w }')
  cpu_us=$(awk -v r="$rows" -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", (u + s) * 1e6 / r }')
  echo "enlist run $i: ${wall}s wall, user ${user}s sys ${sys}s -> $rate rows/s, $cpu_us CPU us/row"
  echo "$rate" >>"$dir/enlist.rates"; echo "$cpu_us" >>"$dir/enlist.cpu"

  wrk -t2 -c"$conc" -d"${wrk_secs}s" -s "$dir/post.lua" "http://127.0.0.1:$port/users/user" >"$dir/wrk.out"
  wrate=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$dir/wrk.out")
  if grep -q "Non-2xx" "$dir/wrk.out"; then echo "wrk saw non-2xx answers" >&2; cat "$dir/wrk.out" >&2; exit 1; fi
  echo "wrk run $i: $wrate requests/s"
  echo "$wrate" >>"$dir/wrk.rates"
  awk -v e="$rate" -v w="$wrate" 'BEGIN { printf "%.1f\n", 100 * e / w }' >>"$dir/wrk.ratios"

  if [ "$have_oha" = yes ]; then
    oha -z "${wrk_secs}s" -c "$conc" --no-tui -m POST -H "Content-Type: application/json" \
      -H "Authorization: Basic $auth" -H "User-Agent: enlist/bench" \
      -d '{"email":"user1@acme.example","password":"Welcome-1","name":"User Number 1"}' \
      "http://127.0.0.1:$port/users/user" >"$dir/oha.out"
    orate=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$dir/oha.out")
    echo "oha run $i: $orate requests/s"
    echo "$orate" >>"$dir/oha.rates"
    awk -v e="$rate" -v o="$orate" 'BEGIN { printf "%.1f\n", 100 * e / o }' >>"$dir/oha.ratios"
  fi
done
er=$(median <"$dir/enlist.rates"); ec=$(median <"$dir/enlist.cpu"); wr=$(median <"$dir/wrk.rates")
echo "load after: $(uptime)"
echo "median enlist: $er rows/s, $ec CPU us/row"
echo "median wrk:    $wr requests/s"
awk -v e="$er" -v w="$wr" 'BEGIN { printf "ratio enlist/wrk: %.0f %% (goal >= 70 %%)\n", 100 * e / w }'
echo "enlist/wrk, run by run: $(tr '\n' ' ' <"$dir/wrk.ratios")(median $(median <"$dir/wrk.ratios") %)"
if [ "$have_oha" = yes ]; then
  orr=$(median <"$dir/oha.rates")
  echo "median oha:    $orr requests/s"
  awk -v e="$er" -v o="$orr" 'BEGIN { printf "ratio enlist/oha: %.0f %% (goal >= 70 %%)\n", 100 * e / o }'
  echo "enlist/oha, run by run: $(tr '\n' ' ' <"$dir/oha.ratios")(median $(median <"$dir/oha.ratios") %)"
fi
