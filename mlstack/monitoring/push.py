"""Push batch results (judge ticks, training runs, drift checks, DAG successes) to the Pushgateway.

Batch jobs cannot be scraped, so each one pushes its latest numbers under its own group
(`job="mlstack"`, `source=...`), and Prometheus scrapes the Pushgateway. A push never fails the
job that makes it: without `PUSHGATEWAY_URL`, or when the gateway is down, it is logged and skipped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

JOB = "mlstack"


@dataclass
class Sample:
    """One gauge value: metric name, help text, labels."""

    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def push(url: str | None, source: str, samples: Iterable[Sample], grouping: Mapping[str, str] | None = None,
         timeout: float = 5.0) -> bool:
    """Replace the group (job="mlstack", source=..., **grouping) with `samples`; True if pushed."""
    samples = list(samples)
    if not url:
        log.debug("no PUSHGATEWAY_URL: %d samples from %s not pushed", len(samples), source)
        return False
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for s in samples:
        if s.name not in gauges:
            names = sorted(s.labels)
            gauges[s.name] = Gauge(s.name, s.help, names, registry=registry)
        gauge = gauges[s.name]
        (gauge.labels(**s.labels) if s.labels else gauge).set(s.value)
    try:
        push_to_gateway(url, job=JOB, registry=registry, grouping_key={"source": source, **(grouping or {})},
                        timeout=timeout)
        return True
    except Exception as exc:  # noqa: BLE001 - monitoring must not fail the job it watches
        log.warning("could not push %d samples from %s to %s: %s", len(samples), source, url, exc)
        return False


def dag_succeeded(url: str | None, dag_id: str, now: float | None = None) -> bool:
    """Record that a DAG run got to its end (the "DAG not succeeding" alert watches this)."""
    return push(url, f"dag_{dag_id}", [Sample("mlstack_dag_last_success_timestamp_seconds",
                                             "When a run of this DAG last succeeded (Unix time)",
                                             now if now is not None else time.time(), {"dag_id": dag_id})])


ACTIONS = {"ab": ("PROMOTE", "RETIRE", "HOLD"), "guard": ("KEEP", "ROLLBACK", "HOLD")}


def judge_samples(kind: str, evidence: Any, decision: Any, now: float | None = None) -> list[Sample]:
    """What one judge tick shows: its decision (one-hot), each arm's counts and live errors, the split check."""
    now = now if now is not None else time.time()
    out = [Sample("mlstack_judge_decision", "The latest tick's decision (1 = this action)",
                  1.0 if decision.action == a else 0.0, {"kind": kind, "action": a}) for a in ACTIONS[kind]]
    out.append(Sample("mlstack_judge_tick_timestamp_seconds", "When the judge last decided (Unix time)", now,
                      {"kind": kind}))
    arms = ({"champion": evidence.champion, "challenger": evidence.challenger} if kind == "ab"
            else {"champion": evidence.champion})
    for arm, ev in arms.items():
        labels = {"kind": kind, "arm": arm, "model_version": ev.version or "none"}
        out += [Sample("mlstack_judge_arm_requests", "Requests in the evidence window", ev.requests, labels),
                Sample("mlstack_judge_arm_labels", "Predictions joined with feedback in the window", ev.labels, labels),
                Sample("mlstack_judge_arm_error_ratio", "5xx answers / requests in the window",
                       ev.errors / ev.requests if ev.requests else 0.0, labels)]
        # NaN, not absent, while an arm has no labels yet: the series stays, the graph shows a gap
        out += [Sample("mlstack_judge_arm_rmse", "Live RMSE in the window (target units; NaN: no labels yet)",
                       (ev.se_sum / ev.labels) ** 0.5 if ev.labels else math.nan, labels),
                Sample("mlstack_judge_arm_mae", "Live MAE in the window (target units; NaN: no labels yet)",
                       ev.ae_sum / ev.labels if ev.labels else math.nan, labels)]
    srm = next((c for c in decision.checks if c.metric == "sample_ratio" and c.note.startswith("p=")), None)
    if kind == "ab":
        out.append(Sample("mlstack_judge_srm_p_value",
                          "χ² p-value of the observed split against the configured one (NaN: not checked)",
                          float(srm.note.split(",", 1)[0][2:]) if srm else math.nan, {"kind": kind}))
        out.append(Sample("mlstack_judge_srm_mismatch", "1 when the split check failed (a slot may be down)",
                          1.0 if srm is not None and not srm.passed else 0.0, {"kind": kind}))
    if kind == "ab":
        out.append(Sample("mlstack_ab_weight_b", "Percent of users the split sends to slot B", evidence.weight_b))
    return out


def training_samples(result: Mapping[str, Any]) -> list[Sample]:
    """A training run's numbers (push them grouped by model_version: one group per version)."""
    labels = {"family": str(result.get("family") or "unknown"),
              "alias_at_training": str(result.get("alias") or "none")}
    out = [Sample("mlstack_training_timestamp_seconds", "When this version was trained (Unix time)", time.time(), labels)]
    for key, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and key.startswith("holdout_"):
            out.append(Sample(f"mlstack_training_{key}", f"{key} of the trained model", float(value), labels))
    for key in ("train_seconds", "rows"):
        if isinstance(result.get(key), (int, float)):
            out.append(Sample(f"mlstack_training_{key}", f"{key} of the training run", float(result[key]), labels))
    return out
