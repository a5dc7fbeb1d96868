"""Shared fixtures: the contract, the shipped data, and small CSV builders."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlstack.contract import DataContract
from mlstack.contracts import get_contract

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "housing.csv"
SAMPLE = ROOT / "tests" / "fixtures" / "housing_sample.csv"
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def contract() -> DataContract:
    return get_contract("california_housing")


@pytest.fixture(scope="session")
def housing() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture()
def sample() -> pd.DataFrame:
    """200 real rows, a fresh copy per test (safe to mutate)."""
    return pd.read_csv(SAMPLE)


@pytest.fixture(autouse=True)
def _restore_environ():
    """Undo environment changes a test makes (MLflow's set_tracking_uri writes os.environ)."""
    import os

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


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
