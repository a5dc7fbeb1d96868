#!/usr/bin/env bash
# The container engine for `make test` and `make compose-up`: start Docker's daemon when none answers,
# stop only a daemon this script started, make the Debian base image when no registry provides it,
# and hand the build the host's extra CA certificates.
#
# usage: scripts/docker-engine.sh start|stop|base|ca-certificates
#   start            start dockerd (Debian's docker.io) unless a daemon already answers; never restarts one
#   stop             stop the dockerd that `start` started (its pid file says so); leave any other alone
#   base             make debian:bookworm-slim with debootstrap + docker import when the engine lacks it
#   ca-certificates  copy /usr/local/share/ca-certificates/*.crt into docker/ca-certificates/ (git-ignored):
#                    the Python image's build stage trusts them to reach PyPI; the image itself never holds them
set -euo pipefail
cd "$(dirname "$0")/.."

state="var/docker-engine"
pidfile="$state/dockerd.pid"
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"
BASE_RECIPE=2  # raise when the recipe below changes: a base made here by an older one is made again

answers() { timeout 20 docker info >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if answers; then
      echo "engine: a Docker daemon answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)); using it"
      exit 0
    fi
    command -v dockerd >/dev/null || { echo "engine: dockerd not found (scripts/install.sh test installs docker.io)" >&2; exit 1; }
    mkdir -p "$state"
    echo "engine: no daemon answers; starting dockerd (log: $state/dockerd.log)"
    setsid dockerd >"$state/dockerd.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    for _ in $(seq 1 60); do
      answers && { echo "engine: dockerd $(docker version --format '{{.Server.Version}}') is up"; exit 0; }
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 1
    done
    echo "engine: dockerd did not answer; last lines of $state/dockerd.log:" >&2
    tail -n 20 "$state/dockerd.log" >&2
    exit 1
    ;;
  stop)
    [[ -f "$pidfile" ]] || { echo "engine: no dockerd started here; nothing to stop"; exit 0; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      echo "engine: stopping the dockerd started here (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
    rm -f "$pidfile"
    ;;
  base)
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
      made=$(docker image inspect -f '{{index .Config.Labels "org.mlstack.base"}}' "$BASE_IMAGE" 2>/dev/null || true)
      if [[ -z "$made" || "$made" == "<no value>" || "$made" == "$BASE_RECIPE" ]]; then
        echo "engine: base image $BASE_IMAGE present"
        exit 0
      fi
      echo "engine: $BASE_IMAGE was made here by an older recipe ($made); making it again"
    fi
    # With a registry the builds simply pull it; here none is reachable, so make it from Debian's archive.
    command -v debootstrap >/dev/null || { echo "engine: debootstrap not found (scripts/install.sh test installs it)" >&2; exit 1; }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mirror=$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "engine: making $BASE_IMAGE with debootstrap --variant=minbase $SUITE from $mirror (about a minute)"
    started=$(date +%s)
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
      || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    # What the official slim image carries: the security and updates suites, no docs or man pages,
    # no services started by package scripts, and an empty apt cache.
    cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb ${mirror%/debian}/debian-security $SUITE-security main
SOURCES
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
    printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
    chmod +x "$rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\n' > "$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
    cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CLEAN
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' --change "LABEL org.mlstack.base=$BASE_RECIPE" \
      - "$BASE_IMAGE" >/dev/null
    echo "engine: $BASE_IMAGE made in $(( $(date +%s) - started ))s ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
    ;;
  ca-certificates)
    dest=docker/ca-certificates
    find "$dest" -name '*.crt' -delete
    shopt -s nullglob
    certs=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
    for crt in "${certs[@]}"; do cp "$crt" "$dest/"; done
    echo "engine: ${#certs[@]} extra CA certificate(s) of this host for the image builds"
    ;;
  *)
    echo "usage: $0 start|stop|base|ca-certificates" >&2
    exit 2
    ;;
esac
