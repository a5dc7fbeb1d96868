"""
### train_model

Train, evaluate and register a model of `MODEL_NAME`, and give it the alias the registry policy
says (`champion` if there is none, `challenger` if it beats the champion on the same holdout,
none otherwise). Runs daily and on demand; trigger with conf `{"data_path": "/path/to.csv"}` to
train on another labelled file (it must pass the data contract), and `"families"`
(e.g. `"hist_gradient_boosting"`) or `"search_iterations"` to override TRAIN_FAMILIES and
SEARCH_ITERATIONS for one run.

A retry or a re-run on the same data with the same code and settings does not register a second
version.
The work is in `mlstack.training.tasks` (tested without Airflow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from mlstack.rollout.callbacks import on_dag_failure


@dag(
    dag_id="train_model",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    on_failure_callback=on_dag_failure,
    params={"data_path": None, "families": None, "search_iterations": None},
    tags=["mlstack", "training"],
    doc_md=__doc__,
)
def train_model():
    @task
    def validate() -> dict:
        """Check the labelled data against the contract (nothing is trained on bad data)."""
        from mlstack.training.tasks import validate_data

        conf = get_current_context()["params"]
        return validate_data(conf.get("data_path"))

    @task
    def train_register(data: dict) -> dict:
        """Train, evaluate on the holdout, log to MLflow, register, set the alias."""
        from mlstack.training.tasks import train_and_register

        conf = get_current_context()["params"]
        return train_and_register(data["path"], data["sha256"], actor="airflow:train_model", dag_id="train_model",
                                  families=conf.get("families"), search_iterations=conf.get("search_iterations"))

    train_register(validate())


train_model()
