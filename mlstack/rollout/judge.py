"""Decide from live evidence whether to promote, retire, roll back or hold: pure, deterministic, no I/O.

`decide(evidence, policy)` takes sufficient statistics (counts and sums per arm, never raw rows)
and a `Policy`, and returns a `Decision` listing every check it made. Two kinds of evidence:

- `ABEvidence`: the challenger (slot B) against the champion (slot A) → PROMOTE, RETIRE or HOLD.
- `GuardEvidence`: the champion against its own baseline → ROLLBACK or KEEP.

Statistics. Every comparison is an *always-valid* confidence sequence (Robbins' normal mixture,
as in the mixture SPRT of Johari et al., "Always valid inference"): its error rate holds however
often it is looked at, so the DAGs may check every tick without inflating false decisions.
Promotion is an intersection-union test: non-inferiority on every guardrail (error rate,
latency-SLO violations, MAE) and superiority on RMSE (compared through mean squared error),
each at one-sided `alpha`. Retiring a challenger needs a significant regression at
`alpha_retire`, rolling back a champion one at the stricter `alpha_regression`; each is split
over the metrics checked (Bonferroni). Validity gates come first:
no data, too few samples per arm, or a sample-ratio mismatch (χ² against the configured split)
give HOLD — never a verdict on the model. Labels come in clusters (one per client address or
sender): the variance of every label-based mean is cluster-robust, so one person's labels cannot
make a difference significant however alike they are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Action = Literal["PROMOTE", "RETIRE", "HOLD", "ROLLBACK", "KEEP"]


# -- policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guardrails:
    """Non-inferiority margins: how much worse than the champion the challenger may be.

    Policy classes have no defaults: policy.yaml is the one place their values live.
    """

    error_rate: float  # absolute difference of error ratios
    slo_violation_rate: float  # absolute difference of the share of requests over the latency SLO
    mae_relative: float  # MAE difference relative to the champion's holdout MAE


@dataclass(frozen=True)
class Mixing:
    """Scale of the effects each confidence sequence is tuned to detect (mixture standard deviation)."""

    error_rate: float
    slo_violation_rate: float
    mse_relative: float
    mae_relative: float


@dataclass(frozen=True)
class GuardPolicy:
    """Limits for the champion against its own baseline (guard_champion)."""

    max_error_rate: float
    max_slo_violation_rate: float
    max_rmse_ratio: float  # live RMSE over holdout RMSE
    min_requests: int
    min_labels: int
    window_minutes: int
    watch_window_minutes: int  # after a promotion: also compared with the previous champion's record


@dataclass(frozen=True)
class LabelPolicy:
    """Which reported true values count as evidence (docs/judge.md, "Who may label").

    Applied in the evidence query, before any sum: within one evidence window, a label is dropped
    when it is far from every model's prediction (`implausible_error_ratio` × the champion's
    holdout RMSE from both the served and the shadow prediction), or when its sender (the user id
    nginx passes) or its client address already gave `max_per_sender` / `max_per_address` labels.
    """

    max_per_sender: int
    max_per_address: int
    implausible_error_ratio: float


@dataclass(frozen=True)
class Policy:
    """Everything the judge decides by; loaded from policy.yaml (see mlstack.rollout.policy)."""

    alpha: float
    alpha_regression: float
    alpha_retire: float
    min_requests_per_arm: int
    min_labels_per_arm: int
    srm_p_value: float
    latency_slo_ms: float
    rmse_min_improvement: float  # relative MSE improvement promotion needs beyond zero
    window_minutes: int
    hold_timeout_minutes: int
    guardrails: Guardrails
    mixing: Mixing
    guard: GuardPolicy
    labels: LabelPolicy

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- evidence ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmEvidence:
    """Sufficient statistics of one arm (one model version in one slot) over the evidence window."""

    version: str | None
    requests: int = 0
    errors: int = 0  # 5xx answers
    slow: int = 0  # answers over the latency SLO
    labels: int = 0  # predictions joined with feedback
    se_sum: float = 0.0  # Σ (prediction - actual)²
    se_sq_sum: float = 0.0  # Σ (prediction - actual)⁴
    ae_sum: float = 0.0  # Σ |prediction - actual|  (Σ of its squares is se_sum)
    # Distinct users: the unit the sticky split randomizes, so the unit of the sample-ratio check
    # (requests cluster by user and would flag a healthy split). 0: not counted (then requests are used).
    users: int = 0
    # Labels reported but not counted (LabelPolicy): beyond a sender's or an address's share, or implausible.
    labels_over_cap: int = 0
    labels_implausible: int = 0
    # Who the counted labels came from: one cluster per public client address, else per sender, else per
    # label. With clusters, the variance of the error means is cluster-robust (Σ over clusters of the
    # squared deviation of each cluster's error sum), so one voice's many labels weigh as one voice's
    # uncertainty. 0: not counted (evidence recorded before clusters were), the per-label variance.
    label_clusters: int = 0
    se_cluster_ss: float = 0.0  # Σ_c (Σ_c e² − n_c · mean e²)²
    ae_cluster_ss: float = 0.0  # Σ_c (Σ_c |e| − n_c · mean |e|)²


@dataclass(frozen=True)
class PairedEvidence:
    """Both models' errors on the same labelled rows (shadow scoring): sums of challenger − champion.

    Every slot also scores the other alias's model on each request, so a labelled row gives one
    pair; comparing on the same rows removes the rows' own difficulty from the noise.
    """

    pairs: int = 0
    d_se_sum: float = 0.0  # Σ (e_challenger² − e_champion²)
    d_se_sq_sum: float = 0.0  # Σ of its squares
    d_ae_sum: float = 0.0  # Σ (|e_challenger| − |e_champion|)
    d_ae_sq_sum: float = 0.0
    clusters: int = 0  # as ArmEvidence.label_clusters, over the pairs
    d_se_cluster_ss: float = 0.0
    d_ae_cluster_ss: float = 0.0


@dataclass(frozen=True)
class ABEvidence:
    champion: ArmEvidence
    challenger: ArmEvidence
    weight_b: int  # percent of users the split sends to B
    holdout_mse: float | None = None  # the champion's holdout MSE: the scale relative effects use
    holdout_mae: float | None = None
    paired: PairedEvidence | None = None
    kind: Literal["ab"] = "ab"


@dataclass(frozen=True)
class GuardEvidence:
    champion: ArmEvidence
    holdout_mse: float | None
    previous: ArmEvidence | None = None  # the previous champion's live record, while it was champion
    previous_version: str | None = None  # what a rollback would restore (None: no previous champion)
    in_watch_window: bool = False
    slot_health: dict[str, str] = field(default_factory=dict)  # slot → "healthy" or the failure
    kind: Literal["guard"] = "guard"


@dataclass(frozen=True)
class Check:
    """One statistical comparison, with everything needed to read it later."""

    metric: str
    test: str  # "gate", "non-inferiority", "superiority", "regression", "limit"
    n_a: int
    n_b: int
    estimate_a: float | None
    estimate_b: float | None
    difference: float | None
    lower: float | None
    upper: float | None
    threshold: float | None
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    checks: tuple[Check, ...] = ()
    target_version: str | None = None  # the version an action moves an alias to (promotion, rollback)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "target_version": self.target_version,
                "checks": [asdict(c) for c in self.checks]}


# -- statistics --------------------------------------------------------------------------------


def cs_radius(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence for an estimate of this variance.

    With V the estimate's variance and τ the mixture scale, the boundary is
    sqrt(V (V+τ²)/τ² · (2 ln(1/α) + ln((V+τ²)/V))): it holds at level α uniformly over time.
    """
    if variance <= 0 or math.isinf(variance):
        return math.inf
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * (2 * math.log(1 / alpha) + math.log((variance + t2) / variance)))


