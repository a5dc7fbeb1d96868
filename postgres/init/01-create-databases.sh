#!/usr/bin/env bash
# Create one database and one login user each for MLflow (and its users' store), the app and Airflow.
# Run by postgres/start.sh on the cluster's first start; idempotent, so it can
# also be run by hand against an existing server: PGHOST=... POSTGRES_USER=... ./01-create-databases.sh
set -euo pipefail

create() {
  local db="$1" user="$2" password="$3"
  echo "postgres-init: ensuring user '$user' and database '$db'"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
       --set=db="$db" --set=user="$user" --set=pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
}

create "${MLFLOW_DB_NAME:-mlflow}" "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
create "${MLFLOW_AUTH_DB_NAME:-mlflow_auth}" "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD}"
create "${APP_DB_NAME:-app}" "${APP_DB_USER:-app}" "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
create "${AIRFLOW_DB_NAME:-airflow}" "${AIRFLOW_DB_USER:-airflow}" "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}"
