"""Shared fixtures: the contract, the shipped data, and small CSV builders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlstack.contract import DataContract
from mlstack.contracts import get_contract

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "housing.csv"
SAMPLE = ROOT / "tests" / "fixtures" / "housing_sample.csv"


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
