#!/usr/bin/env bash
# Run every test of veil on a fresh machine: install the runtime and models, the AWS emulators
# (moto, LocalStack), fetch the real test photos; install the deployment tools, lint the
# CloudFormation templates, the Dockerfile and the alert rules (with their unit tests), and
# build the container image without a Docker engine; then run the Rust test suite (unit and
# integration tests, with real models; the daemon tests start their own emulators, the
# LocalStack test deploys the templates, the image test runs veil from the built image).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prepare.sh
scripts/deploy_tools.sh
scripts/lint_deploy.sh
scripts/build_image.sh
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"
cargo test --all-targets "$@"
