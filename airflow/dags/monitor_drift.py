"""
### monitor_drift

Hourly (`DRIFT_SCHEDULE`): compare the last hour of production inputs (the prediction log) with
the training data using Evidently — per-feature scores and the share of drifted features, an
HTML report kept as an MLflow artifact and linked from the status page, the numbers pushed to
Prometheus (the `MlstackDataDrift` alert sends the Slack message). Windows smaller than the
policy's `drift.min_rows` give no verdict. On drift, it triggers **train_model** on the training
data plus the recent labelled production rows; the model that comes out goes through the normal
A/B judgement as a challenger.

The work is in `mlstack.monitoring.tasks.check_drift`; the thresholds in `mlstack/rollout/policy.yaml`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from mlstack.rollout.callbacks import on_dag_failure
from mlstack.settings import MonitoringSettings, load


@dag(
    dag_id="monitor_drift",
    schedule=load(MonitoringSettings).DRIFT_SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    on_failure_callback=on_dag_failure,
    tags=["mlstack", "monitoring"],
    doc_md=__doc__,
)
def monitor_drift():
    @task
    def check() -> dict:
        """Evidently report on the last window; scores to Prometheus; retraining data on drift."""
        from mlstack.monitoring.tasks import check_drift

        return check_drift()

    @task.short_circuit
    def drifted(result: dict) -> bool:
        """Go on to retraining only when the check found drift and wrote retraining data (policy: retrain)."""
        return bool(result["data_path"])

    result = check()
    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="train_model",
        conf={"data_path": "{{ ti.xcom_pull(task_ids='check')['data_path'] }}"},
        wait_for_completion=False,
    )
    drifted(result) >> retrain


monitor_drift()
