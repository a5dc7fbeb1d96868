"""
### archive_history

Daily (`ARCHIVE_SCHEDULE`): archive what outlived its retention (`RETAIN_*_DAYS` in .env) from the app
database to the bucket as Parquet, partitioned by day (`<ARCHIVE_PREFIX>/<table>/day=YYYY-MM-DD/`,
readable by pandas and DuckDB), then delete it: predictions with their feedback, request stats, and
the judge's ticks that changed nothing (the audit chain records each removed stretch as a signed gap
and still verifies). Old Airflow task logs and drift files are deleted. Nothing the judge or the drift
monitor still reads is touched: the policy file's longest window is a floor under every retention.

If the bucket refuses an upload, nothing unarchived is deleted and the run fails (Slack); the next
run takes what was left. The work is in `mlstack.lifecycle.archive_history`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from mlstack.rollout.callbacks import on_dag_failure
from mlstack.settings import RetentionSettings, load


@dag(
    dag_id="archive_history",
    schedule=load(RetentionSettings).ARCHIVE_SCHEDULE,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    on_failure_callback=on_dag_failure,
    tags=["mlstack", "lifecycle"],
    doc_md=__doc__,
)
def archive_history():
    @task
    def archive() -> dict:
        """Archive what expired to the bucket, delete it from the database; delete old log files."""
        from mlstack.lifecycle import archive_history

        return archive_history()

    archive()


archive_history()
