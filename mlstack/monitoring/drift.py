"""Data drift: recent production inputs against the training data, with Evidently's methods.

Every feature gets a score — the Wasserstein distance normed by the reference's standard
deviation (numeric) or the Jensen-Shannon distance (categorical) — and counts as drifted at or
above the policy's `column_threshold`; the window drifted when the share of drifted features is
above `share_threshold`. Below `min_rows` predictions there is no verdict at all. The policy is
the `drift:` section of mlstack/rollout/policy.yaml.

`verdict()` is pure; `evidently_report()` runs Evidently's DataDriftPreset (the HTML people read
and the numbers pushed to Prometheus); `fast_scores()` calls the same Evidently stat tests
without building a report, for the seeded week-of-hourly-runs check in `make test`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlstack.contract import DataContract

log = logging.getLogger(__name__)

NUMERIC_METHOD = "wasserstein"  # Evidently's "Wasserstein distance (normed)"
CATEGORICAL_METHOD = "jensenshannon"


class DriftPolicyError(ValueError):
    """The drift section of the policy file is missing or holds a bad setting."""


@dataclass(frozen=True)
class DriftPolicy:
    window_minutes: float
    min_rows: int
    max_rows: int
    reference_rows: int
    column_threshold: float
    share_threshold: float
    retrain: bool
    retrain_days: float


def load_drift_policy(path: Path | str | None = None) -> tuple[DriftPolicy, str]:
    """Read the `drift:` section of the policy file; return it with the file's sha256."""
    import yaml

    from mlstack.rollout.policy import DEFAULT

    path = Path(path) if path else DEFAULT
    raw = path.read_bytes()
    section = (yaml.safe_load(raw) or {}).get("drift")
    if not isinstance(section, dict):
        raise DriftPolicyError(f"{path}: needs a `drift:` section (see mlstack/rollout/policy.yaml)")
    known = {f.name: f for f in fields(DriftPolicy)}
    unknown, missing = set(section) - set(known), set(known) - set(section)
    if unknown or missing:
        raise DriftPolicyError(f"{path}: drift: unknown {sorted(unknown)}, missing {sorted(missing)}")
    for name, value in section.items():
        want_bool = known[name].type in (bool, "bool")
        if want_bool != isinstance(value, bool) or (not want_bool and (not isinstance(value, (int, float))
                                                                       or value < 0)):
            raise DriftPolicyError(f"{path}: drift.{name} must be {'true or false' if want_bool else 'a number ≥ 0'},"
                                   f" got {value!r}")
    policy = DriftPolicy(**section)
    if not 0 < policy.share_threshold < 1 or policy.min_rows < 1 or policy.max_rows < policy.min_rows:
        raise DriftPolicyError(f"{path}: drift: need 0 < share_threshold < 1 and 1 ≤ min_rows ≤ max_rows")
    return policy, hashlib.sha256(raw).hexdigest()


@dataclass
class DriftResult:
    """What one drift check found."""

    rows: int  # production rows compared
    reference_rows: int
    scores: dict[str, float] = field(default_factory=dict)  # feature → score (empty: no verdict)
    drifted: list[str] = field(default_factory=list)
    share: float | None = None  # share of features drifted (None: too few rows for a verdict)
    detected: bool = False
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(scores: dict[str, float], rows: int, reference_rows: int, policy: DriftPolicy) -> DriftResult:
    """Decide from per-feature scores: drifted features, their share, and whether the window drifted."""
    if rows < policy.min_rows:
        return DriftResult(rows, reference_rows, reason=f"{rows} rows in the window, fewer than min_rows="
                                                        f"{policy.min_rows}: no verdict")
    drifted = sorted(name for name, score in scores.items() if score >= policy.column_threshold)
    share = len(drifted) / len(scores) if scores else 0.0
    detected = share > policy.share_threshold
    reason = (f"{len(drifted)} of {len(scores)} features drifted ({share:.0%}"
              f" {'>' if detected else '≤'} {policy.share_threshold:.0%})"
              + (": " + ", ".join(f"{n} {scores[n]:.2f}" for n in drifted) if drifted else ""))
    return DriftResult(rows, reference_rows, dict(scores), drifted, share, detected, reason)


