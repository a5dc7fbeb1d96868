"""Gather the judge's evidence: the app database (predictions ⨝ feedback, request_stats), the
registry (aliases, holdout metrics), nginx (the live split) and each slot's readiness.
"""

from __future__ import annotations

import json
import math
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.schema import SLOW_THRESHOLDS_MS, model_events, predictions, request_stats
from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, Registry
from mlstack.rollout.judge import ABEvidence, ArmEvidence, GuardEvidence, LabelPolicy, PairedEvidence, Policy


@dataclass(frozen=True)
class Sources:
    """Where evidence comes from."""

    engine: Engine
    registry: Registry
    web_url: str  # nginx, for /api/split
    slot_urls: dict[str, str]  # slot → base URL, for /ready


# The label fields of ArmEvidence, in the order label_sums' query returns them.
_LABEL_FIELDS = ("labels", "se_sum", "se_sq_sum", "ae_sum", "labels_over_cap", "labels_implausible",
                 "label_clusters", "se_cluster_ss", "ae_cluster_ss")
BOTH_VARIANTS = "*"


@dataclass(frozen=True)
class LabelSums:
    """Sums over the labels that count, per (model version, variant or BOTH_VARIANTS)."""

    arms: dict[tuple[str, str], dict[str, Any]]  # → ArmEvidence's label fields
    by_variant: bool = True

    def of(self, version: str, variant: str | None) -> dict[str, Any]:
        if (variant is not None) != self.by_variant:
            raise ValueError(f"these sums are {'per variant' if self.by_variant else 'over both variants'}; "
                             f"asked for variant {variant!r}")
        return self.arms.get((version, variant or BOTH_VARIANTS), {})


