#!/bin/sh
# postgres-entrypoint.sh [postgres] [-c name=value ...]: the server in the foreground, after a first
# start's set-up (initdb, user, database from POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, as the
# official image does); any other command runs as given.
set -eu

case "${1:-postgres}" in
    postgres) [ $# -gt 0 ] && shift ;;
    -*) ;;
    *) exec "$@" ;;
esac

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

# PostgreSQL refuses root: prepare the folders, then run this script again as postgres.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?is not set: the superuser's password (there is no default)}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 --no-instructions
    rm -f "$pwfile"
    # Other containers connect over the network: every address, with the password.
    printf '\nlisten_addresses = '"'*'"'\n' >> "$PGDATA/postgresql.conf"
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # Socket only while setting up: nobody connects before the database exists.
        "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w -s start
        "$bin/psql" -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres -v db="$db" <<'SQL'
CREATE DATABASE :"db";
SQL
        "$bin/pg_ctl" -D "$PGDATA" -m fast -w -s stop
    fi
    echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi

exec "$bin/postgres" -D "$PGDATA" "$@"
