#!/usr/bin/env bash
# Start one inference slot (A or B): gunicorn serving mlstack.serving.app:create_app().
# The same entrypoint runs in the Compose backend-a/backend-b services and under supervisord natively.
set -euo pipefail

: "${SLOT:?set SLOT to A or B}"

# Metrics of all workers are aggregated through files in this directory; stale files from a
# previous run would be counted again, so it starts empty.
if [[ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
# One thread per worker: OpenMP/BLAS pools in several workers on few cores thrash.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

echo "slot ${SLOT}: gunicorn on ${BACKEND_BIND:-127.0.0.1}:${BACKEND_PORT:-8001}, ${BACKEND_WORKERS:-auto} worker(s)"
exec gunicorn -c "$(dirname "$0")/gunicorn.conf.py" "mlstack.serving.app:create_app()"
