"""Look up data contracts by name (the `DATA_CONTRACT` setting)."""

from __future__ import annotations

import importlib

from mlstack.contract import DataContract

AVAILABLE = ("california_housing", "diabetes")


def get_contract(name: str) -> DataContract:
    """Return the contract called `name`; each lives in `mlstack/contracts/<name>.py` as CONTRACT."""
    if name not in AVAILABLE:
        raise ValueError(f"DATA_CONTRACT must be one of {', '.join(AVAILABLE)}; got {name!r}")
    module = importlib.import_module(f"mlstack.contracts.{name}")
    return module.CONTRACT
