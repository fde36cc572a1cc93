#!/usr/bin/env bash
# Run every test of veil on a fresh machine: install the runtime and models, the AWS emulators
# (moto, LocalStack), fetch the real test photos, then run the Rust test suite (unit and
# integration tests, with real models; the daemon tests start their own emulators).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"
cargo test --all-targets "$@"