def _proportion(events: int, n: int) -> tuple[float, float]:
    """Return (estimate, variance of the estimate); the variance never collapses to 0 at 0 events."""
    p = events / n
    smoothed = (events + 0.5) / (n + 1)
    return p, smoothed * (1 - smoothed) / n


def _mean(total: float, total_sq: float, n: int, clusters: int = 0, cluster_ss: float = 0.0) -> tuple[float, float]:
    """Return (mean, variance of the mean) from Σx, Σx², n.

    With `clusters` (G) and `cluster_ss` (Σ over clusters of (Σ_c x − n_c · mean)²), the variance is the
    cluster-robust one, G/(G−1) · cluster_ss / n²: the per-label variance when every label is its own
    cluster, far wider when one cluster's labels pull the mean. One cluster alone tells nothing about
    the spread between clusters: infinite variance, no verdict.
    """
    mean = total / n
    if clusters:
        return mean, (clusters / (clusters - 1) * max(cluster_ss, 0.0) / (n * n) if clusters > 1 else math.inf)
    var = max(total_sq - total * total / n, 0.0) / max(n - 1, 1)
    return mean, var / n


def _mse(arm: ArmEvidence) -> tuple[float, float]:
    return _mean(arm.se_sum, arm.se_sq_sum, arm.labels, arm.label_clusters, arm.se_cluster_ss)


