#!/bin/sh
# The Compose nginx service: render the config from the environment and run nginx in the foreground.
# `start.sh reload WEIGHT` (run with docker compose exec) renders it again with B's share WEIGHT,
# checks it and reloads nginx gracefully; an invalid config is refused while the old one serves.
# Native mode renders with the same render-config.sh and runs nginx under supervisord.
set -eu
home=/var/lib/mlstack-nginx
conf=$home/conf
args="-p $home -e stderr"
if [ "${1:-}" = reload ]; then
  AB_WEIGHT_B=${2:?usage: start.sh reload WEIGHT}
  export AB_WEIGHT_B
  staging=$home/conf.staging
  # `nginx -t` truncates the pid file its config names: test with a runtime dir of its own.
  NGINX_RUNTIME_DIR=$staging/run sh /opt/mlstack/nginx/render-config.sh "$staging" >/dev/null
  nginx $args -t -q -c "$staging/nginx.conf"
  rm -rf "$staging"
  sh /opt/mlstack/nginx/render-config.sh "$conf"
  exec nginx $args -c "$conf/nginx.conf" -s reload
fi
sh /opt/mlstack/nginx/render-config.sh "$conf"
exec nginx $args -c "$conf/nginx.conf" -g 'daemon off;'
