# prometheus-nginx-exporter from Debian: the same binary and version native mode runs (the upstream
# image has no shell, so Compose could not health-check it).
FROM debian:bookworm-20250113-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus-nginx-exporter wget \
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9113
ENTRYPOINT ["/usr/bin/prometheus-nginx-exporter"]
