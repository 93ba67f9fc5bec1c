# The worker: audioprobe with its judges, serving the nightly deployment.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY audioprobe audioprobe
COPY flows flows
COPY tasks tasks
COPY sandbox sandbox
COPY prompts prompts
RUN pip install --no-cache-dir -c constraints.txt --extra-index-url https://download.pytorch.org/whl/cpu -e '.[judges,refs]'
ENTRYPOINT []
