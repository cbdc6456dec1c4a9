#!/usr/bin/env bash
# The analysis benchmark: every `analyze` subcommand on a synthetic database of 1,000,000 trials
# (median wall time of 3 runs, peak RSS), side by side with the same analysis done by loading all
# rows of the observations view into pandas and calling scipy / statsmodels; checks that the key
# numbers agree, and profiles any subcommand over 5 s or 1 GB. Results: bench/analysis.md.
# Usage: bash bench/analysis.sh [DB] [run options, e.g. --env OPENBLAS_NUM_THREADS=1]
#   (default DB: bench-analysis-1m.duckdb in the temp dir, made once in about 10 s;
#    the run takes about 2 minutes on an idle 2-core machine, longer on a busy one)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DB=${TMPDIR:-/tmp}/bench-analysis-1m.duckdb
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    DB=$1
    shift
fi
if [ ! -f "$DB" ]; then
    "$BIN/python" bench/analysis.py make-db "$DB" --trials 1000000 --seed 0
fi
"$BIN/python" bench/analysis.py run "$DB" --repeat 3 --analyze "$BIN/analyze" \
    --markdown bench/analysis.md "$@"
