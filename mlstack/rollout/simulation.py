"""Run the judge on seeded synthetic traffic: thousands of A/B experiments in seconds.

Each run draws, tick by tick, requests split between the arms, errors, slow answers and labelled
predictions whose errors follow a heavy-tailed (Student t, 5 degrees of freedom) distribution,
accumulates them as the judge's sufficient statistics and asks `decide` after every tick, as the
DAGs do. A run ends at its first verdict. `python -m mlstack.rollout.simulation` prints the
figures the issue asks for.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from mlstack.rollout.judge import ABEvidence, ArmEvidence, GuardEvidence, PairedEvidence, Policy, decide

DF = 5  # Student t degrees of freedom of prediction errors: heavier tails than normal, as real errors


@dataclass(frozen=True)
class ArmModel:
    """How one arm behaves: its error ratio, share of slow answers, and prediction error."""

    error_rate: float = 0.01
    slow_rate: float = 0.02
    rmse: float = 45_000.0
    bias: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    champion: ArmModel = field(default_factory=ArmModel)
    challenger: ArmModel = field(default_factory=ArmModel)
    requests_per_second: float = 10.0
    weight_b: int = 50  # the configured split
    served_b: float | None = None  # the share B really gets (a dead slot: 0); default weight_b
    label_fraction: float = 0.5
    paired: bool = True  # shadow scoring: every labelled row carries both models' predictions
    correlation: float = 0.85  # of the two models' errors on the same row
    tick_seconds: float = 30.0
    ticks: int = 240
    holdout_rmse: float = 45_000.0
    # how many people send the labels; the judge counts each one's first `labels.max_per_sender` (None: all)
    senders: int | None = None
    # one more person who, right after the promotion, reports `max_per_sender` false values whose error is
    # this multiple of the holdout RMSE (just under `implausible_error_ratio` is the worst still counted; near
    # 0 hides a regression); 0: nobody
    poison_ratio: float = 0.0


@dataclass
class Outcome:
    scenario: str
    runs: int
    decisions: Counter
    seconds: list[float]  # time of the verdict, per run that reached one
    labels_b: list[int]  # challenger labels at the verdict
    elapsed: float

    def share(self, *actions: str) -> float:
        return sum(self.decisions[a] for a in actions) / self.runs

    def p95_seconds(self) -> float | None:
        return float(np.percentile(self.seconds, 95)) if self.seconds else None


def _arm_ticks(rng: np.random.Generator, n: np.ndarray, arm: ArmModel, label_fraction: float,
               other: ArmModel | None = None, rho: float = 0.0, sign: float = 1.0) -> dict[str, np.ndarray]:
    """Per-tick statistics of one arm given its request counts n (runs × ticks).

    With `other`, each labelled row also gets the other model's error (correlation `rho`), and the
    paired sums of sign·(e_self² − e_other²) are returned too (sign +1: this arm is the challenger).
    """
    errors = rng.binomial(n, arm.error_rate)
    slow = rng.binomial(n - errors, arm.slow_rate)
    labels = rng.binomial(n - errors, label_fraction)
    flat = labels.ravel()
    total = int(flat.sum())
    base = rng.standard_t(DF, size=total)
    e = base * (arm.rmse / np.sqrt(DF / (DF - 2))) + arm.bias
    starts = np.concatenate(([0], np.cumsum(flat)[:-1]))

    def seg_sum(values: np.ndarray) -> np.ndarray:
        out = np.add.reduceat(values, starts) if total else np.zeros_like(flat, dtype=float)
        out = np.where(flat > 0, out, 0.0)  # reduceat returns the next value for empty segments
        return out.reshape(labels.shape)

    se = e * e
    out = {"requests": n, "errors": errors, "slow": slow, "labels": labels,
           "se_sum": seg_sum(se), "se_sq_sum": seg_sum(se * se), "ae_sum": seg_sum(np.abs(e))}
    if other is not None:
        mixed = rho * base + np.sqrt(1 - rho * rho) * rng.standard_t(DF, size=total)
        o = mixed * (other.rmse / np.sqrt(DF / (DF - 2))) + other.bias
        d_se, d_ae = sign * (se - o * o), sign * (np.abs(e) - np.abs(o))
        out.update(d_se_sum=seg_sum(d_se), d_se_sq_sum=seg_sum(d_se * d_se), d_ae_sum=seg_sum(d_ae),
                   d_ae_sq_sum=seg_sum(d_ae * d_ae))
    return out


def _cap_senders(stats: dict[str, np.ndarray], cap: int | None) -> dict[str, np.ndarray]:
    """Count the first `cap` labels only (cumulative stats, runs × ticks), as the judge counts each sender's
    first labels by arrival: once the cap is reached the label sums stop growing (within the tick that
    crosses it, the counted share of its labels); `labels_over_cap` says how many were dropped."""
    if cap is None:
        return stats
    sent = stats["labels"]
    sums = {k: v.astype(float).copy() for k, v in stats.items() if k.endswith("_sum")}
    for run in range(sent.shape[0]):
        row = sent[run]
        t = int(np.searchsorted(row, cap, side="right"))  # ticks whose cumulative labels stay within the cap
        if t >= row.size:
            continue
        before = row[t - 1] if t else 0
        part = (cap - before) / (row[t] - before) if row[t] > before else 0.0
        for k, v in sums.items():
            base = stats[k][run, t - 1] if t else 0.0
            v[run, t:] = base + part * (stats[k][run, t] - base)
    counted = np.minimum(sent, cap)
    return {**stats, **sums, "labels": counted, "labels_over_cap": sent - counted}


def _clustered(stats: dict[str, np.ndarray], senders: int | None, poison: tuple[int, float] | None
               ) -> dict[str, np.ndarray]:
    """Add the cluster-robust terms the evidence query computes (cumulative stats, runs × ticks).

    Honest labels are independent of each other, within one sender too, so their clusters' squared
    deviations sum, in expectation, to the per-label ones: Σ(x − m)² over labels, with `senders`
    clusters (None: one per label). The poisoner is one cluster of k labels of error `err` each. m is
    the mean over every counted label, the poisoner's included.
    """
    n, se, se2, ae = (stats[k].astype(float) for k in ("labels", "se_sum", "se_sq_sum", "ae_sum"))
    k, err = poison or (0, 0.0)
    total = np.maximum(n + k, 1)
    m_se, m_ae = (se + k * err ** 2) / total, (ae + k * err) / total
    se_ss = se2 - 2 * m_se * se + m_se ** 2 * n + (k * err ** 2 - k * m_se) ** 2
    ae_ss = se - 2 * m_ae * ae + m_ae ** 2 * n + (k * err - k * m_ae) ** 2
    clusters = (n if senders is None else np.minimum(n, senders)) + (1 if k else 0)
    return {**stats, "label_clusters": clusters, "se_cluster_ss": se_ss, "ae_cluster_ss": ae_ss}


def _arm(stats: dict[str, np.ndarray], run: int, tick: int, version: str) -> ArmEvidence:
    extra = {key: kind(stats[key][run, tick]) for key, kind in (
        ("labels_over_cap", int), ("label_clusters", int), ("se_cluster_ss", float), ("ae_cluster_ss", float))
        if key in stats}
    return ArmEvidence(version=version, requests=int(stats["requests"][run, tick]), errors=int(stats["errors"][run, tick]),
                       slow=int(stats["slow"][run, tick]), labels=int(stats["labels"][run, tick]),
                       se_sum=float(stats["se_sum"][run, tick]), se_sq_sum=float(stats["se_sq_sum"][run, tick]),
                       ae_sum=float(stats["ae_sum"][run, tick]), **extra)


def simulate_ab(scenario: Scenario, policy: Policy, runs: int, seed: int = 0) -> Outcome:
    """Run `runs` seeded A/B experiments of the scenario; return how they ended and when."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    total = rng.poisson(scenario.requests_per_second * scenario.tick_seconds, size=(runs, scenario.ticks))
    share_b = (scenario.weight_b if scenario.served_b is None else scenario.served_b) / 100
    n_b = rng.binomial(total, share_b)
    pair = {"rho": scenario.correlation} if scenario.paired else {}
    a = {k: np.cumsum(v, axis=1) for k, v in _arm_ticks(
        rng, total - n_b, scenario.champion, scenario.label_fraction,
        other=scenario.challenger if scenario.paired else None, sign=-1.0, **pair).items()}
    b = {k: np.cumsum(v, axis=1) for k, v in _arm_ticks(
        rng, n_b, scenario.challenger, scenario.label_fraction,
        other=scenario.champion if scenario.paired else None, sign=1.0, **pair).items()}
    holdout_mse = scenario.holdout_rmse ** 2
    holdout_mae = scenario.holdout_rmse * 0.65

    def evidence(run: int, tick: int) -> ABEvidence:
        paired = None
        if scenario.paired:
            paired = PairedEvidence(int(a["labels"][run, tick] + b["labels"][run, tick]),
                                    *(float(a[k][run, tick] + b[k][run, tick])
                                      for k in ("d_se_sum", "d_se_sq_sum", "d_ae_sum", "d_ae_sq_sum")))
        return ABEvidence(_arm(a, run, tick, "1"), _arm(b, run, tick, "2"), scenario.weight_b, holdout_mse,
                          holdout_mae, paired)

    labels = a["labels"] + b["labels"] if scenario.paired else b["labels"]
    return _first_verdicts(scenario, policy, runs, evidence, "HOLD", labels, started)


