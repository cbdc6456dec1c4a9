#!/usr/bin/env bash
# Issue 3's engine comparison: median train_s and test accuracy per engine x workload x workers
# on digits and Fashion-MNIST (25%), n=5 after one warm-up, and each engine's start-up (setup_s).
# Usage: bash bench/engines.sh [DB]   (default bench/engines.duckdb; about 20-30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DB=${1:-bench/engines.duckdb}
"$BIN/runner" trials -e bench/engines.toml --db "$DB" --quiet
"$BIN/analyze" summary --db "$DB" --by dataset,workload,impl,engine,workers \
    --metric train_s --metric accuracy --metric setup_s
