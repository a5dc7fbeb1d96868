"""Run the training pipeline: load → validate → split → fit candidates → search → evaluate → register.

Every step is a plain function of this package; the CLI and the Airflow DAG both call `train`.
Nothing touches the registry until the data has passed validation, and a run that fails after
registering deletes the version it created, so a failed run leaves the registry unchanged.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlstack.contract import DataContract
from mlstack.contracts import get_contract
from mlstack.data import Dataset, Split, load_dataset, split
from mlstack.features import model_input
from mlstack.settings import TrainingSettings
from mlstack.training.candidates import FAMILIES, build_model, search_space
from mlstack.training.evaluation import Metrics, report_html, residual_plot_png, score

log = logging.getLogger(__name__)

STEPS = ("validate", "connect", "baselines", "search", "evaluate", "log", "register")


class Progress(Protocol):
    """Receives progress from the pipeline (the CLI draws it; tests and DAGs may log it)."""

    def start(self, step: str, description: str, total: int | None = None) -> None: ...
    def advance(self, step: str, note: str = "") -> None: ...
    def finish(self, step: str, note: str = "") -> None: ...


class LogProgress:
    """Progress written to the log, one line per event (for non-interactive runs)."""

    def start(self, step: str, description: str, total: int | None = None) -> None:
        log.info("[%d/%d] %s", STEPS.index(step) + 1, len(STEPS), description)

    def advance(self, step: str, note: str = "") -> None:
        if note:
            log.info("    %s", note)

    def finish(self, step: str, note: str = "") -> None:
        if note:
            log.info("    done: %s", note)


@dataclass(frozen=True)
class Candidate:
    family: str
    stage: str
    params: dict[str, Any]
    validation_rmse: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "stage": self.stage, "params": self.params,
                "validation_rmse": self.validation_rmse, "seconds": self.seconds}


@dataclass
class TrainResult:
    """What a training run produced and decided."""

    run_id: str
    model_name: str
    version: str
    alias: str | None
    reason: str
    family: str
    params: dict[str, Any]
    metrics: Metrics
    candidates: list[Candidate]
    data_sha256: str
    holdout_sha256: str
    incumbents: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def git_commit(settings: TrainingSettings) -> str:
    """Return the source commit: GIT_COMMIT if set (images), else `git rev-parse HEAD`."""
    if settings.GIT_COMMIT:
        return settings.GIT_COMMIT
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _rmse(y: pd.Series, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype="float64") - y.to_numpy(dtype="float64")) ** 2)))


def fit_candidates(contract: DataContract, parts: Split, settings: TrainingSettings, families: list[str],
                   progress: Progress) -> tuple[list[Candidate], str, dict[str, Any]]:
    """Fit each family's baseline, then search the best family; return all candidates and the winner."""
    y = contract.target.name
    x_train, y_train = model_input(parts.train, contract), parts.train[y]
    x_val, y_val = model_input(parts.validation, contract), parts.validation[y]
    candidates: list[Candidate] = []

    def fit(family: str, stage: str, params: dict[str, Any]) -> Candidate:
        started = time.perf_counter()
        model = build_model(contract, FAMILIES[family], params, settings.SPLIT_SEED).fit(x_train, y_train)
        cand = Candidate(family, stage, params, _rmse(y_val, model.predict(x_val)), time.perf_counter() - started)
        candidates.append(cand)
        return cand

    progress.start("baselines", f"Fitting {len(families)} baseline families", total=len(families))
    for family in families:
        cand = fit(family, "baseline", dict(FAMILIES[family].defaults))
        progress.advance("baselines", f"{family}: validation RMSE {cand.validation_rmse:,.0f} ({cand.seconds:.1f}s)")
    best = min(candidates, key=lambda c: c.validation_rmse)
    progress.finish("baselines", f"best family: {best.family}")

    space = search_space(FAMILIES[best.family], settings.SEARCH_ITERATIONS, settings.SPLIT_SEED)
    progress.start("search", f"Searching {len(space)} settings of {best.family}", total=len(space))
    for params in space:
        cand = fit(best.family, "search", params)
        progress.advance("search", f"validation RMSE {cand.validation_rmse:,.0f} ({cand.seconds:.1f}s)")
    winner = min((c for c in candidates if c.family == best.family), key=lambda c: c.validation_rmse)
    progress.finish("search", f"best validation RMSE {winner.validation_rmse:,.0f}")
    return candidates, winner.family, winner.params


