#!/usr/bin/env bash
# `enlist run` against slow-target emulations (issue 14): requests per row, rate achieved
# behind latency, `--rate auto` against an undisclosed limit, concurrency following a latency
# jump, CPU per row at real rates and while waiting, and the older checks (rate never above
# rate + burst, 1M-row `check` memory). Prints one line per figure while it runs, then the
# table in Markdown for the README.
#
#   benches/slow_targets.sh            (about 3-5 minutes; needs curl and jq)
#
# Every target is `enlist sandbox --profile odin` on 127.0.0.1 with the knobs of the case;
# figures come from the sandbox's own counters (GET /_sandbox/stats: requests by path, per
# second, in flight per second, 429s, abandoned requests) and from enlist's summary line.
# Logins (POST /auth/token) are not counted as requests of a row.
#
# Flags still being built (--concurrency auto, --rate auto, --upsert-order) are used when the
# binary has them; otherwise the case runs with what exists (the fixed values printed in the
# "how" column) or prints "n/a (flag missing)". Set CARGO_TARGET_DIR to reuse a build.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done

cargo build --release --quiet --bin enlist --example gen_sheet
bin="$target/release/enlist"
gen="$target/release/examples/gen_sheet"
dir=$(mktemp -d)
sandbox_pid=""
cleanup() {
  if [ -n "$sandbox_pid" ]; then
    kill "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

export ENLIST_ODIN_USERNAME=admin ENLIST_ODIN_PASSWORD=sandbox
port=""

# Starts `enlist sandbox --profile odin ARGS...` on a free port and waits for its banner.
start_sandbox() {
  stop_sandbox
  "$bin" sandbox --profile odin --port 0 "$@" >"$dir/sandbox.out" 2>"$dir/sandbox.err" &
  sandbox_pid=$!
  port=""
  for _ in $(seq 1 100); do   # bounded wait: at most 10 s
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$dir/sandbox.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the sandbox did not start" >&2; cat "$dir/sandbox.err" >&2; exit 1; }
}

stop_sandbox() {
  if [ -n "$sandbox_pid" ]; then
    kill "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
    sandbox_pid=""
  fi
}

stats() { curl -sf "http://127.0.0.1:$port/_sandbox/stats"; }

# Requests that are not logins, from a stats JSON on stdin.
api_requests() {
  jq '[.by_path_status | to_entries[] | select(.key | test("auth/token") | not) | .value] | add // 0'
}

# Whether `enlist run` accepts these arguments (clap refuses unknown flags and values before
# anything is read or sent; the sheet does not exist).
accepts() {
  local out
  out=$("$bin" run "$dir/none.csv" --profile odin --base-url http://127.0.0.1:9 "$@" 2>&1 || true)
  ! grep -qE "unexpected argument|invalid value" <<<"$out"
}
if accepts --concurrency auto; then conc_auto=(--concurrency auto); else conc_auto=(); fi
if accepts --rate auto; then have_rate_auto=yes; else have_rate_auto=no; fi
if accepts --upsert-order auto; then order=(--upsert-order auto); else order=(); fi
conc_label=${conc_auto[*]:-"profile's fixed concurrency"}

# Runs enlist against the sandbox for at most SECS seconds (then Ctrl-C: it drains and
# prints its summary), under /usr/bin/time. Sets: summary (enlist's summary line), cpu
# (user + system seconds), wall (seconds).
run_enlist() {
  local secs=$1; shift
  rm -f "$dir/time.txt"
  /usr/bin/time -f "%U %S %e" -o "$dir/time.txt" \
    timeout --foreground -s INT "$secs" "$bin" run "$@" --profile odin --base-url "http://127.0.0.1:$port/api/v2" \
    --progress never >"$dir/run.out" 2>"$dir/run.err" || true
  summary=$(grep '^enlist summary:' "$dir/run.out" || true)
  if [ -z "$summary" ]; then
    echo "enlist printed no summary:" >&2; tail -20 "$dir/run.err" >&2; exit 1
  fi
  # The last line: before it, time says "Command exited with non-zero status" after Ctrl-C.
  read -r user sys wall < <(tail -n 1 "$dir/time.txt")
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$summary"; }

rows_table=()
# Records one figure: what, how it was run, measured, goal, pass/fail/info.
figure() {
  printf '%-58s %-16s %-12s %s\n' "$1" "$3" "$4" "$5"
  rows_table+=("| $1 | $2 | $3 | $4 | $5 |")
}
verdict() { awk -v m="$1" -v g="$3" -v op="$2" 'BEGIN {
  ok = (op == "<=") ? (m <= g) : (m >= g); print ok ? "pass" : "fail" }'; }

echo "cpus: $(nproc)  load before: $(uptime)"
echo "concurrency: $conc_label  rate auto: $have_rate_auto  upsert order: ${order[*]:-"(flag missing: lookup first)"}"
"$gen" "$dir/new.csv" 1000 >/dev/null
"$gen" "$dir/big.csv" 5000 >/dev/null
# The same 1,000 users with the first name of 100 of them changed.
awk -F, 'BEGIN { OFS = "," } NR > 1 && NR <= 101 { $4 = $4 "x" } { print }' "$dir/new.csv" >"$dir/changed.csv"

# 1. Requests per row: 1,000 new users in upsert mode, then 100 of them changed.
start_sandbox
run_enlist 120 "$dir/new.csv" --mode upsert "${order[@]}" --rate 2000 --concurrency 16 \
  --state "$dir/state" --report "$dir/new.jsonl"
n=$(stats | api_requests)
created=$(field created)
rpr=$(awk -v n="$n" -v r="$created" 'BEGIN { printf "%.2f", r ? n / r : 0 }')
figure "requests per row, 1,000 new users, upsert" "$(echo --mode upsert "${order[@]}") --concurrency 16" \
  "$rpr ($n for $created)" "≤ 1.05" "$(verdict "$rpr" "<=" 1.05)"
run_enlist 120 "$dir/changed.csv" --mode upsert "${order[@]}" --rate 2000 --concurrency 16 \
  --state "$dir/state" --report "$dir/changed.jsonl"
m=$(( $(stats | api_requests) - n ))
updated=$(field updated)
rpr=$(awk -v n="$m" -v r="$updated" 'BEGIN { printf "%.2f", r ? n / r : 0 }')
figure "requests per row, 100 changed users (same state)" "second run, same --state" \
  "$rpr ($m for $updated)" "≤ 1.05" "$(verdict "$rpr" "<=" 1.05)"

# 2. Wall time of 1,000 new users against a 50 requests/s limit (the rate is known).
start_sandbox --rate-limit 50
run_enlist 90 "$dir/new.csv" --mode upsert "${order[@]}" --rate 50 "${conc_auto[@]}" \
  --state "$dir/state50" --report "$dir/limit50.jsonl"
secs=$(field seconds)
cpu50=$(awk -v c="$cpu" -v r="$(field created)" 'BEGIN { printf "%.0f", r ? c * 1e6 / r : 0 }')
figure "wall time, 1,000 new users, 50 requests/s limit" "--rate 50, $conc_label" \
  "${secs} s ($(field created) created)" "≤ 22 s" "$(verdict "$secs" "<=" 22)"

# 3. 100 ms latency, no limit, --rate 200, default concurrency; create mode (a request a row).
start_sandbox --latency 100
run_enlist 15 "$dir/big.csv" --mode create --rate 200 --state "$dir/state100" \
  --report "$dir/lat100.jsonl"
st=$(stats)
rate=$(awk -v n="$(field requests)" -v s="$(field seconds)" 'BEGIN { printf "%.0f", s ? n / s : 0 }')
figure "100 ms latency, --rate 200, default concurrency: requests/s" "max in flight $(jq .max_in_flight <<<"$st")" \
  "$rate" "≥ 180" "$(verdict "$rate" ">=" 180)"
cpu200=$(awk -v c="$cpu" -v r="$(field created)" 'BEGIN { printf "%.0f", r ? c * 1e6 / r : 0 }')
peak=$(jq '.per_second | max // 0' <<<"$st")
figure "rate never above rate + burst (--rate 200, burst 1)" "busiest clock second" \
  "$peak" "≤ 201" "$(verdict "$peak" "<=" 201)"

# 4. Undisclosed limit of 150 requests/s, 429 with and without Retry-After, --rate auto.
for retry in with without; do
  sb=(--rate-limit 150)
  [ "$retry" = without ] && sb+=(--no-retry-after)
  if [ "$have_rate_auto" = yes ]; then
    rate_arg=(--rate auto); how="--rate auto"
  else
    rate_arg=(); how="profile's rate (--rate auto missing)"
  fi
  start_sandbox "${sb[@]}"
  run_enlist 15 "$dir/big.csv" --mode create "${rate_arg[@]}" "${conc_auto[@]}" \
    --state "$dir/state150$retry" --report "$dir/lim150$retry.jsonl"
  st=$(stats)
  total=$(api_requests <<<"$st")
  limited=$(jq .rate_limited <<<"$st")
  ok=$(( total - limited ))
  rate=$(awk -v n="$ok" -v s="$(field seconds)" 'BEGIN { printf "%.0f", s ? n / s : 0 }')
  share=$(awk -v l="$limited" -v n="$total" 'BEGIN { printf "%.1f", n ? 100 * l / n : 0 }')
  figure "150/s limit, 429 $retry Retry-After: mean requests/s" "$how" "$rate" "≥ 127.5" \
    "$(verdict "$rate" ">=" 127.5)"
  figure "150/s limit, 429 $retry Retry-After: share of 429s" "$how" "$share %" "≤ 2 %" \
    "$(verdict "$share" "<=" 2)"
done

# 5. Latency 20 ms, then 500 ms from 6 s after the first request; --rate 100, which needs
#    2 requests in flight before the jump and 50 after. "Follows" = the first second after the
#    jump from which the sandbox again sees >= 90 % of the rate (it cannot without more in flight).
jump=6
start_sandbox --latency 20 --latency-after "$jump:500"
run_enlist 16 "$dir/big.csv" --mode create --rate 100 "${conc_auto[@]}" \
  --state "$dir/statejump" --report "$dir/jump.jsonl"
st=$(stats)
follow=$(jq -r --argjson jump "$jump" '
  (.first_request_ms / 1000) as $t0 | ((($t0 + $jump) | floor) - .first_second) as $at
  | [.per_second | to_entries[] | select(.key > $at and .value >= 90) | .key] | first
  | if . == null then "never" else . - $at end' <<<"$st")
# The most in flight in the seconds before the jump, and in the last three seconds.
inflight=$(jq -r --argjson jump "$jump" '
  (((.first_request_ms / 1000 + $jump) | floor) - .first_second) as $at
  | .in_flight_per_second as $f
  | "\($f[0:$at] | max // 0) → \($f[-3:] | max // 0)"' <<<"$st")
abandoned=$(jq .abandoned <<<"$st")
timeouts=$(( abandoned + $(grep -ci 'timed out' "$dir/jump.jsonl" || true) ))
if [ "$follow" = never ]; then fv=fail; else fv=$(verdict "$follow" "<=" 5); fi
figure "latency 20 → 500 ms: seconds until the rate recovers" "--rate 100, $conc_label; in flight $inflight" \
  "$follow" "≤ 5 s" "$fv"
figure "latency 20 → 500 ms: requests timed out" "abandoned + timed out rows" "$timeouts" "0" \
  "$(verdict "$timeouts" "<=" 0)"

# 6. CPU per row at these rates, and CPU while held by a long Retry-After (20 requests, then
#    the rest of a 20 s window).
figure "CPU per row at 50 requests/s" "user + system ÷ rows" "${cpu50} µs" "info" "—"
figure "CPU per row at 200 requests/s, 100 ms latency" "user + system ÷ rows" "${cpu200} µs" "info" "—"
start_sandbox --rate-limit 1 --rate-window 20
run_enlist 12 "$dir/big.csv" --mode create --rate 1000 --concurrency 4 \
  --state "$dir/stateidle" --report "$dir/idle.jsonl"
idle=$(awk -v c="$cpu" -v w="$wall" 'BEGIN { printf "%.2f", w ? 100 * c / w : 0 }')
figure "CPU while held by Retry-After (12 s run, ~20 requests)" "CPU ÷ wall" "${idle} %" "≤ 1 %" \
  "$(verdict "$idle" "<=" 1)"
stop_sandbox

# 7. Peak memory of a 1,000,000-row check (the older check, by benches/memory.sh).
mb=$(benches/memory.sh 1000000 1 | sed -n 's/^median max RSS: [0-9]* kB (\([0-9]*\) MB).*/\1/p')
figure "peak memory, check of 1,000,000 rows" "benches/memory.sh" "${mb} MB" "≤ 64 MB" \
  "$(verdict "$mb" "<=" 64)"

echo "load after: $(uptime)"
echo
echo "| figure | how | measured | goal | |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows_table[@]}"
