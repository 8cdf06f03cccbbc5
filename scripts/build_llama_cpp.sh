#!/usr/bin/env bash
# Build the llama-cpp-python wheel the interop tests serve a tiny model with, once, into
# ~/.cache/memeatlas/wheels (a source build: about 8 minutes on 2 cores). scripts/setup.sh
# --dev then installs it from there without building; CI caches that folder.
#   bash scripts/build_llama_cpp.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-.venv/bin/python}"
version="0.3.36"
wheels="${MEMEATLAS_WHEELS:-$HOME/.cache/memeatlas/wheels}"
mkdir -p "$wheels"
if ls "$wheels"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "llama-cpp-python $version wheel already in $wheels" >&2
  exit 0
fi
# CPU only, portable AVX2 (no -march=native, so the cached wheel runs on other x86-64 CI
# machines), and only the library: no examples, tests, tools, server binary or mtmd.
export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
-DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BLAS=OFF -DGGML_OPENMP=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
"$py" -m pip wheel --no-deps -w "$wheels" "llama-cpp-python==$version"
echo "built $(ls "$wheels"/llama_cpp_python-"$version"-*.whl)" >&2
