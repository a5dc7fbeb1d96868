"""Gather the judge's evidence: the app database (predictions ⨝ feedback, request_stats), the
registry (aliases, holdout metrics), nginx (the live split) and each slot's readiness.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.schema import SLOW_THRESHOLDS_MS, feedback, model_events, predictions, request_stats
from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, Registry
from mlstack.rollout.judge import ABEvidence, ArmEvidence, GuardEvidence, PairedEvidence, Policy


@dataclass(frozen=True)
class Sources:
    """Where evidence comes from."""

    engine: Engine
    registry: Registry
    web_url: str  # nginx, for /api/split
    slot_urls: dict[str, str]  # slot → base URL, for /ready


def arm(engine: Engine, version: str | None, since: datetime, until: datetime | None, slo_ms: float,
        variant: str | None = None) -> ArmEvidence:
    """Sum one arm's counts (request_stats) and labelled errors (predictions ⨝ feedback)."""
    if version is None:
        return ArmEvidence(version=None)
    if slo_ms not in SLOW_THRESHOLDS_MS:
        raise ValueError(f"latency_slo_ms must be one of {SLOW_THRESHOLDS_MS} (the thresholds slots count), got {slo_ms}")
    rs = request_stats.c
    counts = sa.select(sa.func.coalesce(sa.func.sum(rs.requests), 0), sa.func.coalesce(sa.func.sum(rs.errors), 0),
                       sa.func.coalesce(sa.func.sum(rs[f"over_{int(slo_ms)}_ms"]), 0)).where(
        # whole counting periods only: one that began before `since` may hold another test's requests
        rs.model_version == version, rs.period_start >= since)
    p, f = predictions.c, feedback.c
    d = p.prediction - f.actual
    labels = (sa.select(sa.func.count(), sa.func.sum(d * d), sa.func.sum(d * d * d * d), sa.func.sum(sa.func.abs(d)))
              .select_from(predictions.join(feedback, f.prediction_id == p.prediction_id))
              .where(p.model_version == version, p.created_at >= since))
    # distinct users (anonymous requests count one each): the unit of the sample-ratio check
    users = (sa.select(sa.func.count(sa.distinct(p.user_hash)),
                       sa.func.coalesce(sa.func.sum(sa.case((p.user_hash.is_(None), 1), else_=0)), 0))
             .where(p.model_version == version, p.created_at >= since))
    if until is not None:
        counts = counts.where(rs.period_end < until)
        labels = labels.where(p.created_at < until)
        users = users.where(p.created_at < until)
    if variant is not None:
        counts = counts.where(rs.variant == variant)
        labels = labels.where(p.variant == variant)
        users = users.where(p.variant == variant)
    with engine.connect() as conn:
        requests, errors, slow = conn.execute(counts).one()
        n, se, se2, ae = conn.execute(labels).one()
        named, anonymous = conn.execute(users).one()
    return ArmEvidence(version=version, requests=int(requests), errors=int(errors), slow=int(slow), labels=int(n),
                       se_sum=float(se or 0), se_sq_sum=float(se2 or 0), ae_sum=float(ae or 0),
                       users=int(named or 0) + int(anonymous or 0))


def paired(engine: Engine, champion: str | None, challenger: str | None, since: datetime) -> PairedEvidence | None:
    """Sum challenger − champion errors over labelled rows that carry both models (shadow scoring)."""
    if champion is None or challenger is None:
        return None
    p, f = predictions.c, feedback.c
    e_ch = sa.case((p.model_version == challenger, p.prediction), else_=p.shadow_prediction) - f.actual
    e_cp = sa.case((p.model_version == champion, p.prediction), else_=p.shadow_prediction) - f.actual
    d_se = e_ch * e_ch - e_cp * e_cp
    d_ae = sa.func.abs(e_ch) - sa.func.abs(e_cp)
    both = sa.or_(sa.and_(p.model_version == challenger, p.shadow_version == champion),
                  sa.and_(p.model_version == champion, p.shadow_version == challenger))
    query = (sa.select(sa.func.count(), sa.func.sum(d_se), sa.func.sum(d_se * d_se), sa.func.sum(d_ae),
                       sa.func.sum(d_ae * d_ae))
             .select_from(predictions.join(feedback, f.prediction_id == p.prediction_id))
             .where(both, p.created_at >= since))
    with engine.connect() as conn:
        n, se, se2, ae, ae2 = conn.execute(query).one()
    return PairedEvidence(int(n), float(se or 0), float(se2 or 0), float(ae or 0), float(ae2 or 0))


