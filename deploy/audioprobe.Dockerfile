# audioprobe itself, on the venv of deploy/deps.Dockerfile: the Prefect server and the worker of
# docker-compose.yml both run it. No network needed: the code is installed editable, with no deps.
ARG DEPS
FROM $DEPS
WORKDIR /app
COPY . /app
RUN pip install -q --no-deps --no-build-isolation -e . && python -m compileall -q /app >/dev/null
ENV MPLBACKEND=Agg
CMD ["audioprobe", "--help"]
