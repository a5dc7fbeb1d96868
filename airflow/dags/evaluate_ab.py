"""
### evaluate_ab

Every minute: gather the live evidence of the A/B test (slot B's challenger against slot A's
champion: errors, latency-SLO violations, RMSE and MAE from predictions joined with feedback),
ask the judge, record the decision (HOLD included) in the audit trail, and act — promote the
challenger, retire it, or hold. Promotions and retirements send one Slack message each; a HOLD
lasting past the policy's timeout sends one too.

The work is in `mlstack.rollout.actions.evaluate_ab`; the policy in `mlstack/rollout/policy.yaml`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlstack.rollout.callbacks import every_minute


@dag(dag_id="evaluate_ab", doc_md=__doc__, **every_minute())
def evaluate_ab():
    @task
    def evaluate() -> dict:
        """Evidence → judge → audit → promote, retire or hold."""
        from mlstack.rollout.actions import dag_tick

        return dag_tick("evaluate_ab")

    evaluate()


evaluate_ab()