def _first_verdicts(scenario: Scenario, policy: Policy, runs: int, evidence, neutral: str,  # noqa: ANN001
                    labels: np.ndarray, started: float) -> Outcome:
    """Ask the judge after every tick of every run, as the DAGs do; a run ends at its first verdict."""
    decisions: Counter = Counter()
    seconds, labels_at = [], []
    for run in range(runs):
        verdict = neutral
        for tick in range(scenario.ticks):
            verdict = decide(evidence(run, tick), policy).action
            if verdict != neutral:
                seconds.append((tick + 1) * scenario.tick_seconds)
                labels_at.append(int(labels[run, tick]))
                break
        decisions[verdict] += 1
    return Outcome(scenario.name, runs, decisions, seconds, labels_at, time.perf_counter() - started)


def simulate_guard(scenario: Scenario, policy: Policy, runs: int, seed: int = 0) -> Outcome:
    """Watch a freshly promoted champion (`scenario.challenger`) whose predecessor was `scenario.champion`."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = rng.poisson(scenario.requests_per_second * scenario.tick_seconds, size=(runs, scenario.ticks))
    prev_n = rng.poisson(scenario.requests_per_second * 3600, size=(runs, 1))  # an hour of the old champion's record
    now = {k: np.cumsum(v, axis=1) for k, v in _arm_ticks(rng, n, scenario.challenger, scenario.label_fraction).items()}
    cap = None if scenario.senders is None else scenario.senders * policy.labels.max_per_sender
    now = _cap_senders(now, cap)  # the guard's window starts at the promotion: every label of the run is in it
    poison = None
    if scenario.poison_ratio:  # the poisoner's counted labels (its first max_per_sender) join from the first tick
        poison = (policy.labels.max_per_sender, scenario.poison_ratio * scenario.holdout_rmse)
    if scenario.senders is not None or poison:  # who the labels came from: the judge's clusters
        now = _clustered(now, scenario.senders, poison)
    if poison:
        k, err = poison
        for key, value in (("labels", k), ("se_sum", k * err ** 2), ("se_sq_sum", k * err ** 4), ("ae_sum", k * err)):
            now[key] = now[key] + value
    prev = _arm_ticks(rng, prev_n, scenario.champion, scenario.label_fraction)

    def evidence(run: int, tick: int) -> GuardEvidence:
        return GuardEvidence(_arm(now, run, tick, "2"), scenario.holdout_rmse ** 2, previous=_arm(prev, run, 0, "1"),
                             previous_version="1", in_watch_window=True, slot_health={"A": "healthy", "B": "healthy"})

    return _first_verdicts(scenario, policy, runs, evidence, "KEEP", now["labels"], started)


def standard_scenarios() -> dict[str, Scenario]:
    """The scenarios the issue's targets name (3 requests/s is the floor; 10/s is a small service)."""
    base = ArmModel()
    return {
        "a/a": Scenario("a/a", base, base),
        "better challenger (RMSE −15%)": Scenario("better", base, replace(base, rmse=base.rmse * 0.85)),
        **{f"challenger errors 1% → 5%, {rate:g} req/s": Scenario(
            "errors", base, replace(base, error_rate=0.05), requests_per_second=rate, tick_seconds=10.0, ticks=90)
           for rate in (3.0, 10.0, 30.0)},
        "challenger RMSE +25%": Scenario("worse", base, replace(base, rmse=base.rmse * 1.25), tick_seconds=10.0,
                                         ticks=720),
        "challenger RMSE +25%, unpaired": Scenario("worse-unpaired", base, replace(base, rmse=base.rmse * 1.25),
                                                  paired=False),
        "dead slot B": Scenario("dead-b", base, base, served_b=0.0),
    }


