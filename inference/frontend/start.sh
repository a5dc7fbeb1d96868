#!/usr/bin/env bash
# Start the web frontend: gunicorn serving mlstack.frontend.app:create_app().
# The same entrypoint runs in the Compose frontend service and under supervisord natively.
set -euo pipefail

echo "frontend: gunicorn on ${FRONTEND_BIND:-127.0.0.1}:${FRONTEND_PORT:-8003}, API at ${API_BASE_URL:-http://127.0.0.1:${WEB_PORT:-8000}/api}"
exec gunicorn -c "$(dirname "$0")/gunicorn.conf.py" "mlstack.frontend.app:create_app()"
