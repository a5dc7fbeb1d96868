#!/usr/bin/env bash
# Start one Airflow component: api-server, scheduler, dag-processor or triggerer (LocalExecutor).
# The same entrypoint runs under supervisord natively and in the Compose airflow-* services;
# configuration comes from AIRFLOW__* variables set by the runner.
set -euo pipefail

component=${1:?usage: start.sh api-server|scheduler|dag-processor|triggerer|init}

if [[ "$component" == "init" ]]; then
  # One-shot: create or upgrade the metadata database (idempotent), as Compose's airflow-init does.
  echo "airflow: migrating the metadata database"
  exec airflow db migrate
fi

# The LocalExecutor's task slots: `auto` (or nothing) from the cores, by the rule in mlstack/settings.py (POOLS).
AIRFLOW__CORE__PARALLELISM=$(python -m mlstack.settings pool AIRFLOW_PARALLELISM "${AIRFLOW__CORE__PARALLELISM:-auto}")
export AIRFLOW__CORE__PARALLELISM

if [[ "$component" == "api-server" ]]; then
  # SimpleAuthManager reads passwords from a JSON file: write it from the environment (.env), 0600.
  : "${AIRFLOW_ADMIN_USER:?set AIRFLOW_ADMIN_USER}" "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
  file=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?set AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}
  mkdir -p "$(dirname "$file")"
  (umask 077 && python3 -c 'import json, os, sys; json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))' "$file")
fi

echo "airflow: starting $component"
exec airflow "$component"
