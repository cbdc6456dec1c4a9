#!/usr/bin/env bash
# Paper 003's pre-processing throughput: median images per second (throughput_ips) per engine x
# workers x file format (PNG files or TFRecord shards) x cache, 1024 Fashion-MNIST images read 3
# times per trial, n=5 after one warm-up; and each engine's start-up (setup_s).
# Usage: bash bench/preprocess.sh [DB]   (default bench/preprocess.duckdb; about 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DB=${1:-bench/preprocess.duckdb}
"$BIN/runner" trials -e bench/preprocess.toml --db "$DB" --quiet
"$BIN/analyze" summary --db "$DB" --by engine,workers,file_format,cache \
    --metric throughput_ips --metric train_s --metric setup_s
