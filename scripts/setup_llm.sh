#!/usr/bin/env bash
# scripts/setup.sh llm: the embedded model's own venv, llama-cpp-python (compiled once, cached as a
# wheel), and both verified model files. Idempotent: each part is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
CACHE=${AUDIOPROBE_CACHE_DIR:-$HOME/.cache/audioprobe}
LLM_VENV=$CACHE/llm-venv
WHEELS=$CACHE/wheels
LOGS=$CACHE/logs
LLAMA_VERSION=0.3.36
# The server and the library only: the multimodal, test, example and tool targets double the build.
LLAMA_TARGETS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
# A portable CPU baseline, never the compiling CPU (-march=native): x86-64 with AVX2/FMA/F16C. AMX stays
# off unless AUDIOPROBE_LLAMA_CPU_FLAGS asks for it: a VM can advertise AMX and still fault on its tile
# registers (ggml_backend_amx_mul_mat died at ldtilecfg on the first completion).
if [ "$(uname -m)" = x86_64 ]; then
  PORTABLE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
else
  PORTABLE_FLAGS="-DGGML_NATIVE=OFF"  # ggml's generic baseline for the architecture
fi
LLAMA_CPU_FLAGS=${AUDIOPROBE_LLAMA_CPU_FLAGS:-$PORTABLE_FLAGS}
LLAMA_CMAKE_ARGS="$LLAMA_TARGETS $LLAMA_CPU_FLAGS"
# The build flags are part of the wheel's identity: a wheel built any other way (the old native build
# included) lives in another folder and is never reused.
BUILD_ID=$(printf '%s|%s' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)
WHEELS=$WHEELS/$BUILD_ID
mkdir -p "$WHEELS" "$LOGS" "$CACHE/src"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

find_wheel() { ls "$WHEELS"/llama_cpp_python-$LLAMA_VERSION-*.whl 2>/dev/null | head -n1; }

build_wheel() {
  # One build at a time, even across concurrent `make` runs: the second waits and reuses the first's.
  exec 9>"$WHEELS/.llama-build.lock"
  flock 9
  [ -n "$(find_wheel)" ] && return 0
  local sdist
  sdist=$(ls "$CACHE"/src/llama_cpp_python-$LLAMA_VERSION.tar.gz 2>/dev/null || true)
  if [ -z "$sdist" ]; then
    say "downloading llama-cpp-python $LLAMA_VERSION source"
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$CACHE/src" "llama-cpp-python==$LLAMA_VERSION"
    sdist=$(ls "$CACHE"/src/llama_cpp_python-$LLAMA_VERSION.tar.gz)
  fi
  local tools=()
  command -v cmake >/dev/null || tools+=(cmake)
  command -v g++ >/dev/null || tools+=(build-essential)
  if [ ${#tools[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "setup llm: compiling llama-cpp-python needs ${tools[*]} (apt-get install ${tools[*]})" >&2; exit 1; }
    say "apt-get install ${tools[*]} (to compile llama-cpp-python)"
    [ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${tools[@]}"
  fi
  say "compiling llama-cpp-python $LLAMA_VERSION ($(nproc) cores; 4-10 min on 2; log $LOGS/llama-build.log)"
  # cmake's "[ NN%]" (make) or "[n/N]" (ninja) lines are the progress; everything else goes to the log only.
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$PY" -m pip wheel -v --no-deps -w "$WHEELS" "$sdist" 2>&1 | tee "$LOGS/llama-build.log" \
    | grep --line-buffered -E '^\s*\[ *[0-9]+(%|/[0-9]+)\]' \
    | sed -u -E 's#^\s*(\[ *[0-9]+(%|/[0-9]+)\]).* -(c|o) ([^ ]*/)?([^ /]+)( .*)?$#\1 \5#; s#^\s*#    #; s#^(.{120}).*#\1#' || true
  [ -n "$(find_wheel)" ] || { echo "setup llm: the llama-cpp-python build failed; see $LOGS/llama-build.log" >&2; exit 1; }
}

BUILD_STAMP=$LLM_VENV/.audioprobe-build-$BUILD_ID
if [ -f "$BUILD_STAMP" ] \
   && "$LLM_VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null \
   && "$LLM_VENV/bin/python" -c "import llama_cpp.server.app, uvicorn" 2>/dev/null; then
  say "llm venv up to date ($LLM_VENV, llama-cpp-python $LLAMA_VERSION, build $BUILD_ID)"
else
  [ -n "$(find_wheel)" ] || build_wheel
  [ -x "$LLM_VENV/bin/python" ] || { say "creating $LLM_VENV"; "$PY" -m venv "$LLM_VENV"; }
  say "installing llama-cpp-python[server] $LLAMA_VERSION (build $BUILD_ID) into $LLM_VENV"
  "$LLM_VENV/bin/pip" install -q --force-reinstall --no-deps "$(find_wheel)"
  "$LLM_VENV/bin/pip" install -q "$(find_wheel)[server]"
  rm -f "$LLM_VENV"/.audioprobe-build-*; touch "$BUILD_STAMP"
fi

say "embedded models: qwen2.5-coder-1.5b (make run) and qwen2.5-coder-0.5b (tests), verified by SHA-256"
"$ROOT/.venv/bin/audioprobe" llm fetch --model qwen2.5-coder-1.5b --model qwen2.5-coder-0.5b >/dev/null
say "embedded models ready"

# A server that lists its models can still die on the first completion (a CPU feature it was built for
# and cannot use): ask for one token before calling the set-up done.
say "smoke test: one-token completion from the embedded 0.5B model"
"$ROOT/.venv/bin/audioprobe" llm smoke --model qwen2.5-coder-0.5b \
  || { echo "setup llm: the embedded model server failed its first completion (see above; build log $LOGS/llama-build.log)" >&2; exit 1; }