def _mae(arm: ArmEvidence) -> tuple[float, float]:
    return _mean(arm.ae_sum, arm.se_sum, arm.labels, arm.label_clusters, arm.ae_cluster_ss)


def srm_p_value(n_a: int, n_b: int, weight_b: float) -> float:
    """χ² (1 degree of freedom) p-value of the observed split against the configured share of B."""
    total = n_a + n_b
    expected_b = total * weight_b
    expected_a = total - expected_b
    chi2 = (n_a - expected_a) ** 2 / expected_a + (n_b - expected_b) ** 2 / expected_b
    return math.erfc(math.sqrt(chi2 / 2))


def _diff_check(metric: str, test: str, a: tuple[float, float], b: tuple[float, float], n_a: int, n_b: int,
                tau: float, alpha: float, threshold: float, scale: float = 1.0) -> Check:
    """Compare arm B with arm A on (estimate, variance) pairs; differences are (B − A) / scale."""
    diff = (b[0] - a[0]) / scale
    radius = cs_radius((a[1] + b[1]) / (scale * scale), tau, alpha)
    lower, upper = diff - radius, diff + radius
    if test == "non-inferiority":  # B is at most `threshold` worse
        passed = upper < threshold
    elif test == "superiority":  # B is better by more than `threshold` (a negative difference)
        passed = upper < -threshold
    else:  # "regression": B is significantly worse than A by more than `threshold`
        passed = lower > threshold
    return Check(metric, test, n_a, n_b, a[0], b[0], diff, lower, upper, threshold, passed)


def _limit_check(metric: str, est: tuple[float, float], n: int, tau: float, alpha: float, limit: float,
                 scale: float = 1.0) -> Check:
    """One-sample: is the value significantly above `limit` (in units of `scale`)?"""
    value = est[0] / scale
    radius = cs_radius(est[1] / (scale * scale), tau, alpha)
    return Check(metric, "limit", n, 0, value, None, value - limit, value - radius, value + radius, limit,
                 value - radius > limit)


# -- decisions ---------------------------------------------------------------------------------


def decide(evidence: ABEvidence | GuardEvidence, policy: Policy) -> Decision:
    """Return the decision the evidence supports under the policy (same input, same output)."""
    if evidence.kind == "ab":
        decision = _decide_ab(evidence, policy)  # type: ignore[arg-type]
        arms = (evidence.champion, evidence.challenger)  # type: ignore[union-attr]
    else:
        decision = _decide_guard(evidence, policy)  # type: ignore[arg-type]
        arms = (evidence.champion,)
    over_cap, implausible = sum(a.labels_over_cap for a in arms), sum(a.labels_implausible for a in arms)
    if over_cap or implausible:  # said with every decision: what the evidence left out, and why
        decision = replace(decision, reason=f"{decision.reason} ({over_cap + implausible} reported labels not "
                                            f"counted: {over_cap} beyond a sender's or address's share, "
                                            f"{implausible} implausible)")
    return decision


def _gate(metric: str, n_a: int, n_b: int, need: int) -> Check:
    return Check(metric, "gate", n_a, n_b, None, None, None, None, None, float(need),
                 n_a >= need and n_b >= need)


def _fmt(check: Check) -> str:
    return (f"{check.metric}: B−A {check.difference:+.4g} [{check.lower:+.4g}, {check.upper:+.4g}] "
            f"vs {check.threshold:+.4g} (n {check.n_a}/{check.n_b})")


