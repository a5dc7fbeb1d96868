"""The train_model DAG's steps as plain functions (the DAG file only wires them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.settings import TrainingSettings, load


def validate_data(data_path: str | None = None) -> dict[str, Any]:
    """Validate the labelled CSV against the data contract; return its path, sha256 and row count.

    Raises ValidationError (naming every broken column and rule) on bad data: nothing is trained.
    """
    from mlstack.contracts import get_contract
    from mlstack.data import load_dataset

    settings = load(TrainingSettings)
    path = Path(data_path) if data_path else settings.DATA_PATH
    dataset = load_dataset(path.absolute(), get_contract(settings.DATA_CONTRACT))
    return {"path": str(path.absolute()), "sha256": dataset.sha256, "rows": len(dataset.frame),
            "warnings": [str(v) for v in dataset.report.warnings][:20]}


def already_trained(settings: TrainingSettings, data_sha256: str) -> dict[str, Any] | None:
    """Return the version already trained on this data by this code and training config, if any (a retry, a re-run)."""
    from mlstack.registry.aliases import read_aliases
    from mlstack.registry.connection import connect
    from mlstack.training.pipeline import git_commit

    client = connect(settings)
    commit = git_commit(settings)
    aliases = read_aliases(client, settings.MODEL_NAME)
    for v in client.search_model_versions(f"name='{settings.MODEL_NAME}'"):
        tags = v.tags or {}
        if (tags.get("data_sha256") == data_sha256 and tags.get("git_commit") == commit and commit
                and tags.get("training_config") == settings.training_config):
            alias = next((a for a, ver in aliases.items() if ver == str(v.version)), None)
            return {"version": str(v.version), "alias": alias, "skipped": True,
                    "reason": f"v{v.version} was already trained on this data by commit {commit[:12]} "
                              f"({settings.training_config})"}
    return None


def train_and_register(data_path: str, data_sha256: str, actor: str, dag_id: str | None = None, *,
                       families: str | None = None, search_iterations: int | None = None) -> dict[str, Any]:
    """Train, evaluate, register and give the alias the registry policy says; idempotent per data, code and config.

    `families` and `search_iterations` override TRAIN_FAMILIES and SEARCH_ITERATIONS for this run
    (the DAG's conf). Pushes the run's holdout metrics (per version) to the Pushgateway; with
    `dag_id`, also the DAG's success time (this is its last task).
    """
    from mlstack.monitoring import push
    from mlstack.training.pipeline import train

    overrides: dict[str, Any] = {}
    if families:
        overrides["TRAIN_FAMILIES"] = families
    if search_iterations is not None:
        overrides["SEARCH_ITERATIONS"] = int(search_iterations)
    settings = load(TrainingSettings, **overrides)
    done = already_trained(settings, data_sha256)
    if done:
        out = done
    else:
        result = train(settings, data_path=Path(data_path), actor=actor)
        out = {"version": result.version, "alias": result.alias, "reason": result.reason, "run_id": result.run_id,
               "family": result.family, "holdout_rmse": result.metrics.rmse, "seconds": round(result.seconds, 1),
               "skipped": False}
        push.push(settings.PUSHGATEWAY_URL, "train_model", push.training_samples(
            {**out, "train_seconds": result.seconds,
             "metrics": {f"holdout_{k}": v for k, v in result.metrics.headline().items()}}),
            grouping={"model_version": str(result.version)})
    if dag_id:
        push.dag_succeeded(settings.PUSHGATEWAY_URL, dag_id)
    return out
