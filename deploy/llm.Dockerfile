# llama-cpp-python's OpenAI-compatible server; the GGUF comes from the host's cache (audioprobe llm fetch).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake && rm -rf /var/lib/apt/lists/*
ENV CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
RUN pip install --no-cache-dir 'llama-cpp-python[server]==0.3.36'
