# PostgreSQL for the Prefect server, from the project's own Debian base (sandbox/image.py imports it
# when Docker Hub cannot be reached), so the stack builds where postgres:16 cannot be pulled.
ARG BASE
FROM $BASE
# No cluster at install time: the entrypoint makes one in the volume on the first start.
RUN set -e; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/audioprobe.conf; \
    apt-get update -q; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    ln -s "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)" /usr/local/pgbin
COPY postgres-entrypoint.sh /usr/local/bin/
ENV PGDATA=/var/lib/postgresql/data PGPORT=5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
