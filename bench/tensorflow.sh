#!/usr/bin/env bash
# Issue 4's Keras comparisons (bench/tensorflow.toml): median train_s, accuracy and setup_s of
# local Keras vs Keras on Spark (digits, 25% of Fashion-MNIST), Keras MLP vs MLlib MLP (digits),
# and 000's CNN as independent trainers on Dask / Ray (1, 2 workers) vs engine tensorflow; n=10
# after one warm-up, then 002's t-test of train_s, local Keras vs Keras on Spark, per dataset.
# Usage: bash bench/tensorflow.sh [DB] [N]  (default bench/tensorflow.duckdb, n=10; about 25
# minutes on 2 idle cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DB=${1:-bench/tensorflow.duckdb}
N=${2:-10}
"$BIN/runner" trials -e bench/tensorflow.toml --db "$DB" --n "$N" --quiet
"$BIN/analyze" summary --db "$DB" --by dataset,workload,impl,engine,workers \
    --metric train_s --metric infer_s --metric accuracy --metric setup_s
for dataset in digits fashion-mnist; do
    "$BIN/analyze" ttest --db "$DB" --group engine --a tensorflow --b spark --metric train_s \
        --where workload=mlp --where impl=keras --where "dataset=$dataset"
done
