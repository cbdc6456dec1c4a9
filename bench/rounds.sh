#!/usr/bin/env bash
# What rounds cost: the default experiment (`runner trials --n 10`) in 2 rounds (the default:
# every configuration's worker process and engine started twice, a warm-up each time) against
# --rounds 1, run in turn A B A B ... so the machine's drift hits both; prints each run's wall and
# CPU seconds (GNU time) and the medians and their ratio.
# Usage: bash bench/rounds.sh [PAIRS]   (default 3 pairs; about 2 minutes a pair on 2 cores;
# needs GNU time, Debian package `time`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/.venv/bin}
PAIRS=${1:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for i in $(seq "$PAIRS"); do
    for rounds in 2 1; do
        /usr/bin/time -f "$rounds %e %U %S" -a -o "$OUT/times" \
            "$BIN/runner" trials --n 10 --rounds "$rounds" --quiet --db "$OUT/r$rounds-$i.duckdb" \
            > /dev/null
    done
done
"$BIN/python" - "$OUT/times" <<'PY'
import statistics
import sys

runs: dict[str, list[tuple[float, float]]] = {"2": [], "1": []}
for line in open(sys.argv[1]):
    rounds, wall, user, sys_s = line.split()
    runs[rounds].append((float(wall), float(user) + float(sys_s)))
for rounds, rows in runs.items():
    print(f"rounds {rounds}: wall s {[w for w, _ in rows]}, cpu s {[round(c, 1) for _, c in rows]}")
wall = {r: statistics.median(w for w, _ in rows) for r, rows in runs.items()}
cpu = {r: statistics.median(c for _, c in rows) for r, rows in runs.items()}
print(f"median wall {wall['2']:.1f} s vs {wall['1']:.1f} s: x{wall['2'] / wall['1']:.2f}")
print(f"median cpu  {cpu['2']:.1f} s vs {cpu['1']:.1f} s: x{cpu['2'] / cpu['1']:.2f}")
PY
