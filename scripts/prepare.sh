#!/usr/bin/env bash
# Everything the tests, the demo and the benches need on a fresh machine: ONNX Runtime and the
# models (scripts/setup.sh), the AWS emulators (scripts/emulators.sh) and the real test photos
# (scripts/fetch_test_images.py). Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/emulators.sh
.venv/bin/python scripts/fetch_test_images.py
