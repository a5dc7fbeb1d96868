"""Airflow callbacks: one Slack message (and an audit row) when a DAG run fails."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def on_dag_failure(context: dict[str, Any]) -> None:
    """DAG-level on_failure_callback: tell people once per failed run; never raise."""
    try:
        from mlstack.rollout.actions import notify_failure, open_context

        run = context.get("dag_run")
        ti = context.get("task_instance") or context.get("ti")
        dag_id = getattr(run, "dag_id", None) or getattr(context.get("dag"), "dag_id", "unknown")
        run_id = getattr(run, "run_id", "unknown")
        task_id = getattr(ti, "task_id", "unknown")
        reason = str(context.get("exception") or context.get("reason") or "see the task log")
        ctx = open_context(actor=f"airflow:{dag_id}")
        notify_failure(ctx, dag_id, run_id, task_id, reason)
    except Exception:  # noqa: BLE001 - a callback must not mask the failure it reports
        log.exception("could not send the failure message")


def every_minute() -> dict[str, Any]:
    """The @dag arguments the rollout DAGs share: every minute, one run at a time, no catch-up."""
    from datetime import datetime, timedelta

    return {"schedule": "* * * * *", "start_date": datetime(2024, 1, 1), "catchup": False, "max_active_runs": 1,
            "dagrun_timeout": timedelta(minutes=5),
            "default_args": {"retries": 1, "retry_delay": timedelta(seconds=10)},
            "on_failure_callback": on_dag_failure, "tags": ["mlstack", "rollout"]}
