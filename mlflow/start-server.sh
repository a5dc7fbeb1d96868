#!/usr/bin/env bash
# Start the MLflow tracking server: PostgreSQL or SQLite backend store, artifacts proxied to S3.
# The same entrypoint runs in the Compose `mlflow` service and under supervisord in native mode.
set -euo pipefail

: "${MLFLOW_DATABASE_URL:?set MLFLOW_DATABASE_URL (backend store)}"
: "${S3_ENDPOINT_URL:?set S3_ENDPOINT_URL}"
: "${S3_BUCKET:?set S3_BUCKET}"
: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID in .env}"
: "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY in .env}"

# Only the server holds S3 credentials; clients need nothing but MLFLOW_TRACKING_URI.
export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY"
export AWS_DEFAULT_REGION="${S3_REGION:-us-east-1}"
export MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT_URL"
# The job runner forks several consumers (~2 GB RSS) that this stack does not use.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false

echo "mlflow: backend ${MLFLOW_DATABASE_URL%%:*}, artifacts s3://${S3_BUCKET}/mlflow at ${S3_ENDPOINT_URL}," \
     "listening on ${MLFLOW_HOST:-0.0.0.0}:${MLFLOW_PORT:-5000}"
exec mlflow server \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" \
  --backend-store-uri "$MLFLOW_DATABASE_URL" \
  --serve-artifacts \
  --artifacts-destination "s3://${S3_BUCKET}/mlflow" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost,localhost:*,127.0.0.1,127.0.0.1:*}"