def train(settings: TrainingSettings, *, data_path: Path | None = None, actor: str = "cli",
          progress: Progress | None = None) -> TrainResult:
    """Train, evaluate and register one model; return what happened. Raises on any failure."""
    import mlflow
    from mlflow.models import infer_signature

    from mlstack.db.engine import create_engine
    from mlstack.db.events import EventStore, ModelEvent
    from mlstack.db.migrate import upgrade
    from mlstack.registry.aliases import CHALLENGER, CHAMPION, MissingArtifacts, Registry
    from mlstack.registry.connection import connect
    from mlstack.registry.policy import Incumbent, apply_registration, decide_registration

    progress = progress or LogProgress()
    started = time.perf_counter()
    contract = get_contract(settings.DATA_CONTRACT)
    path = Path(data_path or settings.DATA_PATH)

    progress.start("validate", f"Validating {path}")
    dataset: Dataset = load_dataset(path, contract)
    parts = split(dataset.frame, contract, seed=settings.SPLIT_SEED, holdout_fraction=settings.HOLDOUT_FRACTION,
                  validation_fraction=settings.VALIDATION_FRACTION)
    holdout_sha = parts.holdout_sha256(contract)
    progress.finish("validate", f"{len(dataset.frame):,} rows; train {len(parts.train):,}, "
                                f"validation {len(parts.validation):,}, holdout {len(parts.holdout):,}")

    progress.start("connect", f"Connecting to MLflow at {settings.MLFLOW_TRACKING_URI}")
    client = connect(settings)
    engine = create_engine(settings.APP_DATABASE_URL)
    upgrade(engine)
    registry = Registry(client, settings.MODEL_NAME, EventStore(engine, settings.audit_key()))
    experiment = mlflow.set_experiment(settings.MLFLOW_EXPERIMENT_NAME)
    progress.finish("connect", f"experiment {experiment.name!r} ({experiment.experiment_id})")

    candidates, family, params = fit_candidates(contract, parts, settings, settings.families, progress)

    progress.start("evaluate", f"Refitting {family} on train + validation; scoring the holdout")
    y = contract.target.name
    model = build_model(contract, FAMILIES[family], params, settings.SPLIT_SEED)
    model.fit(model_input(parts.train_full, contract), parts.train_full[y])
    x_hold = model_input(parts.holdout, contract)
    predictions = model.predict(x_hold)
    segments = parts.holdout[contract.segment] if contract.segment else None
    metrics = score(parts.holdout[y], predictions, segments)
    progress.finish("evaluate", f"holdout RMSE {metrics.rmse:,.0f}, MAE {metrics.mae:,.0f}, R² {metrics.r2:.3f}")

    commit = git_commit(settings)
    version: str | None = None
    with mlflow.start_run(run_name=f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}") as run:
        try:
            progress.start("log", "Logging run, candidates, report and model to MLflow", total=len(candidates) + 3)
            mlflow.set_tags({"git_commit": commit, "data_sha256": dataset.sha256, "holdout_sha256": holdout_sha,
                             "data_contract": contract.name, "actor": actor, "model_family": family,
                             "mlflow.source.git.commit": commit})
            mlflow.log_params({"data_path": str(path), "rows": len(dataset.frame), "split_seed": settings.SPLIT_SEED,
                               "holdout_fraction": settings.HOLDOUT_FRACTION,
                               "validation_fraction": settings.VALIDATION_FRACTION,
                               "families": ",".join(settings.families), "search_iterations": settings.SEARCH_ITERATIONS,
                               "family": family, **{f"model.{k}": v for k, v in params.items()}})
            with warnings.catch_warnings():
                # MLflow registers two identical local-file source classes and warns it picked one.
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                source = mlflow.data.from_pandas(dataset.frame, source=path.absolute().as_uri(), targets=y,
                                                 name=path.name, digest=dataset.sha256[:12])
            mlflow.log_input(source, context="training")
            for i, cand in enumerate(candidates):
                with mlflow.start_run(run_name=f"{cand.stage}-{cand.family}-{i}", nested=True):
                    mlflow.log_params({"family": cand.family, "stage": cand.stage, **cand.params})
                    mlflow.log_metrics({"validation_rmse": cand.validation_rmse, "fit_seconds": cand.seconds})
                progress.advance("log")
            mlflow.log_metrics({**metrics.as_mlflow(), "best_validation_rmse": min(c.validation_rmse for c in candidates)})
            plot = residual_plot_png(parts.holdout[y], predictions, contract)
            facts = {"data file": str(path), "data sha256": dataset.sha256, "holdout sha256": holdout_sha,
                     "git commit": commit, "family": family, "parameters": params, "run": run.info.run_id}
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "evaluation.html").write_text(report_html(
                    title=f"{settings.MODEL_NAME}: evaluation of run {run.info.run_id[:8]}", contract=contract,
                    metrics=metrics, candidates=[c.as_dict() for c in candidates], plot_png=plot, facts=facts))
                (Path(tmp) / "residuals.png").write_bytes(plot)
                (Path(tmp) / "validation.txt").write_text(dataset.report.summary() + "\n")
                mlflow.log_artifacts(tmp, artifact_path="evaluation")
            progress.advance("log", "evaluation report")
            example = x_hold.dropna().head(5)
            model_info = log_sklearn_model(model, example, infer_signature(example, model.predict(example)))
            progress.finish("log", f"model {model_info.model_id}")

            progress.start("register", f"Comparing with incumbents; registering {settings.MODEL_NAME}")
            incumbents: dict[str, Incumbent] = {}
            for alias in (CHAMPION, CHALLENGER):
                inc_version = registry.alias_version(alias)
                if inc_version is not None:
                    incumbents[alias] = Incumbent(alias, inc_version,
                                                  incumbent_rmse(client, settings.MODEL_NAME, inc_version,
                                                                 holdout_sha, x_hold, parts.holdout[y]))
            decision = decide_registration(metrics.rmse, incumbents.get(CHAMPION), incumbents.get(CHALLENGER),
                                           settings.PROMOTION_MIN_IMPROVEMENT)
            tags = {"holdout_rmse": f"{metrics.rmse:.4f}", "holdout_mae": f"{metrics.mae:.4f}",
                    "holdout_r2": f"{metrics.r2:.6f}", "holdout_sha256": holdout_sha, "data_sha256": dataset.sha256,
                    "model_family": family, "git_commit": commit, "data_contract": contract.name,
                    "run_id": run.info.run_id, "registration_decision": decision.alias or "none",
                    "training_config": settings.training_config}
            mv = mlflow.register_model(model_info.model_uri, settings.MODEL_NAME, tags=tags)
            version = str(mv.version)
            if not registry.artifacts_present(version):
                raise MissingArtifacts(f"{settings.MODEL_NAME} v{version}: artifacts not found in the store "
                                       "right after logging; the version is removed")
            snapshot = {**metrics.headline(), **{f"{a}_rmse": i.rmse for a, i in incumbents.items()}}
            details = {"run_id": run.info.run_id, "family": family, "decision": decision.alias or "none",
                       "data_sha256": dataset.sha256, "holdout_sha256": holdout_sha, "git_commit": commit}
            registry.events.append(ModelEvent(actor, "register", settings.MODEL_NAME, decision.reason,
                                              version_after=version, metrics=snapshot, details=details))
            apply_registration(registry, version, decision, actor=actor, metrics=snapshot, details=details)
            mlflow.set_tags({"registered_version": version, "registration_decision": decision.alias or "none"})
            progress.finish("register", f"version {version}: {decision.alias or 'no alias'} ({decision.reason})")
        except BaseException as exc:
            if version is not None:
                remove_failed_version(registry, version, actor, exc)
            raise
    engine.dispose()
    return TrainResult(
        run_id=run.info.run_id, model_name=settings.MODEL_NAME, version=version, alias=decision.alias,
        reason=decision.reason, family=family, params=params, metrics=metrics, candidates=candidates,
        data_sha256=dataset.sha256, holdout_sha256=holdout_sha,
        incumbents={a: {"version": i.version, "rmse": i.rmse} for a, i in incumbents.items()},
        seconds=time.perf_counter() - started,
    )


