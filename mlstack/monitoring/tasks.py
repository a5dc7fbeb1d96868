"""The monitor_drift DAG's step as a plain function (the DAG file only wires it to train_model)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlstack.monitoring import push
from mlstack.monitoring.drift import DriftResult

log = logging.getLogger(__name__)


def drift_samples(result: DriftResult, threshold: float) -> list[push.Sample]:
    """What Prometheus shows of a check; a check without a verdict shows its row count only."""
    out = [push.Sample("mlstack_drift_window_rows", "Production rows in the latest drift check's window", result.rows),
           push.Sample("mlstack_drift_check_timestamp_seconds", "When drift was last checked (Unix time)", time.time())]
    if result.share is None:
        return out
    out += [push.Sample("mlstack_drift_share", "Share of features drifted in the latest check", result.share),
            push.Sample("mlstack_drift_share_threshold", "Share of drifted features above which it is drift",
                        threshold),
            push.Sample("mlstack_drift_detected", "1 when the latest check found drift", float(result.detected))]
    out += [push.Sample("mlstack_drift_score", "Per-feature drift score (Wasserstein normed / Jensen-Shannon)",
                        score, {"feature": name}) for name, score in result.scores.items()]
    return out


def _log_report(settings: Any, html: str, result: DriftResult, path: Path) -> str | None:
    """Keep the HTML report as an MLflow artifact (the S3 bucket); return the run id (None if MLflow is down)."""
    try:
        import mlflow

        mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
        mlflow.set_experiment(settings.DRIFT_EXPERIMENT_NAME)
        with mlflow.start_run(run_name=f"drift {path.stem}") as run:
            mlflow.log_metrics({"drift_share": result.share or 0.0, "rows": result.rows,
                                **{f"score_{k}": v for k, v in result.scores.items()}})
            mlflow.set_tags({"drift_detected": str(result.detected).lower(), "model_name": settings.MODEL_NAME})
            mlflow.log_artifact(str(path), artifact_path="drift_report")
            return run.info.run_id
    except Exception:  # noqa: BLE001 - the report stays on disk; the check's verdict stands
        log.exception("could not store the drift report in MLflow")
        return None


def check_drift(actor: str = "airflow:monitor_drift", dag_id: str | None = "monitor_drift",
                now: datetime | None = None) -> dict[str, Any]:
    """Compare the last window of production inputs with the training data; on drift, write retraining data.

    Pushes the scores to the Pushgateway (the MlstackDataDrift alert reads them), stores the HTML
    report (MLflow artifact, linked from the status page through the audit trail), appends a
    `drift_check` event, and returns {"drifted": bool, "data_path": retraining CSV or None, ...}.
    """
    import pandas as pd

    from mlstack.contracts import get_contract
    from mlstack.data import read_csv
    from mlstack.db.engine import create_engine
    from mlstack.db.events import EventStore, ModelEvent
    from mlstack.db.migrate import upgrade
    from mlstack.monitoring.drift import (
        evidently_report,
        labelled_rows,
        load_drift_policy,
        recent_inputs,
        reference_frame,
        verdict,
    )
    from mlstack.settings import MonitoringSettings, load

    settings = load(MonitoringSettings)
    policy, digest = load_drift_policy(settings.JUDGE_POLICY_FILE)
    contract = get_contract(settings.DATA_CONTRACT)
    now = now or datetime.now(UTC)
    engine = create_engine(settings.APP_DATABASE_URL)
    upgrade(engine)
    current = recent_inputs(engine, now - timedelta(minutes=policy.window_minutes), policy.max_rows, contract)
    reference = reference_frame(settings.DATA_PATH, contract, policy.reference_rows, settings.SPLIT_SEED,
                                settings.HOLDOUT_FRACTION)
    out: dict[str, Any] = {"drifted": False, "data_path": None, "report": None, "mlflow_run_id": None}
    # "drifted": what the check found; "data_path": the retraining data, only when the policy retrains
    if len(current) < policy.min_rows:
        result = verdict({}, len(current), len(reference), policy)
    else:
        scores, html = evidently_report(reference, current, contract, policy)
        result = verdict(scores, len(current), len(reference), policy)
        reports = Path(settings.DRIFT_WORK_DIR) / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        path = reports / f"drift-{now:%Y%m%dT%H%M%SZ}.html"
        path.write_text(html)
        out.update(report=str(path), mlflow_run_id=_log_report(settings, html, result, path))
    log.info("drift check: %s", result.reason)
    if result.detected and policy.retrain:
        labelled = labelled_rows(engine, now - timedelta(days=policy.retrain_days), contract)
        base = read_csv(settings.DATA_PATH)
        data = pd.concat([base, labelled[base.columns.intersection(labelled.columns)]], ignore_index=True)
        data_dir = Path(settings.DRIFT_WORK_DIR) / "retrain"
        data_dir.mkdir(parents=True, exist_ok=True)
        data_path = data_dir / f"retrain-{now:%Y%m%dT%H%M%SZ}.csv"
        data.to_csv(data_path, index=False)
        out.update(data_path=str(data_path), labelled_rows=len(labelled))
    out["drifted"] = result.detected
    run = out["mlflow_run_id"]
    links = {"report": (f"{settings.MLFLOW_PUBLIC_URL}/#/experiments/{_experiment_id(settings)}/runs/{run}/artifacts"
                        if run else None)}
    EventStore(engine).append(ModelEvent(
        actor=actor, action="drift_check", model_name=settings.MODEL_NAME, reason=result.reason,
        metrics={"rows": result.rows, "share": result.share, "detected": result.detected},
        details={"result": result.as_dict(), "policy_sha256": digest, "report": out["report"],
                 "mlflow_run_id": run, "links": links, "retrain_data": out["data_path"]}))
    push.push(settings.PUSHGATEWAY_URL, "monitor_drift", drift_samples(result, policy.share_threshold))
    if dag_id:
        push.dag_succeeded(settings.PUSHGATEWAY_URL, dag_id)
    engine.dispose()
    return {**out, "rows": result.rows, "share": result.share, "reason": result.reason}


def _experiment_id(settings: Any) -> str:
    try:
        from mlflow.tracking import MlflowClient

        exp = MlflowClient(settings.MLFLOW_TRACKING_URI).get_experiment_by_name(settings.DRIFT_EXPERIMENT_NAME)
        return exp.experiment_id if exp else "0"
    except Exception:  # noqa: BLE001
        return "0"
