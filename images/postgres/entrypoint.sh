#!/bin/sh
# The cluster in $PGDATA, made at the first start: the superuser postgres logs in locally by peer
# (docker exec --user postgres needs no password), every other role by password (scram-sha-256),
# from anywhere. POSTGRES_USER (with POSTGRES_PASSWORD) and POSTGRES_DB, when set, are created
# then; the password reaches psql through its environment (\getenv), never a command line.
set -eu
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # The temporary server listens on a private socket only: nothing (the healthcheck, a client)
    # sees a server before the real one runs.
    mkdir -p /tmp/opsbook-init
    export PGHOST=/tmp/opsbook-init
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/tmp/opsbook-init" start >/dev/null
    if [ -n "${POSTGRES_USER:-}" ] && [ "${POSTGRES_USER}" != postgres ]; then
        psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
\getenv user POSTGRES_USER
\getenv password POSTGRES_PASSWORD
CREATE ROLE :"user" LOGIN PASSWORD :'password';
SQL
    fi
    if [ -n "${POSTGRES_DB:-}" ] && [ "${POSTGRES_DB}" != postgres ]; then
        export POSTGRES_USER="${POSTGRES_USER:-postgres}"
        psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
\getenv db POSTGRES_DB
\getenv owner POSTGRES_USER
CREATE DATABASE :"db" OWNER :"owner";
SQL
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGHOST
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
