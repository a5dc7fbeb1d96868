#!/usr/bin/env bash
# Start PostgreSQL for the Compose stack. On the first start (an empty data volume) create the
# cluster — UTF-8 (a SQL_ASCII database breaks Airflow on the first non-ASCII DAG doc), the
# superuser's password from .env, password logins over the network — and run postgres/init/*.sh
# (one database and login per service) against a server listening on its socket only.
set -euo pipefail

: "${PGDATA:?set PGDATA}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  echo "postgres: initialising a new cluster in $PGDATA"
  initdb --pgdata="$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
         --auth-local=trust --auth-host=scram-sha-256 --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses='' -k /var/run/postgresql" start
  for script in /etc/mlstack/postgres-init/*.sh; do
    echo "postgres: running $(basename "$script")"
    PGHOST=/var/run/postgresql POSTGRES_USER=postgres bash "$script"
  done
  pg_ctl --pgdata="$PGDATA" --wait --silent -m fast stop
  echo "postgres: cluster ready"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql
