"""
### guard_champion

Every minute: watch the champion against its own baseline — its holdout RMSE, error and
latency limits, and, in the watch window after a promotion, the previous champion's live
record — and roll back to `previous_champion` on a significant degradation. A champion slot
that fails its health check is rolled back at once, without waiting for statistics. Every
tick is recorded in the audit trail; a rollback sends one Slack message.

The work is in `mlstack.rollout.actions.guard_champion`, the same code `scripts/rollback.py` runs.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlstack.rollout.callbacks import every_minute


@dag(dag_id="guard_champion", doc_md=__doc__, **every_minute())
def guard_champion():
    @task
    def guard() -> dict:
        """Evidence → judge → audit → roll back or keep."""
        from mlstack.rollout.actions import dag_tick

        return dag_tick("guard_champion")

    guard()


guard_champion()