# The labels that count (LabelPolicy), in SQL both PostgreSQL and SQLite run: implausible ones
# first, then each sender's and each address's first N by arrival within the window. Each label
# belongs to a cluster, the voice it speaks with: its public client address, else its sender, else
# itself (docs/judge.md, "Who may label").
_ADMITTED = """
WITH joined AS (
  SELECT p.prediction_id, p.model_version, p.variant, p.prediction, p.shadow_version, p.shadow_prediction,
         f.actual, f.received_at, f.sender_hash, f.address_hash,
         COALESCE(f.address_hash, f.sender_hash, p.prediction_id) AS cluster,
         CASE WHEN ABS(f.actual - p.prediction) > :limit
               AND (p.shadow_prediction IS NULL OR ABS(f.actual - p.shadow_prediction) > :limit)
              THEN 1 ELSE 0 END AS implausible
  FROM predictions p JOIN feedback f ON f.prediction_id = p.prediction_id
  WHERE p.created_at >= :since AND p.created_at < :until AND p.model_version IN :versions
    AND f.received_at >= :labels_since
),
ranked AS (
  SELECT j.*, ROW_NUMBER() OVER (PARTITION BY sender_hash ORDER BY received_at, prediction_id) AS n_sender,
              ROW_NUMBER() OVER (PARTITION BY address_hash ORDER BY received_at, prediction_id) AS n_address
  FROM joined j WHERE implausible = 0
),
flagged AS (
  SELECT model_version, variant, cluster, prediction, shadow_version, shadow_prediction, actual, 0 AS implausible,
         CASE WHEN (sender_hash IS NOT NULL AND n_sender > :per_sender)
                OR (address_hash IS NOT NULL AND n_address > :per_address) THEN 1 ELSE 0 END AS over_cap
  FROM ranked
  UNION ALL
  SELECT model_version, variant, cluster, prediction, shadow_version, shadow_prediction, actual, 1, 0 FROM joined
  WHERE implausible = 1
)
"""
# Per arm: the sums, what was dropped, and the cluster-robust terms Σ_c (Σ_c x − n_c · mean x)².
# `:by_variant` 0 sums a version over both slots (the guard), 1 keeps each slot apart (the A/B test).
_ARM_SUMS = _ADMITTED + """
, errors AS (
  SELECT model_version, CASE WHEN :by_variant = 1 THEN variant ELSE :both END AS arm, cluster,
         implausible, over_cap, CASE WHEN implausible = 0 AND over_cap = 0 THEN 1 ELSE 0 END AS counted,
         (prediction - actual) * (prediction - actual) AS se, ABS(prediction - actual) AS ae
  FROM flagged
),
per_cluster AS (
  SELECT model_version, arm, cluster, SUM(counted) AS n, SUM(counted * se) AS se, SUM(counted * se * se) AS se2,
         SUM(counted * ae) AS ae,
         SUM(over_cap) AS over_cap, SUM(implausible) AS implausible
  FROM errors GROUP BY model_version, arm, cluster
),
per_arm AS (
  SELECT model_version, arm, SUM(n) AS n, SUM(se) AS se, SUM(se2) AS se2, SUM(ae) AS ae,
         SUM(over_cap) AS over_cap, SUM(implausible) AS implausible,
         SUM(CASE WHEN n > 0 THEN 1 ELSE 0 END) AS clusters
  FROM per_cluster GROUP BY model_version, arm
)
SELECT a.model_version, a.arm, a.n, a.se, a.se2, a.ae, a.over_cap, a.implausible, a.clusters,
       SUM(CASE WHEN c.n > 0 THEN (c.se - c.n * a.se / a.n) * (c.se - c.n * a.se / a.n) ELSE 0 END),
       SUM(CASE WHEN c.n > 0 THEN (c.ae - c.n * a.ae / a.n) * (c.ae - c.n * a.ae / a.n) ELSE 0 END)
FROM per_arm a JOIN per_cluster c ON c.model_version = a.model_version AND c.arm = a.arm
GROUP BY a.model_version, a.arm, a.n, a.se, a.se2, a.ae, a.over_cap, a.implausible, a.clusters
"""
_PAIRED_SUMS = _ADMITTED + """
, pairs AS (
  SELECT cluster,
         (CASE WHEN model_version = :challenger THEN prediction ELSE shadow_prediction END - actual) AS e_ch,
         (CASE WHEN model_version = :champion THEN prediction ELSE shadow_prediction END - actual) AS e_cp
  FROM flagged
  WHERE implausible = 0 AND over_cap = 0
    AND ((model_version = :challenger AND shadow_version = :champion)
      OR (model_version = :champion AND shadow_version = :challenger))
),
diffs AS (SELECT cluster, e_ch * e_ch - e_cp * e_cp AS dse, ABS(e_ch) - ABS(e_cp) AS dae FROM pairs),
per_cluster AS (
  SELECT cluster, COUNT(*) AS n, SUM(dse) AS dse, SUM(dse * dse) AS dse2, SUM(dae) AS dae, SUM(dae * dae) AS dae2
  FROM diffs GROUP BY cluster
),
total AS (
  SELECT SUM(n) AS n, SUM(dse) AS dse, SUM(dse2) AS dse2, SUM(dae) AS dae, SUM(dae2) AS dae2, COUNT(*) AS clusters
  FROM per_cluster
)
SELECT t.n, t.dse, t.dse2, t.dae, t.dae2, t.clusters,
       SUM((c.dse - c.n * t.dse / t.n) * (c.dse - c.n * t.dse / t.n)),
       SUM((c.dae - c.n * t.dae / t.n) * (c.dae - c.n * t.dae / t.n))
FROM total t LEFT JOIN per_cluster c ON 1 = 1
GROUP BY t.n, t.dse, t.dse2, t.dae, t.dae2, t.clusters
"""
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
LABEL_ARRIVAL_MARGIN = timedelta(hours=1)


def _bind(sql: str) -> sa.TextClause:
    time_type = predictions.c.created_at.type  # so SQLite compares times the way the columns store them
    return sa.text(sql).bindparams(sa.bindparam("versions", expanding=True), sa.bindparam("since", type_=time_type),
                                   sa.bindparam("until", type_=time_type), sa.bindparam("labels_since", type_=time_type))


def _params(versions: list[str], since: datetime, until: datetime | None, rules: LabelPolicy,
            holdout_mse: float | None) -> dict[str, Any]:
    limit = rules.implausible_error_ratio * math.sqrt(holdout_mse) if holdout_mse else 1e300
    # A label arrives after its prediction: bounding its arrival too lets the database read the window's labels
    # (ix_feedback_received_at) instead of every label ever sent; an hour of margin for clock steps.
    return {"versions": tuple(versions), "since": since, "until": until or _FAR_FUTURE, "limit": limit,
            "labels_since": since - LABEL_ARRIVAL_MARGIN,
            "per_sender": rules.max_per_sender, "per_address": rules.max_per_address}


