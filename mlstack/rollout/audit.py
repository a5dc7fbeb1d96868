"""Read the audit trail back: verify its hash chain, and re-run a stored decision (`explain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.schema import model_events
from mlstack.rollout.evidence import from_dict
from mlstack.rollout.judge import Decision, Policy, decide
from mlstack.rollout.policy import policy_from_dict


@dataclass(frozen=True)
class Explanation:
    event: dict[str, Any]
    stored: dict[str, Any]
    recomputed: Decision
    policy: Policy

    @property
    def reproduced(self) -> bool:
        s = self.stored
        r = self.recomputed
        return (s["action"], s["reason"], s.get("target_version")) == (r.action, r.reason, r.target_version)


def explain(engine: Engine, event_id: int) -> Explanation:
    """Re-run `decide` on the evidence and policy stored with a decision event."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(model_events).where(model_events.c.id == event_id)).first()
    if row is None:
        from mlstack.db.events import EventStore

        archive = EventStore(engine).archived_in(event_id)
        raise LookupError(f"model event #{event_id} expired and was archived to {archive} (read it with pandas or "
                          "DuckDB)" if archive else f"there is no model event #{event_id}")
    event = dict(row._mapping)
    details = event["details"] or {}
    if "decision" not in details or "evidence" not in details:
        raise LookupError(f"event #{event_id} ({event['action']}) is not a judge decision; "
                          "explain works on judge_ab and judge_guard events")
    policy = policy_from_dict(details["policy"])
    return Explanation(event, details["decision"], decide(from_dict(details["evidence"]), policy), policy)
