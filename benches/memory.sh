#!/usr/bin/env bash
# Peak memory of `enlist check` on a generated N-row odin CSV (default 1,000,000 rows).
# Target (issue 2): Maximum resident set size <= 64 MB.
#
#   benches/memory.sh [ROWS] [RUNS]
#
# Runs the check RUNS times (default 3) and prints each peak RSS and the median, with the
# machine's load. Set CARGO_TARGET_DIR to reuse a build.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${2:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin enlist --example gen_sheet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
csv="$dir/users.csv"
"$target/release/examples/gen_sheet" "$csv" "$rows"
echo "rows: $rows  file: $(du -h "$csv" | cut -f1)"
echo "load: $(uptime)"
kbs=()
for i in $(seq 1 "$runs"); do
  /usr/bin/time -v "$target/release/enlist" check "$csv" --profile odin \
    >/dev/null 2>"$dir/time.txt" || true
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  echo "run $i: max RSS ${kb} kB ($((kb / 1024)) MB), wall $wall"
  kbs+=("$kb")
done
median=$(printf '%s\n' "${kbs[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median max RSS: ${median} kB ($((median / 1024)) MB); target <= 65536 kB (64 MB)"
