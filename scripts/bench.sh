#!/usr/bin/env bash
# Every benchmark of veil, then one table: redaction kernels and regions (MP/s), detection per
# model and tile plan, anonymise per image size (ms), recall per size bucket on the small-object
# set with the time each configuration takes, and veil against deface on the same images with the
# same CenterFace model; then, apart, the pixels changed on portraits and group photos, and faces
# cut by the frame. Takes about an hour and a quarter on 2 cores (recall ~20 min, pipeline
# ~25 min, deface ~12 min, portraits ~5 min, edge cuts ~11 min); run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
.venv/bin/python scripts/fetch_test_images.py
export ORT_DYLIB_PATH="$PWD/.cache/onnxruntime/libonnxruntime.so"

cargo build --release --quiet
rm -rf target/criterion   # so the table shows this run only
cargo bench --bench redact --bench pipeline
cargo bench --bench recall | tee target/recall.md

if [ ! -x .cache/deface-venv/bin/deface ]; then
  python3 -m venv .cache/deface-venv
  .cache/deface-venv/bin/pip install -q --disable-pip-version-check deface==1.5.0 onnxruntime==1.32.0 onnx==1.19.1 pillow
fi
.cache/deface-venv/bin/python scripts/bench_deface.py
echo
python3 scripts/bench_report.py
echo
.venv/bin/python scripts/bench_portraits.py
echo
.venv/bin/python scripts/bench_edge_cut.py