# What a served model needs besides the mlstack package (which holds RatioFeatures). Listing
# them skips MLflow's requirement inference, which re-loads the model in a subprocess (~11 s).
SERVING_REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")


def remove_failed_version(registry: Any, version: str, actor: str, error: BaseException) -> None:
    """Delete a version registered by a run that then failed, and say so in the audit trail."""
    from mlstack.db.events import ModelEvent

    log.error("run failed after registering %s v%s (%s); deleting the version", registry.model_name, version, error)
    try:
        registry.client.delete_model_version(registry.model_name, version)
    except Exception as exc:  # noqa: BLE001 - report, and let the original error surface
        log.error("could not delete %s v%s: %s", registry.model_name, version, exc)
        return
    try:
        registry.events.append(ModelEvent(actor, "delete_version", registry.model_name,
                                          f"run failed after registration: {type(error).__name__}: {error}"[:2000],
                                          version_before=version))
    except Exception as exc:  # noqa: BLE001
        log.error("could not record the deletion of %s v%s: %s", registry.model_name, version, exc)


def log_sklearn_model(model: Any, example: pd.DataFrame, signature: Any) -> Any:
    """Log the fitted pipeline in skops format, trusting exactly the types this model contains."""
    from importlib.metadata import version

    import mlflow.sklearn
    import skops.io

    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=example,
                                    serialization_format="skops", skops_trusted_types=trusted,
                                    pip_requirements=[f"{p}=={version(p)}" for p in SERVING_REQUIREMENTS])


def incumbent_rmse(client: Any, model_name: str, version: str, holdout_sha: str, x_hold: pd.DataFrame,
                   y_hold: pd.Series) -> float:
    """Return an incumbent's RMSE on this holdout: its stored metric if the holdout is the same, else re-scored."""
    import mlflow.pyfunc

    tags = client.get_model_version(model_name, version).tags or {}
    if tags.get("holdout_sha256") == holdout_sha and "holdout_rmse" in tags:
        return float(tags["holdout_rmse"])
    log.info("holdout differs from v%s's; re-scoring it on this holdout", version)
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    return _rmse(y_hold, loaded.predict(x_hold))
