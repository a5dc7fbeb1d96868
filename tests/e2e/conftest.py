"""The end-to-end scenario's stacks: one native, one under Docker Compose, one after the other.

Each mode gets its own .env (generated secrets, free ports, a private Compose project or private
PostgreSQL databases) and is torn down before the next starts: on 2 cores the two stacks never run
at once. E2E_MODES=native or E2E_MODES=compose runs one mode only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parents[2]
MODES = [m.strip() for m in os.environ.get("E2E_MODES", "native,compose").split(",") if m.strip()]
PORTS = ("WEB_PORT", "FRONTEND_PORT", "MLFLOW_PORT", "BACKEND_A_PORT", "BACKEND_B_PORT", "S3_PORT", "AIRFLOW_PORT",
         "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "PUSHGATEWAY_PORT", "SLACK_SINK_PORT", "SEAWEEDFS_MASTER_PORT",
         "SEAWEEDFS_VOLUME_PORT", "SEAWEEDFS_FILER_PORT", "POSTGRES_PORT", "AIRFLOW_WORKER_LOG_PORT",
         "AIRFLOW_TRIGGER_LOG_PORT", "NGINX_STATUS_PORT", "NGINX_EXPORTER_PORT", "POSTGRES_EXPORTER_PORT",
         "BLACKBOX_EXPORTER_PORT", "GRAFANA_PORT", "LOCUST_PORT")


def pytest_collection_modifyitems(items):  # noqa: D103
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def write_env(path: Path, values: dict[str, str]) -> None:
    """Generate a .env as `make env` does, then set `values` in it."""
    from mlstack.deployment import set_env_value

    subprocess.run([sys.executable, str(ROOT / "scripts" / "init-env.py"), "--env", str(path)], check=True,
                   capture_output=True)
    for name, value in values.items():
        set_env_value(path, name, value)


@pytest.fixture(scope="module", params=MODES)
def deployment(request, tmp_path_factory, pg_database) -> Iterator:
    """A running stack of one mode, up as `make up` / `make compose-up` starts it, with a weak first champion."""
    from mlstack.deployment import open_deployment
    from mlstack.settings import StackSettings, load

    mode = request.param
    home = tmp_path_factory.mktemp(f"e2e-{mode}")
    env_path = home / ".env"
    values = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    values |= {
        "MLSTACK_VAR_DIR": str(home / "var"),
        "COMPOSE_PROJECT_NAME": f"mlstack-e2e-{uuid.uuid4().hex[:6]}",
        # Grafana as .env.example has it: where its image cannot be pulled, everything else must start
        "COMPOSE_PROFILES": "grafana",
        # a weak, fast first champion, so that a better challenger has something to beat
        "TRAIN_FAMILIES": "linear", "SEARCH_ITERATIONS": "0",
        # the judge's counts every second; slots look for alias moves every 2 s
        "STATS_PERIOD_SECONDS": "1", "MODEL_POLL_SECONDS": "2",
        # the scenario unpauses what it runs: nothing decides behind its back
        "AIRFLOW_DAGS_PAUSED": "true",
    }
    if mode == "native":  # natively the stack uses the machine's PostgreSQL
        values |= {"MLFLOW_DATABASE_URL": pg_database("e2e_mlflow"), "APP_DATABASE_URL": pg_database("e2e_app"),
                   "AIRFLOW_DATABASE_URL": pg_database("e2e_airflow")}
    write_env(env_path, values)
    saved = os.environ.get("MLSTACK_ENV_FILE")
    os.environ["MLSTACK_ENV_FILE"] = str(env_path)
    stack = open_deployment(mode, load(StackSettings), console=Console(record=True, width=160), env_path=env_path)
    try:
        stack.up()
        os.environ.update(stack.client_env())  # this process's clients (registry, audit) reach the same stack
        yield stack
    finally:
        try:
            if mode == "compose":
                stack.down(volumes=True)
            else:
                stack.down()
        finally:
            for name in stack.client_env():
                os.environ.pop(name, None)
            if saved is None:
                os.environ.pop("MLSTACK_ENV_FILE", None)
            else:
                os.environ["MLSTACK_ENV_FILE"] = saved


@pytest.fixture
def scratch_database(deployment, pg_database):
    """A factory of database URLs nothing uses yet, on the stack's own PostgreSQL server."""
    if deployment.mode == "native":
        return pg_database
    s = deployment.settings
    admin = f"postgresql+psycopg2://postgres:{s.POSTGRES_PASSWORD.get_secret_value()}@127.0.0.1:{s.POSTGRES_PORT}"
    return lambda prefix: f"{admin}/{prefix}_{uuid.uuid4().hex[:8]}"  # the Compose volumes go with the stack
