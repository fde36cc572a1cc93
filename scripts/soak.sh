#!/usr/bin/env bash
# The soak run: SOAK_OBJECTS (default 2000) small frames through the daemon (release build)
# against moto, with faults injected at random between veil and S3 and between veil and SQS
# (refused, stalled, cut and slow connections, S3 throttling), the daemon's resident memory
# sampled every second. Prints one table row: objects, faults, time, anonymised, copies per
# destination, DLQ, RSS at the start, at the end and at its peak. Fails if any object is
# unaccounted for or copied twice.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"
cargo test --release --test soak -- --ignored --nocapture
