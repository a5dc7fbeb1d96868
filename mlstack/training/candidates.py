"""Define the model families the trainer compares and their small search spaces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import ParameterSampler
from sklearn.pipeline import Pipeline

from mlstack.contract import DataContract
from mlstack.features import preprocessor


@dataclass(frozen=True)
class Family:
    """A model family: how to build it, its baseline parameters and its search space."""

    name: str
    label: str
    make: Callable[[dict[str, Any], int], Any]
    defaults: dict[str, Any]
    space: dict[str, list[Any]] = field(default_factory=dict)
    scale: bool = False


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "linear", "Ridge regression (linear baseline)",
            lambda p, seed: Ridge(alpha=p["alpha"]),
            defaults={"alpha": 1.0, "log_target": False},
            space={"alpha": [0.1, 1.0, 10.0, 100.0], "log_target": [False, True]},
            scale=True,
        ),
        Family(
            "random_forest", "Random forest",
            lambda p, seed: RandomForestRegressor(
                n_estimators=p["n_estimators"], max_features=p["max_features"],
                min_samples_leaf=p["min_samples_leaf"], n_jobs=-1, random_state=seed,
            ),
            defaults={"n_estimators": 60, "max_features": 0.5, "min_samples_leaf": 2, "log_target": False},
            space={"n_estimators": [60, 100], "max_features": [0.33, 0.5, 0.7], "min_samples_leaf": [1, 2, 4],
                   "log_target": [False, True]},
        ),
        Family(
            "hist_gradient_boosting", "Histogram gradient boosting",
            lambda p, seed: HistGradientBoostingRegressor(
                learning_rate=p["learning_rate"], max_iter=p["max_iter"], max_leaf_nodes=p["max_leaf_nodes"],
                min_samples_leaf=p["min_samples_leaf"], l2_regularization=p["l2_regularization"],
                early_stopping=True, validation_fraction=0.1, n_iter_no_change=25, random_state=seed,
            ),
            defaults={"learning_rate": 0.1, "max_iter": 500, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                      "l2_regularization": 0.0, "log_target": False},
            space={"learning_rate": [0.05, 0.1, 0.15], "max_iter": [800], "max_leaf_nodes": [31, 63, 127],
                   "min_samples_leaf": [10, 20, 40], "l2_regularization": [0.0, 1.0],
                   "log_target": [False, True]},
        ),
    )
}


def build_model(contract: DataContract, family: Family, params: dict[str, Any], seed: int) -> Pipeline:
    """Return an unfitted pipeline taking raw contract features."""
    regressor = family.make(params, seed)
    if params.get("log_target"):
        regressor = TransformedTargetRegressor(regressor=regressor, func=np.log1p, inverse_func=np.expm1)
    return Pipeline([("features", preprocessor(contract, scale=family.scale)), ("model", regressor)])


def search_space(family: Family, n_iter: int, seed: int) -> list[dict[str, Any]]:
    """Return up to `n_iter` distinct parameter sets (seeded), excluding the baseline."""
    if n_iter <= 0 or not family.space:
        return []
    grid = [dict(p) for p in ParameterSampler(family.space, n_iter=n_iter + 1, random_state=seed)]
    baseline = {**family.defaults}
    out: list[dict[str, Any]] = []
    for params in grid:
        merged = {**family.defaults, **params}
        if merged != baseline and merged not in out:
            out.append(merged)
    return out[:n_iter]
