"""Helpers shared by the integration tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from mlstack.db.engine import create_engine
from mlstack.db.events import EventStore
from mlstack.db.migrate import upgrade
from mlstack.registry.aliases import Registry

SHOTS = Path(__file__).resolve().parents[2] / "reports" / "browser"


def registry(stack, model_name: str = "house-price") -> Registry:
    engine = create_engine(stack.app_db_url)
    upgrade(engine)
    return Registry(MlflowClient(stack.tracking_uri), model_name, EventStore(engine))


def versions(stack, model_name: str = "house-price") -> list[str]:
    client = MlflowClient(stack.tracking_uri)
    return sorted((v.version for v in client.search_model_versions(f"name='{model_name}'")), key=int)


def train_json(stack, **env: str) -> dict:
    result = stack.run("train", "--json", "--quiet", extra_env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def tiny_version(stack, contract, sample: pd.DataFrame, model_name: str | None = None,
                 target_scale: float = 1.0, family: str = "linear",
                 holdout: pd.DataFrame | None = None) -> tuple[str, str]:
    """Log and register a small model (linear unless `family`); return (model_name, version).

    `target_scale` trains on a scaled target: 10 makes a model whose predictions are absurd.
    With `holdout`, the version gets the holdout_rmse / holdout_mae tags training would give it.
    """
    from mlflow.models import infer_signature

    from mlstack.features import model_input
    from mlstack.training.candidates import FAMILIES, build_model
    from mlstack.training.pipeline import log_sklearn_model

    name = model_name or f"test-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(stack.tracking_uri)
    mlflow.set_experiment("integration-tests")
    x = model_input(sample, contract)
    model = build_model(contract, FAMILIES[family], FAMILIES[family].defaults, 0).fit(
        x, sample[contract.target.name] * target_scale)
    with mlflow.start_run():
        info = log_sklearn_model(model, x.dropna().head(3), infer_signature(x.head(3), model.predict(x.head(3))))
    mv = mlflow.register_model(info.model_uri, name)
    if holdout is not None:
        import numpy as np

        err = model.predict(model_input(holdout, contract)) - holdout[contract.target.name].to_numpy()
        client = MlflowClient(stack.tracking_uri)
        client.set_model_version_tag(name, mv.version, "holdout_rmse", str(float(np.sqrt(np.mean(err ** 2)))))
        client.set_model_version_tag(name, mv.version, "holdout_mae", str(float(np.mean(np.abs(err)))))
        client.set_model_version_tag(name, mv.version, "model_family", family)
    return name, str(mv.version)


def state(stack, model_name: str = "house-price") -> tuple[list[str], dict[str, str], int]:
    """Return (versions, aliases, number of events): what a failed run must leave unchanged."""
    reg = registry(stack, model_name)
    return versions(stack, model_name), reg.aliases(), len(reg.events.recent(model_name, limit=10_000))


def restore_aliases(stack, before: dict[str, str], model_name: str = "house-price") -> None:
    """Put every alias back as it was (champion first: the registry never lacks one); audited like any move."""
    from mlstack.registry.aliases import CHAMPION, move_alias

    reg = registry(stack, model_name)
    order = [CHAMPION, *sorted(set(before) - {CHAMPION})]
    for alias in order:
        move_alias(reg, alias, before[alias], actor="test", reason="restore after a test module")
    for alias in set(reg.aliases()) - set(before):
        move_alias(reg, alias, None, actor="test", reason="restore after a test module")



def shot(driver, name: str) -> Path:
    """Save a screenshot of the browser under reports/browser/ (the artifact to look at)."""
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"screenshot {path} is empty"
    return path