def _decide_ab(ev: ABEvidence, p: Policy) -> Decision:
    a, b = ev.champion, ev.challenger
    checks: list[Check] = []
    if b.version is None or ev.weight_b <= 0 or ev.weight_b >= 100:
        return Decision("HOLD", "no experiment: there is no challenger or the split gives B no share of users")
    if a.requests + b.requests == 0:
        return Decision("HOLD", "no data: neither arm has answered a request in the window")
    gate = _gate("requests", a.requests, b.requests, p.min_requests_per_arm)
    checks.append(gate)
    units = "users" if a.users + b.users > 0 else "requests"
    n_a, n_b = (a.users, b.users) if units == "users" else (a.requests, b.requests)
    p_srm = srm_p_value(n_a, n_b, ev.weight_b / 100)
    expected = (n_a + n_b) * ev.weight_b / 100
    srm = Check("sample_ratio", "gate", n_a, n_b, None, None, n_b - expected, None, None,
                p.srm_p_value, p_srm >= p.srm_p_value, note=f"p={p_srm:.3g}, expected B≈{expected:.0f} {units}")
    checks.append(srm)
    if not srm.passed:  # checked before the sample gate: a dead slot shows up here first
        return Decision("HOLD", f"sample-ratio mismatch: B got {n_b} of {n_a + n_b} {units}, "
                                f"expected about {expected:.0f} at {ev.weight_b}% (χ² p={p_srm:.2g} < "
                                f"{p.srm_p_value}); a slot may be down or the split misconfigured", tuple(checks))
    if not gate.passed:
        return Decision("HOLD", f"collecting: {a.requests}/{b.requests} requests (A/B), "
                                f"{p.min_requests_per_arm} needed per arm", tuple(checks))

    # Significant regressions on request-level guardrails retire the challenger at once.
    alpha_reg = p.alpha_retire / 3
    err_a, err_b = _proportion(a.errors, a.requests), _proportion(b.errors, b.requests)
    slo_a, slo_b = _proportion(a.slow, a.requests), _proportion(b.slow, b.requests)
    regressions = [
        _diff_check("error_rate", "regression", err_a, err_b, a.requests, b.requests, p.mixing.error_rate,
                    alpha_reg, 0.0),
        _diff_check("slo_violation_rate", "regression", slo_a, slo_b, a.requests, b.requests,
                    p.mixing.slo_violation_rate, alpha_reg, 0.0),
    ]
    checks += regressions
    worse = [c for c in regressions if c.passed]
    if worse:
        return Decision("RETIRE", "challenger significantly worse: " + "; ".join(_fmt(c) for c in worse),
                        tuple(checks))

    pairs = ev.paired if ev.paired is not None and ev.paired.pairs >= p.min_labels_per_arm else None
    if pairs is None:
        labels = _gate("labels", a.labels, b.labels, p.min_labels_per_arm)
        checks.append(labels)
        if not labels.passed:
            return Decision("HOLD", f"collecting ground truth: {a.labels}/{b.labels} labels (A/B), "
                                    f"{p.min_labels_per_arm} needed per arm", tuple(checks))
        mse_a, mse_b = _mse(a), _mse(b)
        mae_a, mae_b = _mae(a), _mae(b)
        n_a, n_b = a.labels, b.labels
    else:  # paired: the difference is measured on the same rows; arm A's estimate carries it all
        checks.append(_gate("pairs", pairs.pairs, pairs.pairs, p.min_labels_per_arm))
        mse_a = mae_a = (0.0, 0.0)
        mse_b = _mean(pairs.d_se_sum, pairs.d_se_sq_sum, pairs.pairs, pairs.clusters, pairs.d_se_cluster_ss)
        mae_b = _mean(pairs.d_ae_sum, pairs.d_ae_sq_sum, pairs.pairs, pairs.clusters, pairs.d_ae_cluster_ss)
        n_a = n_b = pairs.pairs
    mse_scale = ev.holdout_mse or max(mse_a[0] or (a.se_sum / max(a.labels, 1)), 1e-12)
    mae_scale = ev.holdout_mae or max(mae_a[0] or (a.ae_sum / max(a.labels, 1)), 1e-12)
    mse_worse = _diff_check("mse_relative", "regression", mse_a, mse_b, n_a, n_b, p.mixing.mse_relative,
                            alpha_reg, 0.0, scale=mse_scale)
    checks.append(mse_worse)
    if mse_worse.passed:
        return Decision("RETIRE", "challenger significantly worse: " + _fmt(mse_worse), tuple(checks))

    promotion = [
        _diff_check("error_rate", "non-inferiority", err_a, err_b, a.requests, b.requests, p.mixing.error_rate,
                    p.alpha, p.guardrails.error_rate),
        _diff_check("slo_violation_rate", "non-inferiority", slo_a, slo_b, a.requests, b.requests,
                    p.mixing.slo_violation_rate, p.alpha, p.guardrails.slo_violation_rate),
        _diff_check("mae_relative", "non-inferiority", mae_a, mae_b, n_a, n_b, p.mixing.mae_relative,
                    p.alpha, p.guardrails.mae_relative, scale=mae_scale),
        _diff_check("mse_relative", "superiority", mse_a, mse_b, n_a, n_b, p.mixing.mse_relative,
                    p.alpha, p.rmse_min_improvement, scale=mse_scale),
    ]
    checks += promotion
    if all(c.passed for c in promotion):
        gain = -promotion[-1].difference  # relative MSE improvement
        basis = f"{pairs.pairs} paired labels" if pairs else f"{a.labels}/{b.labels} labels"
        return Decision("PROMOTE", f"challenger v{b.version} better: live MSE {gain:.1%} lower than the "
                                   f"champion's ({basis}), no guardrail worse", tuple(checks),
                        target_version=b.version)
    pending = ", ".join(c.metric for c in promotion if not c.passed)
    return Decision("HOLD", f"no decision yet: not shown for {pending}", tuple(checks))