def _definition(contract: DataContract):  # noqa: ANN202 - evidently type, imported lazily
    from evidently import DataDefinition

    numeric = list(contract.numeric_features)
    return DataDefinition(numerical_columns=numeric,
                          categorical_columns=[n for n in contract.feature_names if n not in numeric])


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract,
                     policy: DriftPolicy) -> tuple[dict[str, float], str]:
    """Run Evidently's DataDriftPreset; return (feature → score, the self-contained HTML report)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # no telemetry from a local stack
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = _definition(contract)
    names = contract.feature_names
    report = Report([DataDriftPreset(num_method=NUMERIC_METHOD, cat_method=CATEGORICAL_METHOD,
                                     threshold=policy.column_threshold, drift_share=policy.share_threshold)])
    snapshot = report.run(Dataset.from_pandas(current[names], data_definition=definition),
                          Dataset.from_pandas(reference[names], data_definition=definition))
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift") and config.get("column") in names:
            scores[config["column"]] = float(metric["value"])
    missing = set(names) - set(scores)
    if missing:
        raise RuntimeError(f"Evidently gave no drift score for {sorted(missing)}")
    return scores, snapshot.get_html_str(as_iframe=False)


def fast_scores(reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract) -> dict[str, float]:
    """The same per-feature scores from Evidently's stat tests, without building a report (~100× faster)."""
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
    from evidently.legacy.core import ColumnType

    out = {}
    for name in contract.feature_names:
        ref, cur = reference[name].dropna(), current[name].dropna()
        if name in contract.numeric_features:
            out[name] = float(_wasserstein_distance_norm(ref, cur, ColumnType.Numerical, 0.1)[0])
        else:
            out[name] = float(_jensenshannon(ref, cur, ColumnType.Categorical, 0.1)[0])
    return out


# -- data ------------------------------------------------------------------------------------


def reference_frame(path: Path, contract: DataContract, rows: int, seed: int, holdout_fraction: float) -> pd.DataFrame:
    """A seeded sample of the training split (the rows models learn from, holdout and validation excluded)."""
    from mlstack.data import load_dataset, split

    frame = load_dataset(path, contract).frame
    train = split(frame, contract, seed=seed, holdout_fraction=holdout_fraction, validation_fraction=0.2).train
    return train.sample(min(rows, len(train)), random_state=seed)


def recent_inputs(engine: Any, since: datetime, max_rows: int, contract: DataContract) -> pd.DataFrame:
    """The newest `max_rows` production inputs logged since `since` (one row per prediction)."""
    import sqlalchemy as sa

    from mlstack.db.schema import predictions

    p = predictions.c
    query = sa.select(p.features).where(p.created_at >= since).order_by(p.created_at.desc()).limit(max_rows)
    with engine.connect() as conn:
        records = [r.features for r in conn.execute(query)]
    return pd.DataFrame.from_records(records, columns=contract.feature_names)


def labelled_rows(engine: Any, since: datetime, contract: DataContract) -> pd.DataFrame:
    """Production inputs with their true values (predictions ⨝ feedback) since `since`, as training rows."""
    import sqlalchemy as sa

    from mlstack.db.schema import feedback, predictions

    p, f = predictions.c, feedback.c
    query = (sa.select(p.features, f.actual).select_from(predictions.join(feedback, f.prediction_id == p.prediction_id))
             .where(p.created_at >= since))
    with engine.connect() as conn:
        rows = [{**r.features, contract.target.name: r.actual} for r in conn.execute(query)]
    return pd.DataFrame.from_records(rows, columns=[*contract.feature_names, contract.target.name])


# -- the week-of-hourly-runs check -----------------------------------------------------------


def week_without_drift(path: Path, contract: DataContract, policy: DriftPolicy, *, runs: int = 168,
                       seed: int = 0, holdout_fraction: float = 0.2) -> dict[str, Any]:
    """Hourly checks on undrifted traffic (held-out rows, windows of min_rows to max_rows): how many raise drift."""
    import numpy as np

    from mlstack.simulator import drifted, holdout_rows

    reference = reference_frame(path, contract, policy.reference_rows, 42, holdout_fraction)
    rows = holdout_rows(path, contract, 42, holdout_fraction)
    rng = np.random.default_rng(seed)
    raised, worst, below = 0, 0.0, 0
    for _ in range(runs):
        n = int(rng.integers(0, policy.max_rows * 1.2))  # some hours are quiet: fewer than min_rows
        window = rows.sample(n, replace=n > len(rows), random_state=int(rng.integers(1 << 31)))
        result = verdict(fast_scores(reference, window, contract) if n >= policy.min_rows else {}, n,
                         len(reference), policy)
        below += result.share is None
        raised += result.detected
        worst = max(worst, max(result.scores.values(), default=0.0))
    shifted = verdict(fast_scores(reference, drifted(rows.sample(policy.min_rows, random_state=seed), contract),
                                  contract), policy.min_rows, len(reference), policy)
    return {"runs": runs, "raised": raised, "no_verdict": below, "worst_feature_score": round(worst, 3),
            "simulated_drift_detected": shifted.detected, "simulated_drift": shifted.reason}
