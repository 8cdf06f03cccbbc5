#!/usr/bin/env bash
# Set up a fresh machine: .venv/ with memeatlas installed.
#   bash scripts/setup.sh         the tool (enough for `memeatlas demo`)
#   bash scripts/setup.sh --dev   plus test tools, Ray (the ray engine's tests) and Debian's
#                                 Chromium for the browser tests
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
  .venv/bin/python -m pip install -q -e '.[dev,ray]'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "memeatlas installed in .venv (activate with: . .venv/bin/activate)" >&2
