"""Start a private native stack for the integration tests, exactly as `make up` does.

The stack gets its own var dir, free ports, a generated .env and two fresh databases on the
PostgreSQL server at TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432), and is
torn down (databases dropped) at the end of the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")



def pytest_collection_modifyitems(items):  # noqa: D103
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def free_ports(count: int, low: int = 12000, high: int = 22000) -> list[int]:
    """Return `count` ports free on 127.0.0.1 (and free at +10000, for SeaweedFS's gRPC)."""
    import random

    found: list[int] = []
    rng = random.Random()
    while len(found) < count:
        port = rng.randrange(low, high)
        if port in found or port + 10000 in found:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        found.append(port)
    return found


@dataclass
class StackUnderTest:
    env: dict[str, str]
    var: Path
    tracking_uri: str
    app_db_url: str
    mlflow_db_url: str

    def run(self, *args: str, module: str = "mlstack", extra_env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `python -m <module> ...` with the stack's environment (what `make` targets run)."""
        return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                              env={**self.env, **(extra_env or {})}, timeout=timeout)

    def settings(self, cls, **overrides):
        """Build settings of `cls` from the stack's environment, in this process."""
        import mlstack.settings as s

        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            return s.load(cls, **overrides)
        finally:
            os.environ.clear()
            os.environ.update(old)


def _admin() -> sa.Engine:
    return sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[callable]:
    """Return a factory of fresh PostgreSQL database URLs; all are dropped at the end."""
    created: list[str] = []

    def make(prefix: str = "mlstack_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        created.append(name)
        return f"{PG}/{name}"

    yield make
    admin = _admin()
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, pg_database) -> Iterator[StackUnderTest]:
    """A running native stack (S3 + MLflow on PostgreSQL) with a first champion trained."""
    var = tmp_path_factory.mktemp("stack")
    env_file = var / "test.env"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "init-env.py"), "--env", str(env_file)], check=True,
                   capture_output=True)
    mlflow_port, s3_port, master, volume, filer, web, frontend, slot_a, slot_b = free_ports(9)
    app_db, mlflow_db = pg_database("mlstack_app"), pg_database("mlstack_mlflow")
    env = {
        **os.environ,
        "MLSTACK_ENV_FILE": str(env_file),
        "MLSTACK_VAR_DIR": str(var / "var"),
        "MLFLOW_PORT": str(mlflow_port),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "S3_PORT": str(s3_port),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "SEAWEEDFS_MASTER_PORT": str(master),
        "SEAWEEDFS_VOLUME_PORT": str(volume),
        "SEAWEEDFS_FILER_PORT": str(filer),
        "WEB_PORT": str(web),
        "FRONTEND_PORT": str(frontend),
        "BACKEND_A_PORT": str(slot_a),
        "BACKEND_B_PORT": str(slot_b),
        "MLFLOW_DATABASE_URL": mlflow_db,
        "APP_DATABASE_URL": app_db,
        # The first champion is a deliberately weak, fast linear model, so that the full
        # pipeline run in the tests earns `challenger`.
        "TRAIN_FAMILIES": "linear",
        "SEARCH_ITERATIONS": "0",
        "MLFLOW_CONNECT_ATTEMPTS": "3",
        "MLFLOW_CONNECT_BACKOFF_SECONDS": "0.5",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "COLUMNS": "200",
    }
    handle = StackUnderTest(env=env, var=var / "var", tracking_uri=f"http://127.0.0.1:{mlflow_port}",
                            app_db_url=app_db, mlflow_db_url=mlflow_db)
    result = handle.run("up", module="mlstack.native")
    handle.up_output = result.stdout + result.stderr
    try:
        assert result.returncode == 0, handle.up_output
        yield handle
    finally:
        handle.run("down", module="mlstack.native", timeout=120)