def alias_set_at(engine: Engine, model_name: str, alias: str, version: str) -> datetime | None:
    """When `alias` was last pointed at `version` (from the audit trail)."""
    e = model_events.c
    query = (sa.select(sa.func.max(e.event_time))
             .where(e.model_name == model_name, e.alias == alias, e.version_after == version,
                    e.action == "set_alias", e.dry_run.is_(False)))
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    if value is not None and value.tzinfo is None:  # SQLite returns naive UTC
        value = value.replace(tzinfo=UTC)
    return value


def holdout(registry: Registry, version: str) -> tuple[float | None, float | None]:
    """Return (holdout MSE, holdout MAE) from the version's tags."""
    tags = registry.client.get_model_version(registry.model_name, version).tags or {}
    try:
        rmse, mae = float(tags["holdout_rmse"]), float(tags["holdout_mae"])
    except (KeyError, ValueError):
        return None, None
    return rmse * rmse, mae


def split_weight(web_url: str) -> int:
    """B's share of users, as nginx applies it now."""
    with urllib.request.urlopen(f"{web_url.rstrip('/')}/api/split", timeout=5) as resp:
        return int(json.loads(resp.read())["weight_b"])


def slot_health(slot_urls: dict[str, str]) -> dict[str, str]:
    out = {}
    for slot, url in slot_urls.items():
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/ready", timeout=3) as resp:
                out[slot] = "healthy" if resp.status == 200 else f"unhealthy: HTTP {resp.status}"
        except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
            out[slot] = f"unhealthy: {exc}"[:200]
    return out


def ab_evidence(src: Sources, policy: Policy, now: datetime | None = None) -> ABEvidence:
    """The challenger (slot B) against the champion (slot A) since the challenger got its alias."""
    now = now or datetime.now(UTC)
    aliases = src.registry.aliases()
    champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
    since = now - timedelta(minutes=policy.window_minutes)
    for alias, version in ((CHAMPION, champion), (CHALLENGER, challenger)):
        if version is not None:
            set_at = alias_set_at(src.engine, src.registry.model_name, alias, version)
            if set_at is not None and set_at > since:
                since = set_at
    mse, mae = holdout(src.registry, champion) if champion else (None, None)
    return ABEvidence(
        champion=arm(src.engine, champion, since, None, policy.latency_slo_ms, variant="A"),
        challenger=arm(src.engine, challenger, since, None, policy.latency_slo_ms, variant="B"),
        weight_b=split_weight(src.web_url), holdout_mse=mse, holdout_mae=mae,
        paired=paired(src.engine, champion, challenger, since))


def guard_evidence(src: Sources, policy: Policy, now: datetime | None = None) -> GuardEvidence:
    """The champion's recent record against its holdout metrics and its predecessor's record."""
    now = now or datetime.now(UTC)
    g = policy.guard
    aliases = src.registry.aliases()
    champion, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS_CHAMPION)
    since = now - timedelta(minutes=g.window_minutes)
    promoted = alias_set_at(src.engine, src.registry.model_name, CHAMPION, champion) if champion else None
    if promoted is not None and promoted > since:
        since = promoted
    in_watch = promoted is not None and now - promoted < timedelta(minutes=g.watch_window_minutes)
    record = None
    if previous is not None and promoted is not None:  # the hour before it was replaced
        record = arm(src.engine, previous, promoted - timedelta(minutes=60), promoted, policy.latency_slo_ms)
    mse, _ = holdout(src.registry, champion) if champion else (None, None)
    return GuardEvidence(
        champion=arm(src.engine, champion, since, None, policy.latency_slo_ms),
        holdout_mse=mse, previous=record, previous_version=previous, in_watch_window=in_watch,
        slot_health=slot_health(src.slot_urls))


def to_dict(evidence: ABEvidence | GuardEvidence) -> dict[str, Any]:
    return asdict(evidence)


def from_dict(data: dict[str, Any]) -> ABEvidence | GuardEvidence:
    """Rebuild evidence stored in the audit trail (for `audit explain`)."""
    data = dict(data)
    if data.get("kind") == "ab":
        pairs = data.pop("paired", None)
        return ABEvidence(champion=ArmEvidence(**data.pop("champion")), challenger=ArmEvidence(**data.pop("challenger")),
                          paired=PairedEvidence(**pairs) if pairs else None, **data)
    previous = data.pop("previous")
    return GuardEvidence(champion=ArmEvidence(**data.pop("champion")),
                         previous=ArmEvidence(**previous) if previous else None, **data)