def scenarios(policy: Policy) -> dict[str, tuple[str, Scenario]]:
    """Every scenario run_all runs: title → ("ab" or "guard", scenario)."""
    jobs = {title: ("ab", sc) for title, sc in standard_scenarios().items()}
    base = ArmModel()
    worse = Scenario("guard-worse", base, replace(base, rmse=base.rmse * 1.25))
    worst = 0.98 * policy.labels.implausible_error_ratio  # the largest error the plausibility rule still counts
    jobs.update({
        "guard: healthy champion": ("guard", Scenario("guard-ok", base, base)),
        "guard: champion RMSE +25%": ("guard", worse),
        **{f"guard: champion RMSE +25%, labels from {people} people": (  # what the per-sender cap costs
            "guard", replace(worse, name=f"guard-worse-{people}", senders=people)) for people in (50, 10)},
        "guard: healthy champion, one poisoner": ("guard", Scenario("guard-poisoned", base, base, poison_ratio=worst)),
        # who would hide a regression: one person reporting perfect labels
        "guard: champion RMSE +25%, one person reports no error": (
            "guard", replace(worse, name="guard-worse-hidden", poison_ratio=1e-9)),
    })
    return jobs


def _run(kind: str, scenario: Scenario, policy: Policy, runs: int, seed: int) -> Outcome:
    return (simulate_ab if kind == "ab" else simulate_guard)(scenario, policy, runs, seed)


