# The Python environment of the audioprobe image (Prefect server and worker): a venv with audioprobe's
# dependencies and its judges, from the project's Debian base. Built only when pyproject.toml or
# constraints.txt change (deploy/build.py tags it by their hash), so a code change rebuilds only
# deploy/audioprobe.Dockerfile's thin layer.
ARG BASE
FROM $BASE
# WHEELS: the wheelhouse deploy/build.py fetched with the host's pip (CPU torch: PyPI's torch of the
# same version is the CUDA one with gigabytes of nvidia wheels), served on the host's 127.0.0.1 for the
# length of the build (which runs with the host network). No package index is asked.
ARG WHEELS
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY pyproject.toml constraints.txt /opt/deps/
# A stand-in package so pip installs the project's dependencies without its code.
RUN set -e; \
    python3 -m venv /opt/venv; \
    cd /opt/deps; mkdir audioprobe; touch audioprobe/__init__.py README.md; \
    pip install -q --no-index --find-links "$WHEELS" 'setuptools>=68' wheel; \
    pip install -q --no-index --find-links "$WHEELS" -c constraints.txt '.[judges,refs]'; \
    pip uninstall -q -y audioprobe; \
    python -c "import torch; assert '+cpu' in torch.__version__, torch.__version__"; \
    cd /; rm -rf /opt/deps
