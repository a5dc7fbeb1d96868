#!/bin/sh
# Render nginx.conf from nginx.conf.template and the environment; print where it went.
# Used by native mode (mlstack.native) and by the Compose nginx image at start.
#   usage: render-config.sh OUTPUT_DIR     (writes OUTPUT_DIR/nginx.conf and proxy-slot.conf)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: render-config.sh OUTPUT_DIR}
weight=${AB_WEIGHT_B:-10}
case "$weight" in
  ''|*[!0-9]*) echo "render-config: AB_WEIGHT_B must be a whole number from 0 to 100, got '$weight'" >&2; exit 2 ;;
esac
if [ "$weight" -gt 100 ]; then
  echo "render-config: AB_WEIGHT_B must be a whole number from 0 to 100, got '$weight'" >&2; exit 2
fi
# split_clients refuses "0%": with no share for B, its line is left out.
if [ "$weight" -gt 0 ]; then AB_SPLIT="        ${weight}%   B;
"; else AB_SPLIT=""; fi

export AB_SPLIT AB_WEIGHT_B="$weight"
export NGINX_LISTEN="${NGINX_LISTEN:-127.0.0.1:8000}"
export NGINX_STATUS_LISTEN="${NGINX_STATUS_LISTEN:-127.0.0.1:8009}"
export BACKEND_A="${BACKEND_A:?set BACKEND_A (host:port of slot A)}"
export BACKEND_B="${BACKEND_B:?set BACKEND_B (host:port of slot B)}"
# The web frontend is optional: without one, / answers a JSON 404 instead of a 502.
FRONTEND="${FRONTEND:-}"
if [ -n "$FRONTEND" ]; then
  FRONTEND_UPSTREAM="    upstream frontend {
        server ${FRONTEND};
        keepalive 8;
    }
"
  FRONTEND_LOCATION='            proxy_pass http://frontend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-User-Id $ab_key;
            proxy_set_header X-Request-Id $request_id;
            include '"$out"'/headers.conf;
'
else
  FRONTEND_UPSTREAM=""
  FRONTEND_LOCATION="            return 404 '{\"error\":\"not_found\",\"message\":\"no web frontend is configured; the API is under /api/\",\"fields\":{}}';
"
fi
export FRONTEND FRONTEND_UPSTREAM FRONTEND_LOCATION
# Native mode run by root: workers run as root too, like every other native service, so they can
# write request bodies to a runtime dir under a home only root may enter (Debian's default `nobody`
# cannot, and bodies over client_body_buffer_size would fail with a 500).
if [ -n "${NGINX_USER:-}" ]; then NGINX_USER_LINE="user ${NGINX_USER};"; else NGINX_USER_LINE=""; fi
export NGINX_USER_LINE
export NGINX_WORKERS="${NGINX_WORKERS:-auto}"
export NGINX_RUNTIME_DIR="${NGINX_RUNTIME_DIR:?set NGINX_RUNTIME_DIR}"
export NGINX_CONF_DIR="$out"
export NGINX_MAX_BODY="${NGINX_MAX_BODY:-16m}"
export NGINX_RATE_LIMIT="${NGINX_RATE_LIMIT:-1000}"
export NGINX_RATE_BURST="${NGINX_RATE_BURST:-2000}"
export NGINX_FEEDBACK_RATE_LIMIT="${NGINX_FEEDBACK_RATE_LIMIT:-200}"
export NGINX_FEEDBACK_RATE_BURST="${NGINX_FEEDBACK_RATE_BURST:-400}"

mkdir -p "$out" "$NGINX_RUNTIME_DIR"
vars='${NGINX_USER_LINE} ${AB_SPLIT} ${AB_WEIGHT_B} ${NGINX_LISTEN} ${NGINX_STATUS_LISTEN} ${BACKEND_A} ${BACKEND_B} ${FRONTEND_UPSTREAM} ${FRONTEND_LOCATION} ${NGINX_WORKERS}
${NGINX_RUNTIME_DIR} ${NGINX_CONF_DIR} ${NGINX_MAX_BODY} ${NGINX_RATE_LIMIT} ${NGINX_RATE_BURST}
${NGINX_FEEDBACK_RATE_LIMIT} ${NGINX_FEEDBACK_RATE_BURST}'
envsubst "$vars" < "$here/nginx.conf.template" > "$out/nginx.conf.new"
# The snippets name the conf dir too (nginx resolves include paths from its prefix otherwise).
for snippet in proxy-slot.conf headers.conf; do
  envsubst '${NGINX_CONF_DIR}' < "$here/$snippet" > "$out/$snippet"
done
mv "$out/nginx.conf.new" "$out/nginx.conf"
echo "$out/nginx.conf (B share ${weight}%)"
