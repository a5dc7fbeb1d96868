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
apt_test=(docker-compose chromium chromium-driver graphviz)
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