def run_all(policy: Policy, runs: int = 2000, seed: int = 0, workers: int = 1) -> dict[str, Outcome]:
    """Run every scenario, on `workers` processes (each scenario is seeded: the same results either way)."""
    jobs = scenarios(policy)
    if workers <= 1:
        return {title: _run(kind, sc, policy, runs, seed) for title, (kind, sc) in jobs.items()}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {title: pool.submit(_run, kind, sc, policy, runs, seed) for title, (kind, sc) in jobs.items()}
        return {title: future.result() for title, future in futures.items()}


def targets(out: dict[str, Outcome], policy: Policy) -> list[tuple[str, str, bool, bool]]:
    """Return (target, measured, met, enforced): enforced targets fail `--check` when missed."""
    aa, better, worse = out["a/a"], out["better challenger (RMSE −15%)"], out["challenger RMSE +25%"]
    errors = {rate: out[f"challenger errors 1% → 5%, {rate:g} req/s"] for rate in (3.0, 10.0, 30.0)}
    guard_ok, guard_bad = out["guard: healthy champion"], out["guard: champion RMSE +25%"]
    labels_p95 = float(np.percentile(worse.labels_b, 95)) if worse.labels_b else float("inf")
    rows = [
        ("A/A: false promotion or retirement ≤ 1%", f"{aa.share('PROMOTE', 'RETIRE'):.2%} of {aa.runs}",
         aa.share("PROMOTE", "RETIRE") <= 0.01, True),
        ("A/A guard: false rollback ≤ 1%", f"{guard_ok.share('ROLLBACK'):.2%} of {guard_ok.runs}",
         guard_ok.share("ROLLBACK") <= 0.01, True),
        ("dead slot: HOLD, never a verdict", f"{out['dead slot B'].share('HOLD'):.2%} HOLD",
         out["dead slot B"].share("HOLD") == 1.0, True),
        ("better challenger promoted", f"{better.share('PROMOTE'):.1%}, p95 {better.p95_seconds() or 0:.0f} s",
         better.share("PROMOTE") >= 0.95, True),
        ("RMSE +25% challenger decided within 400 labels (p95, shadow-scored pairs)",
         f"retired {worse.share('RETIRE'):.1%}, p95 {labels_p95:.0f} labels", labels_p95 <= 400, True),
        ("RMSE +25% after promotion caught by the guard", f"rolled back {guard_bad.share('ROLLBACK'):.1%}, "
         f"p95 {guard_bad.p95_seconds() or 0:.0f} s", guard_bad.share("ROLLBACK") >= 0.95, True),
    ]
    base_p95 = guard_bad.p95_seconds() or float("inf")
    for people in (50, 10):  # the per-sender cap (labels.max_per_sender) against a real degradation
        o = out[f"guard: champion RMSE +25%, labels from {people} people"]
        p95 = o.p95_seconds()
        labels = float(np.percentile(o.labels_b, 95)) if o.labels_b else float("nan")
        rows.append((f"RMSE +25% after promotion, labels from {people} people: rolled back as fast as from "
                     "everyone (p95 within 10%)",
                     f"rolled back {o.share('ROLLBACK'):.1%}, p95 {p95 or 0:.0f} s vs {base_p95:.0f} s, "
                     f"p95 {labels:.0f} counted labels",
                     o.share("ROLLBACK") >= 0.95 and p95 is not None and p95 <= 1.1 * base_p95, people >= 50))
    poisoned = out["guard: healthy champion, one poisoner"]
    rows.append((f"one person's {policy.labels.max_per_sender} false labels, each just under the plausibility limit, "
                 "right after a promotion: false rollback ≤ 1%",
                 f"{poisoned.share('ROLLBACK'):.1%} of {poisoned.runs}", poisoned.share("ROLLBACK") <= 0.01, True))
    hidden = out["guard: champion RMSE +25%, one person reports no error"]
    rows.append((f"RMSE +25% after promotion while one person reports {policy.labels.max_per_sender} perfect labels: "
                 "still rolled back (≥ 95%)",
                 f"rolled back {hidden.share('ROLLBACK'):.1%}, p95 {hidden.p95_seconds() or 0:.0f} s vs "
                 f"{base_p95:.0f} s", hidden.share("ROLLBACK") >= 0.95, True))
    for rate, o in errors.items():
        p95 = o.p95_seconds()
        rows.append((f"errors 1% → 5% at {rate:g} req/s (50/50): retired within 120 s (p95, statistics only)",
                     f"retired {o.share('RETIRE'):.1%}, p95 {p95 or 0:.0f} s",
                     o.share("RETIRE") >= 0.95 and p95 is not None and p95 <= 120, rate >= 30))
    return rows


def main(argv: list[str] | None = None) -> int:
    from mlstack.rollout.policy import load_policy

    parser = argparse.ArgumentParser(description="Run the judge on seeded synthetic A/B streams.")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 when an enforced target is missed")
    parser.add_argument("--policy", default=None, help="a policy file other than mlstack/rollout/policy.yaml")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    args = parser.parse_args(argv)
    policy, digest = load_policy(args.policy)
    print(f"judge simulation: {args.runs} seeded runs per scenario, policy sha256 {digest[:12]}", flush=True)
    out = run_all(policy, args.runs, args.seed, args.workers)
    for title, o in out.items():
        p95 = o.p95_seconds()
        print(f"  {title:38} {dict(o.decisions)}  p95 time to verdict {'-' if p95 is None else f'{p95:.0f} s'}"
              f"  ({o.elapsed:.1f} s)")
    failed = False
    for text, measured, met, enforced in targets(out, policy):
        mark = "met" if met else ("MISSED" if enforced else "missed (reported, not enforced)")
        failed |= enforced and not met
        print(f"  {mark:>32}  {text}: {measured}")
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
