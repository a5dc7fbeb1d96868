#!/usr/bin/env bash
# Start the MLflow tracking server: PostgreSQL or SQLite backend store, artifacts proxied to S3.
# The same entrypoint runs in the Compose `mlflow` service and under supervisord in native mode.
set -euo pipefail

: "${MLFLOW_DATABASE_URL:?set MLFLOW_DATABASE_URL (backend store)}"
: "${S3_ENDPOINT_URL:?set S3_ENDPOINT_URL}"
: "${S3_BUCKET:?set S3_BUCKET}"
: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID in .env}"
: "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY in .env}"
: "${MLFLOW_TRACKING_PASSWORD:?set MLFLOW_TRACKING_PASSWORD in .env (the MLflow login; make env generates it)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY in .env (CSRF tokens of the UI)}"
: "${MLFLOW_AUTH_DATABASE_URL:?set MLFLOW_AUTH_DATABASE_URL (where MLflow keeps its users)}"

# Basic auth: every API call and UI page needs the login (health and static files excepted).
# The admin user is created from .env on the first start against an empty user store.
auth_ini="${MLFLOW_AUTH_CONFIG_PATH:-/tmp/mlflow-basic-auth.ini}"
mkdir -p "$(dirname "$auth_ini")"
(umask 077 && cat > "$auth_ini" <<EOF
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URL}
admin_username = ${MLFLOW_TRACKING_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
auth_cache_ttl_seconds = 60
EOF
)
export MLFLOW_AUTH_CONFIG_PATH="$auth_ini"
export MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD"
unset MLFLOW_TRACKING_PASSWORD

# Only the server holds S3 credentials; clients need MLFLOW_TRACKING_URI and the login.
export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY"
export AWS_DEFAULT_REGION="${S3_REGION:-us-east-1}"
export MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT_URL"
# The job runner forks several consumers (~2 GB RSS) that this stack does not use.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

# `auto` (or nothing): from the cores, by the rule in mlstack/settings.py (POOLS).
MLFLOW_WORKERS=$(python -m mlstack.settings pool MLFLOW_WORKERS "${MLFLOW_WORKERS:-auto}")

echo "mlflow: backend ${MLFLOW_DATABASE_URL%%:*}, artifacts s3://${S3_BUCKET}/mlflow at ${S3_ENDPOINT_URL}," \
     "listening on ${MLFLOW_HOST:-0.0.0.0}:${MLFLOW_PORT:-5000}"
# `mlflow server` with these options, as one process (mlstack/registry/server.py: the CLI execs uvicorn
# instead of waiting on it as a child).
exec python -m mlstack.registry.server \
  --app-name basic-auth \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "$MLFLOW_WORKERS" \
  --backend-store-uri "$MLFLOW_DATABASE_URL" \
  --serve-artifacts \
  --artifacts-destination "s3://${S3_BUCKET}/mlflow" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost,localhost:*,127.0.0.1,127.0.0.1:*}"
