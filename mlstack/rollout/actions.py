"""Carry out rollout decisions: gather evidence, ask the judge, record, act, tell people.

The evaluate_ab and guard_champion DAGs and scripts/rollback.py call these functions; each tick
is idempotent (it acts on the registry as it finds it, and alias moves are no-ops when already
done). Every decision — HOLD included — is appended to the audit trail with its evidence, the
policy and its sha256 before anything moves; Slack is told after, and its delivery is recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.events import EventStore, ModelEvent
from mlstack.db.schema import model_events
from mlstack.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    Registry,
    move_alias,
    transition_kinds,
)
from mlstack.registry.policy import set_champion
from mlstack.rollout import slack
from mlstack.rollout.evidence import Sources, ab_evidence, guard_evidence, to_dict
from mlstack.rollout.judge import ABEvidence, Decision, GuardEvidence, Policy, decide
from mlstack.settings import RolloutSettings

log = logging.getLogger(__name__)

TRANSITIONS = {"PROMOTE", "RETIRE", "ROLLBACK"}


class RollbackRefused(RuntimeError):
    """The rollback cannot be done (no target, or the target is not a registered version)."""


@dataclass
class Context:
    """What a decision needs: settings, the registry with its audit trail, the policy."""

    settings: RolloutSettings
    registry: Registry
    engine: Engine
    policy: Policy
    policy_sha256: str
    actor: str

    @property
    def events(self) -> EventStore:
        return self.registry.events

    def sources(self) -> Sources:
        s = self.settings
        return Sources(self.engine, self.registry, s.WEB_URL, {"A": s.SLOT_A_URL, "B": s.SLOT_B_URL})

    def links(self, dag_id: str | None, version: str | None) -> slack.Links:
        s = self.settings
        return slack.Links(
            airflow=f"{s.AIRFLOW_PUBLIC_URL}/dags/{dag_id}" if dag_id else None,
            mlflow=f"{s.MLFLOW_PUBLIC_URL}/#/models/{self.registry.model_name}/versions/{version}" if version else None,
            status_page=f"{s.WEB_URL}/status")


def open_context(actor: str, settings: RolloutSettings | None = None) -> Context:
    """Connect to the registry and the app database and load the policy."""
    from mlstack.db.engine import create_engine
    from mlstack.db.migrate import upgrade
    from mlstack.registry.connection import connect
    from mlstack.rollout.policy import load_policy
    from mlstack.settings import load

    settings = settings or load(RolloutSettings)
    policy, digest = load_policy(settings.JUDGE_POLICY_FILE)
    engine = create_engine(settings.APP_DATABASE_URL)
    upgrade(engine)
    registry = Registry(connect(settings), settings.MODEL_NAME, EventStore(engine, settings.audit_key()))
    return Context(settings, registry, engine, policy, digest, actor)


def _summary(evidence: ABEvidence | GuardEvidence) -> dict[str, Any]:
    if isinstance(evidence, ABEvidence):
        return {"requests_a": evidence.champion.requests, "requests_b": evidence.challenger.requests,
                "labels_a": evidence.champion.labels, "labels_b": evidence.challenger.labels,
                "labels_dropped": sum(a.labels_over_cap + a.labels_implausible
                                      for a in (evidence.champion, evidence.challenger)),
                "label_sources": evidence.paired.clusters if evidence.paired else 0,
                "weight_b": evidence.weight_b}
    return {"requests": evidence.champion.requests, "labels": evidence.champion.labels,
            "labels_dropped": evidence.champion.labels_over_cap + evidence.champion.labels_implausible,
            "label_sources": evidence.champion.label_clusters,  # the voices the labels came from
            "errors": evidence.champion.errors, "in_watch_window": evidence.in_watch_window}


def record_decision(ctx: Context, kind: str, evidence: ABEvidence | GuardEvidence, decision: Decision,
                    dry_run: bool) -> dict[str, Any]:
    """Append the decision with everything needed to re-run it (`audit explain`)."""
    aliases = ctx.registry.aliases()
    event = ModelEvent(
        actor=ctx.actor, action=f"judge_{kind}", model_name=ctx.registry.model_name, reason=decision.reason,
        alias=None, version_before=aliases.get(CHAMPION), version_after=decision.target_version or aliases.get(CHAMPION),
        metrics=_summary(evidence),
        details={"decision": decision.as_dict(), "evidence": to_dict(evidence), "policy": ctx.policy.as_dict(),
                 "policy_sha256": ctx.policy_sha256, "aliases": aliases},
        dry_run=dry_run)
    return ctx.events.append(event)


def notify(ctx: Context, payload: dict[str, Any], topic: str, about: int | None) -> slack.Delivery:
    """Send one Slack message and record its delivery (never raises)."""
    s = ctx.settings
    url = s.SLACK_WEBHOOK_URL.get_secret_value() if s.SLACK_WEBHOOK_URL else None
    delivery = slack.send(url, payload, attempts=s.SLACK_ATTEMPTS)
    try:
        ctx.events.append(ModelEvent(
            actor=ctx.actor, action="notify", model_name=ctx.registry.model_name, reason=payload["text"][:500],
            details={"topic": topic, "about_event": about, "delivery": delivery.status, "attempts": delivery.attempts,
                     "detail": delivery.detail}))
    except Exception:  # noqa: BLE001 - the message went (or not); losing its audit row must not fail the tick
        log.exception("could not record the delivery of a Slack message")
    return delivery


def transitions(ctx: Context) -> dict[str, tuple[int, datetime | None]]:
    """Promotions, retirements and rollbacks so far, and when the last of each was, from the audit trail."""
    e = model_events.c
    moves, kinds = transition_kinds(ctx.registry.model_name)
    out = {}
    with ctx.engine.connect() as conn:
        for kind, cond in kinds.items():
            count, last = conn.execute(sa.select(sa.func.count(), sa.func.max(e.event_time)).where(moves, cond)).one()
            if last is not None and last.tzinfo is None:  # SQLite returns naive UTC
                last = last.replace(tzinfo=UTC)
            out[kind] = (int(count or 0), last)
    return out


def _push_tick(ctx: Context, kind: str, evidence: ABEvidence | GuardEvidence, decision: Decision) -> None:
    """Show the tick in Prometheus (through the Pushgateway); never fails the tick."""
    from mlstack.monitoring import push

    url = ctx.settings.PUSHGATEWAY_URL
    if not url:
        return
    try:
        push.push(url, f"judge_{kind}", push.judge_samples(kind, evidence, decision))
        _push_transitions(ctx)
    except Exception:  # noqa: BLE001 - e.g. the audit trail unreadable for a moment
        log.exception("could not push the judge's metrics")


def _push_transitions(ctx: Context) -> None:
    from mlstack.monitoring import push

    if not ctx.settings.PUSHGATEWAY_URL:
        return
    samples = []
    for kind, (count, last) in transitions(ctx).items():
        samples.append(push.Sample("mlstack_transitions_total", "Alias transitions so far (from the audit trail)",
                                   count, {"transition": kind}))
        if last is not None:
            samples.append(push.Sample("mlstack_transition_last_timestamp_seconds",
                                       "When the last transition of this kind happened (Unix time)",
                                       last.timestamp(), {"transition": kind}))
    push.push(ctx.settings.PUSHGATEWAY_URL, "transitions", samples)


def dag_tick(dag_id: str) -> dict[str, Any]:
    """The one task of the evaluate_ab and guard_champion DAGs: tick as the DAG, then record its success."""
    from mlstack.monitoring import push

    ctx = open_context(actor=f"airflow:{dag_id}")
    tick = {"evaluate_ab": evaluate_ab, "guard_champion": guard_champion}[dag_id]
    if CHAMPION not in ctx.registry.aliases():
        # Before the bootstrap job (or a first train_model run) has registered a champion there is
        # nothing to judge: the tick holds quietly instead of failing every minute.
        log.info("%s: %s has no champion yet; nothing to decide", dag_id, ctx.registry.model_name)
        result: dict[str, Any] = {"action": "HOLD", "reason": "no model yet", "champion": None}
    else:
        result = tick(ctx)
    push.dag_succeeded(ctx.settings.PUSHGATEWAY_URL, dag_id)
    return result


def evaluate_ab(ctx: Context, dry_run: bool = False, dag_id: str | None = "evaluate_ab") -> dict[str, Any]:
    """One tick of the A/B evaluation: evidence → judge → record → promote, retire or hold."""
    evidence = ab_evidence(ctx.sources(), ctx.policy)
    decision = decide(evidence, ctx.policy)
    row = record_decision(ctx, "ab", evidence, decision, dry_run)
    try:
        return _evaluate_ab_act(ctx, evidence, decision, row, dry_run, dag_id)
    finally:
        if not dry_run:
            _push_tick(ctx, "ab", evidence, decision)


def _evaluate_ab_act(ctx: Context, evidence: ABEvidence, decision: Decision, row: dict[str, Any], dry_run: bool,
                     dag_id: str | None) -> dict[str, Any]:
    champion, challenger = evidence.champion.version, evidence.challenger.version
    result = {"event_id": row["id"], "action": decision.action, "reason": decision.reason, "dry_run": dry_run,
              "champion": champion, "challenger": challenger}
    if dry_run or decision.action not in TRANSITIONS:
        if decision.action == "HOLD" and not dry_run:
            _notify_long_hold(ctx, row, dag_id)
        return result
    aliases = ctx.registry.aliases()
    if aliases.get(CHALLENGER) != challenger or aliases.get(CHAMPION) != champion:
        result["action"] = "HOLD"
        result["reason"] = "aliases moved while deciding; deciding again next tick"
        return result
    why = f"judge (event #{row['id']}): {decision.reason}"
    if decision.action == "PROMOTE":
        set_champion(ctx.registry, challenger, actor=ctx.actor, reason=why, metrics=_summary(evidence),
                     details={"decision_event": row["id"]})
        headline = f"v{challenger} is now champion (was v{champion})"
    else:
        move_alias(ctx.registry, CHALLENGER, None, actor=ctx.actor, reason=why, metrics=_summary(evidence),
                   details={"decision_event": row["id"]})
        headline = f"v{challenger} retired; v{champion} stays champion"
    payload = slack.from_decision(decision, ctx.registry.model_name, ctx.links(dag_id, challenger), row["id"], headline)
    result["slack"] = notify(ctx, payload, decision.action.lower(), row["id"]).status
    return result


def _notify_long_hold(ctx: Context, row: dict[str, Any], dag_id: str | None) -> None:
    """Send one message when an A/B test has been on HOLD longer than the policy's timeout."""
    e = model_events.c
    with ctx.engine.connect() as conn:
        recent = conn.execute(sa.select(e.id, e.event_time, e.details).where(
            e.model_name == ctx.registry.model_name, e.action == "judge_ab", e.dry_run.is_(False))
            .order_by(e.id.desc()).limit(2000)).all()
    aliases = row["details"]["aliases"]
    start = row
    for r in recent:
        d = r.details or {}
        if d.get("decision", {}).get("action") != "HOLD" or d.get("aliases") != aliases:
            break
        start = {"id": r.id, "event_time": r.event_time}
    started = start["event_time"]
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    if (datetime.now(UTC) - started).total_seconds() < ctx.policy.hold_timeout_minutes * 60:
        return
    with ctx.engine.connect() as conn:
        sent = conn.execute(sa.select(e.details).where(e.model_name == ctx.registry.model_name, e.action == "notify",
                                                       e.id >= start["id"])).all()
    if any((s.details or {}).get("topic") == "hold_timeout" for s in sent):
        return  # one message per HOLD streak
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    payload = slack.message("HOLD", ctx.registry.model_name, f"HOLD for {minutes:.0f} min (since event #{start['id']})",
                            row["reason"], (), ctx.links(dag_id, aliases.get(CHALLENGER)), row["id"])
    notify(ctx, payload, "hold_timeout", row["id"])