def _decide_guard(ev: GuardEvidence, p: Policy) -> Decision:
    g = p.guard
    c = ev.champion
    checks: list[Check] = []
    failing = {slot: state for slot, state in ev.slot_health.items() if state != "healthy"}
    if "A" in failing:  # the champion's slot is not serving: act now, statistics cannot help
        note = f"slot A (champion) health check failed: {failing['A']}"
        checks.append(Check("slot_health", "gate", 0, 0, None, None, None, None, None, None, False, note=note))
        if ev.previous_version is None:
            return Decision("KEEP", note + "; no previous champion to roll back to", tuple(checks))
        return Decision("ROLLBACK", note, tuple(checks), target_version=ev.previous_version)
    if c.requests == 0:
        return Decision("KEEP", "no data: the champion answered no request in the window")
    alpha_reg = p.alpha_regression / 3
    limits: list[Check] = []
    if c.requests >= g.min_requests:
        limits.append(_limit_check("error_rate", _proportion(c.errors, c.requests), c.requests, p.mixing.error_rate,
                                   alpha_reg, g.max_error_rate))
        limits.append(_limit_check("slo_violation_rate", _proportion(c.slow, c.requests), c.requests,
                                   p.mixing.slo_violation_rate, alpha_reg, g.max_slo_violation_rate))
    if c.labels >= g.min_labels and ev.holdout_mse:
        limits.append(_limit_check("mse_ratio_to_holdout", _mse(c), c.labels,
                                   p.mixing.mse_relative, alpha_reg, g.max_rmse_ratio ** 2, scale=ev.holdout_mse))
    checks += limits
    prev = ev.previous
    if ev.in_watch_window and prev is not None:  # just promoted: compare with the record it replaced
        if min(prev.requests, c.requests) >= g.min_requests:
            checks.append(_diff_check("error_rate_vs_previous", "regression", _proportion(prev.errors, prev.requests),
                                      _proportion(c.errors, c.requests), prev.requests, c.requests,
                                      p.mixing.error_rate, alpha_reg, 0.0))
        if min(prev.labels, c.labels) >= g.min_labels:
            scale = ev.holdout_mse or max(prev.se_sum / prev.labels, 1e-12)
            checks.append(_diff_check("mse_vs_previous", "regression", _mse(prev),
                                      _mse(c), prev.labels, c.labels,
                                      p.mixing.mse_relative, alpha_reg, 0.0, scale=scale))
    degraded = [ch for ch in checks if ch.passed]
    if degraded:
        reason = "champion degraded: " + "; ".join(
            f"{ch.metric} {ch.estimate_a:.4g} (lower bound {ch.lower:.4g}) > {ch.threshold:.4g}" if ch.test == "limit"
            else _fmt(ch) for ch in degraded)
        if ev.previous_version is None:
            return Decision("KEEP", reason + "; no previous champion to roll back to", tuple(checks))
        return Decision("ROLLBACK", reason, tuple(checks), target_version=ev.previous_version)
    if not checks:
        return Decision("KEEP", f"collecting: {c.requests} requests, {c.labels} labels; "
                                f"{g.min_requests} requests / {g.min_labels} labels needed")
    return Decision("KEEP", "champion within its limits", tuple(checks))
