#!/bin/sh
# First start: initdb in the volume, role and database `prefect` (password POSTGRES_PASSWORD). Every
# start: listen on POSTGRES_LISTEN (127.0.0.1 by default; docker-compose.yml sets * inside the
# container's own network namespace and publishes the port on the host's 127.0.0.1 only), port PGPORT.
set -eu
: "${POSTGRES_PASSWORD:=prefect}" "${POSTGRES_LISTEN:=127.0.0.1}"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_postgres /usr/local/pgbin/initdb -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  # initdb lets in loopback only; the other containers of the stack come from their own addresses.
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # Unix socket only while the role is made: nothing reaches a half-made database.
  as_postgres /usr/local/pgbin/pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  as_postgres /usr/local/pgbin/psql -q -v ON_ERROR_STOP=1 -U postgres -d postgres \
    -v pw="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE prefect LOGIN PASSWORD :'pw';
CREATE DATABASE prefect OWNER prefect;
SQL
  as_postgres /usr/local/pgbin/pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  /usr/local/pgbin/postgres -D "$PGDATA" -c listen_addresses="$POSTGRES_LISTEN" -p "$PGPORT"
