#!/bin/sh
# Start Alertmanager — the entrypoint of native mode and of the Compose service (POSIX sh: the
# official image has busybox, not bash). Alertmanager does not expand environment variables, so
# this writes the Slack webhook (SLACK_WEBHOOK_URL, from .env) into a private file next to a copy
# of alertmanager.yml, which reads it with api_url_file; with no webhook, alerts go to the
# `log-only` receiver (visible in Alertmanager's API and log) instead. Then it execs Alertmanager.
set -eu
src="${ALERTMANAGER_CONFIG_SOURCE:?the folder holding alertmanager.yml and templates/}"
run="${ALERTMANAGER_RUN_DIR:?a writable folder for the rendered config, the webhook file and data}"
mkdir -p "$run/templates" "$run/data"
cp "$src"/templates/*.tmpl "$run/templates/"
umask 077
if [ -n "${SLACK_WEBHOOK_URL:-}" ]; then
  printf '%s\n' "$SLACK_WEBHOOK_URL" > "$run/slack_webhook_url"
  receiver=slack
  echo "start-alertmanager: alerts go to Slack (webhook from SLACK_WEBHOOK_URL)"
else
  printf 'http://127.0.0.1:9/no-webhook-configured\n' > "$run/slack_webhook_url"
  receiver=log-only
  echo "start-alertmanager: SLACK_WEBHOOK_URL is not set: alerts stay in Alertmanager (receiver log-only)"
fi
# Alertmanager reads api_url_file relative to its working directory, not the config: make paths absolute.
sed -e "s|^  receiver: slack\$|  receiver: $receiver|" \
    -e "s|api_url_file: slack_webhook_url\$|api_url_file: $run/slack_webhook_url|" \
    -e "s|^  - templates/\*.tmpl\$|  - $run/templates/*.tmpl|" \
    "$src/alertmanager.yml" > "$run/alertmanager.yml"
exec "${ALERTMANAGER_BIN:-alertmanager}" \
  --config.file="$run/alertmanager.yml" \
  --storage.path="$run/data" \
  --web.listen-address="${ALERTMANAGER_LISTEN:-:9093}" \
  --web.external-url="${ALERTMANAGER_EXTERNAL_URL:-http://127.0.0.1:9093}" \
  --cluster.listen-address= \
  "$@"
