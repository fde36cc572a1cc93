#!/usr/bin/env bash
# The daemon's end-to-end throughput against moto at 1, 2 and 4 objects in flight, beside
# pipeline-only throughput on the same photos (see scripts/bench_daemon.py). About 6 minutes on
# 2 cores; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"
cargo build --release --quiet
.cache/moto-venv/bin/python scripts/bench_daemon.py
