# llama-cpp-python's OpenAI-compatible server; the GGUF comes from the host's cache (audioprobe llm fetch).
# BASE: python:3.11-slim where Docker Hub answers, or the project's Debian base (audioprobe-base:bookworm-*,
# made by `audioprobe sandbox build`) where it does not: both have a python3 with venv.
# Not built by a plain `docker-compose up`: it is in docker-compose.yml's `llm` profile (compiling llama.cpp
# takes long on a small machine).
ARG BASE=python:3.11-slim
FROM $BASE
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
# The same portable baseline as scripts/setup_llm.sh: an image built on one host runs on others, so never
# the building CPU's features (ggml's default -march=native), and no AMX (a VM may advertise it and fault).
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF \
    -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN python3 -m venv /opt/venv && pip install --no-cache-dir 'llama-cpp-python[server]==0.3.36'
