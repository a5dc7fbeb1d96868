#!/bin/sh
# Render /etc/nginx/mlstack/nginx.conf from the environment (run by the nginx image at start).
set -eu
export NGINX_RUNTIME_DIR="${NGINX_RUNTIME_DIR:-/var/cache/nginx/mlstack}"
export NGINX_LOG_DIR="${NGINX_LOG_DIR:-/var/log/nginx}"
sh /opt/mlstack-nginx/render-config.sh /etc/nginx/mlstack
