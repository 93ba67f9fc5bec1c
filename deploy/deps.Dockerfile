# The Python environment of the audioprobe image (Prefect server and worker): a venv with audioprobe's
# dependencies and its judges, from the project's Debian base. Built only when pyproject.toml or
# constraints.txt change (deploy/build.py tags it by their hash), so a code change rebuilds only
# deploy/audioprobe.Dockerfile's thin layer.
ARG BASE
FROM $BASE
# WHEELS: a folder the build host serves over http (the build runs with the host network) holding the
# CPU build of torch; PyPI's torch of the same version is the CUDA one with gigabytes of nvidia wheels.
ARG WHEELS
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY pyproject.toml constraints.txt host-ca.pem /opt/deps/
# A stand-in package so pip resolves the project's dependencies without its code; tzdata for the
# schedules' time zones.
RUN set -e; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tzdata; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    if [ -s /opt/deps/host-ca.pem ]; then export PIP_CERT=/opt/deps/host-ca.pem; fi; \
    python3 -m venv /opt/venv; \
    cd /opt/deps; mkdir audioprobe; touch audioprobe/__init__.py README.md; \
    pip install -q 'setuptools>=68' wheel; \
    pip install -q --find-links "$WHEELS" -c constraints.txt '.[judges,refs]'; \
    pip uninstall -q -y audioprobe; \
    python -c "import torch, prefect, asyncpg, litellm, transformers; assert '+cpu' in torch.__version__, torch.__version__"; \
    cd /; rm -rf /opt/deps