def guard_champion(ctx: Context, dry_run: bool = False, dag_id: str | None = "guard_champion") -> dict[str, Any]:
    """One tick of the champion's guard: evidence → judge → record → roll back or keep."""
    evidence = guard_evidence(ctx.sources(), ctx.policy)
    decision = decide(evidence, ctx.policy)
    row = record_decision(ctx, "guard", evidence, decision, dry_run)
    result = {"event_id": row["id"], "action": decision.action, "reason": decision.reason, "dry_run": dry_run,
              "champion": evidence.champion.version}
    try:
        if decision.action == "ROLLBACK" and not dry_run:
            result.update(rollback(ctx, decision.target_version, f"judge (event #{row['id']}): {decision.reason}",
                                   decision=decision, decision_event=row["id"], dag_id=dag_id))
    finally:
        if not dry_run:
            _push_tick(ctx, "guard", evidence, decision)
    return result


def rollback(ctx: Context, to_version: str | None, reason: str, dry_run: bool = False, *,
             decision: Decision | None = None, decision_event: int | None = None,
             dag_id: str | None = None) -> dict[str, Any]:
    """Make `to_version` (default: `previous_champion`) the champion again; the one rollback path.

    Idempotent: rolling back to the current champion changes nothing. A version whose artifacts
    are missing is refused by `move_alias`, which moves nothing: the registry always keeps a champion.
    """
    reg = ctx.registry
    aliases = reg.aliases()
    current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS_CHAMPION)
    target = str(to_version) if to_version else previous
    if target is None:
        raise RollbackRefused(f"{reg.model_name} has no previous_champion; name a version with --to")
    if target == current:
        return {"rolled_back": False, "champion": current, "note": f"v{target} is already champion: nothing to do"}
    try:
        reg.client.get_model_version(reg.model_name, target)
    except Exception as exc:
        raise RollbackRefused(f"{reg.model_name} has no version {target}: {exc}") from exc
    details = {"rolled_back_from": current, "decision_event": decision_event}
    if dry_run:
        row = move_alias(reg, CHAMPION, target, actor=ctx.actor, reason=f"[dry run] rollback: {reason}",
                         details=details, dry_run=True)
        return {"rolled_back": False, "dry_run": True, "champion": current, "would_be": target,
                "event_id": row["id"] if row else None}
    move_alias(reg, CHAMPION, target, actor=ctx.actor, reason=f"rollback from v{current}: {reason}", details=details)
    if previous == target:  # it is champion again; the version rolled back from gets no alias
        move_alias(reg, PREVIOUS_CHAMPION, None, actor=ctx.actor, reason=f"v{target} is champion again", details=details)
    headline = f"v{target} is champion again (v{current} rolled back)"
    checks = decision.checks if decision else ()
    payload = slack.message("ROLLBACK", reg.model_name, headline, reason, checks, ctx.links(dag_id, target),
                            decision_event)
    delivery = notify(ctx, payload, "rollback", decision_event)
    if decision is None:  # by hand (scripts/rollback.py): the guard's next push would be a minute away
        try:
            _push_transitions(ctx)
        except Exception:  # noqa: BLE001
            log.exception("could not push the transition counts")
    return {"rolled_back": True, "champion": target, "from": current, "slack": delivery.status}


def notify_failure(ctx: Context, dag_id: str, run_id: str, task_id: str, error: str) -> slack.Delivery:
    """One message for a failed DAG run (called from the DAGs' failure callback)."""
    payload = slack.message("FAILED", ctx.registry.model_name, f"{dag_id} run {run_id} failed in task {task_id}",
                            error[:1500], (), ctx.links(dag_id, None))
    return notify(ctx, payload, "dag_failed", None)