def label_sums(engine: Engine, versions: list[str], since: datetime, until: datetime | None, rules: LabelPolicy,
               holdout_mse: float | None, by_variant: bool = True) -> LabelSums:
    """Sum the errors of the labels that count, per version (and variant, `by_variant`), with how many were
    dropped and why, and the cluster terms of their variance."""
    if not versions:
        return LabelSums({}, by_variant)
    query = _bind(_ARM_SUMS)
    params = {**_params(versions, since, until, rules, holdout_mse), "by_variant": int(by_variant),
              "both": BOTH_VARIANTS}
    with engine.connect() as conn:
        rows = conn.execute(query, params).all()
    kinds = (int, float, float, float, int, int, int, float, float)
    return LabelSums({(str(row[0]), str(row[1])): {name: kind(value or 0) for name, kind, value
                                                   in zip(_LABEL_FIELDS, kinds, row[2:], strict=True)}
                      for row in rows}, by_variant)


def arm(engine: Engine, version: str | None, since: datetime, until: datetime | None, slo_ms: float,
        variant: str | None = None, labels: LabelSums | None = None) -> ArmEvidence:
    """Sum one arm's counts (request_stats) and labelled errors (predictions ⨝ feedback, the labels that count)."""
    if version is None:
        return ArmEvidence(version=None)
    if slo_ms not in SLOW_THRESHOLDS_MS:
        raise ValueError(f"latency_slo_ms must be one of {SLOW_THRESHOLDS_MS} (the thresholds slots count), got {slo_ms}")
    rs = request_stats.c
    counts = sa.select(sa.func.coalesce(sa.func.sum(rs.requests), 0), sa.func.coalesce(sa.func.sum(rs.errors), 0),
                       sa.func.coalesce(sa.func.sum(rs[f"over_{int(slo_ms)}_ms"]), 0)).where(
        # whole counting periods only: one that began before `since` may hold another test's requests
        rs.model_version == version, rs.period_start >= since)
    p = predictions.c
    # distinct users (anonymous requests count one each): the unit of the sample-ratio check
    users = (sa.select(sa.func.count(sa.distinct(p.user_hash)),
                       sa.func.coalesce(sa.func.sum(sa.case((p.user_hash.is_(None), 1), else_=0)), 0))
             .where(p.model_version == version, p.created_at >= since))
    if until is not None:
        counts = counts.where(rs.period_end < until)
        users = users.where(p.created_at < until)
    if variant is not None:
        counts = counts.where(rs.variant == variant)
        users = users.where(p.variant == variant)
    with engine.connect() as conn:
        requests, errors, slow = conn.execute(counts).one()
        named, anonymous = conn.execute(users).one()
    return ArmEvidence(version=version, requests=int(requests), errors=int(errors), slow=int(slow),
                       users=int(named or 0) + int(anonymous or 0),
                       **(labels.of(version, variant) if labels is not None else {}))


def paired(engine: Engine, champion: str | None, challenger: str | None, since: datetime, rules: LabelPolicy,
           holdout_mse: float | None) -> PairedEvidence | None:
    """Sum challenger − champion errors over counted labelled rows that carry both models (shadow scoring)."""
    if champion is None or challenger is None:
        return None
    query = _bind(_PAIRED_SUMS)
    params = {**_params([champion, challenger], since, None, rules, holdout_mse),
              "champion": champion, "challenger": challenger}
    with engine.connect() as conn:
        n, se, se2, ae, ae2, clusters, se_ss, ae_ss = conn.execute(query, params).one()
    return PairedEvidence(int(n or 0), float(se or 0), float(se2 or 0), float(ae or 0), float(ae2 or 0),
                          int(clusters or 0), float(se_ss or 0), float(ae_ss or 0))


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
    versions = [v for v in (champion, challenger) if v is not None]
    labels = label_sums(src.engine, versions, since, None, policy.labels, mse)
    return ABEvidence(
        champion=arm(src.engine, champion, since, None, policy.latency_slo_ms, variant="A", labels=labels),
        challenger=arm(src.engine, challenger, since, None, policy.latency_slo_ms, variant="B", labels=labels),
        weight_b=split_weight(src.web_url), holdout_mse=mse, holdout_mae=mae,
        paired=paired(src.engine, champion, challenger, since, policy.labels, mse))


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
    mse, _ = holdout(src.registry, champion) if champion else (None, None)
    record = None
    if previous is not None and promoted is not None:  # the hour before it was replaced
        before = promoted - timedelta(minutes=60)
        record = arm(src.engine, previous, before, promoted, policy.latency_slo_ms,
                     labels=label_sums(src.engine, [previous], before, promoted, policy.labels, mse, by_variant=False))
    labels = label_sums(src.engine, [champion] if champion else [], since, None, policy.labels, mse, by_variant=False)
    return GuardEvidence(
        champion=arm(src.engine, champion, since, None, policy.latency_slo_ms, labels=labels),
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
