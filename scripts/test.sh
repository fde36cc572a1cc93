#!/usr/bin/env bash
# Run every test of veil on a fresh machine: install the runtime and models, the AWS emulators
# (moto, LocalStack), fetch the real test photos; install the deployment tools, lint the
# CloudFormation templates, the Dockerfile and the alert rules (with their unit tests), and
# build the container image without a Docker engine; then run the Rust test suite (unit and
# integration tests, with real models; the daemon tests start their own emulators, the
# LocalStack test deploys the templates, the image test runs veil from the built image).
# The tests are built in the release profile, so they reuse the release build of the image
# step, and run by cargo-nextest (.config/nextest.toml), installed here if missing; arguments
# are passed to it (a test name filters). The benches then run once each in test mode.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
scripts/deploy_tools.sh
scripts/lint_deploy.sh
scripts/build_image.sh
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --version 0.9.143 --locked
cargo nextest run --release --lib --bins --tests "$@"
cargo test --release --bench '*'
