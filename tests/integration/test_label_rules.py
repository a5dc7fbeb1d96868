"""Who may label: the judge counts a few labels per sender and address, drops implausible ones, says how many.

The evidence query runs on both databases the stack supports (SQLite and the machine's PostgreSQL),
with predictions and feedback written as the slots write them; the judge then decides on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest

from mlstack.db.engine import create_engine, ensure_database
from mlstack.db.migrate import upgrade
from mlstack.rollout.evidence import arm, label_sums, paired
from mlstack.rollout.judge import GuardEvidence, decide
from mlstack.rollout.policy import load_policy
from mlstack.serving.predlog import write_rows

HOLDOUT_RMSE = 50_000.0
NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, pg_database):
    url = f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else pg_database("labels")
    ensure_database(url)
    engine = create_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Traffic:
    """Predictions by champion v2 (shadow: v1) and their labels, written the way a slot writes them."""

    def __init__(self, seed: int = 1) -> None:
        self.rng, self.records, self.n = random.Random(seed), [], 0

    def add(self, *, user: str, address: str, truth: float, served_error: float = 0.0, shadow_error: float = 0.0,
            actual: float | None = None, sender: str | None = None) -> None:
        self.n += 1
        pid = f"{self.n:032d}{'0' * 16}"
        noise = self.rng.gauss(0, HOLDOUT_RMSE * 0.8)
        created = NOW - timedelta(minutes=10) + timedelta(seconds=self.n * 0.1)
        self.records.append(("prediction", {
            "prediction_id": pid, "created_at": created.timestamp(), "variant": "A", "model_name": "m",
            "model_version": "2", "model_alias": "champion", "user_hash": _h(user), "request_id": None,
            "features": {}, "prediction": truth + noise + served_error, "latency_ms": 1.0,
            "shadow_version": "1", "shadow_prediction": truth + noise + shadow_error}))
        self.records.append(("feedback", {"prediction_id": pid, "actual": truth if actual is None else actual,
                                          "received_at": created.timestamp() + 5, "sender_hash": _h(sender or user),
                                          "address_hash": _h(address)}))

    def honest(self, users: int, each: int, **kw: float) -> Traffic:
        for u in range(users):
            for _ in range(each):
                self.add(user=f"user-{u}", address=f"10.0.0.{u}", truth=self.rng.uniform(80_000, 400_000), **kw)
        return self


def _guard(engine, policy):
    since = NOW - timedelta(minutes=15)
    sums = label_sums(engine, ["2"], since, None, policy.labels, HOLDOUT_RMSE ** 2, by_variant=False)
    champion = arm(engine, "2", since, None, policy.latency_slo_ms, labels=sums)
    champion = dataclasses.replace(champion, requests=5_000)  # the request counts are not what is tested here
    return champion, decide(GuardEvidence(champion, HOLDOUT_RMSE ** 2, previous_version="1"), policy)


def test_one_user_with_500_false_labels_moves_nothing(engine):
    policy, _ = load_policy()
    traffic = Traffic().honest(users=50, each=3)
    for _ in range(500):  # one person, one address: the highest price the contract allows, for every prediction
        traffic.add(user="attacker", address="203.0.113.9", truth=traffic.rng.uniform(80_000, 400_000),
                    actual=500_001.0)
    write_rows(engine, traffic.records)
    champion, decision = _guard(engine, policy)
    assert decision.action == "KEEP", decision.reason
    assert f"{650 - champion.labels} reported labels not counted" in decision.reason  # the evidence says so
    assert champion.labels <= 150 + policy.labels.max_per_sender
    assert champion.labels_over_cap + champion.labels_implausible == 650 - champion.labels
    assert champion.labels_over_cap >= 500 - 2 * policy.labels.max_per_sender - champion.labels_implausible

    counted_all = dataclasses.replace(policy, labels=dataclasses.replace(
        policy.labels, max_per_sender=10**9, max_per_address=10**9, implausible_error_ratio=1e9))
    every_label, decision = _guard(engine, counted_all)
    assert every_label.labels == 650 and decision.action == "KEEP", decision.reason  # one cluster: one voice
    per_label = dataclasses.replace(every_label, label_clusters=0)  # and every label a voice of its own
    decision = decide(GuardEvidence(per_label, HOLDOUT_RMSE ** 2, previous_version="1"), policy)
    assert decision.action == "ROLLBACK", decision.reason  # what the rules prevent


def test_fifty_users_reporting_a_real_degradation_still_roll_back(engine):
    policy, _ = load_policy()
    write_rows(engine, Traffic().honest(users=50, each=4, served_error=80_000.0).records)
    champion, decision = _guard(engine, policy)
    assert (champion.labels, champion.labels_over_cap, champion.labels_implausible) == (200, 0, 0)
    assert decision.action == "ROLLBACK", decision.reason


def test_one_address_rotating_user_ids_is_capped_per_address(engine):
    policy, _ = load_policy()
    rules = dataclasses.replace(policy.labels, max_per_address=30)
    traffic = Traffic()
    for i in range(100):
        traffic.add(user=f"fresh-{i}", address="198.51.100.7", truth=200_000.0)
    write_rows(engine, traffic.records)
    sums = label_sums(engine, ["2"], NOW - timedelta(minutes=15), None, rules, HOLDOUT_RMSE ** 2, by_variant=False)
    counted = sums.of("2", None)
    assert (counted["labels"], counted["labels_over_cap"], counted["labels_implausible"]) == (30, 70, 0)
    assert counted["label_clusters"] == 1  # one address speaks with one voice, whatever ids it sends


def test_a_label_near_the_shadow_model_is_plausible_one_near_no_model_is_not(engine):
    policy, _ = load_policy()
    traffic = Traffic()
    traffic.add(user="u1", address="a", truth=200_000.0, served_error=400_000.0)  # far from v2, right for v1
    traffic.add(user="u2", address="b", truth=200_000.0, actual=200_000.0 + 6 * HOLDOUT_RMSE + 200_000)
    write_rows(engine, traffic.records)
    counted = label_sums(engine, ["2"], NOW - timedelta(minutes=15), None, policy.labels,
                         HOLDOUT_RMSE ** 2).of("2", "A")
    assert (counted["labels"], counted["labels_over_cap"], counted["labels_implausible"]) == (1, 0, 1)


def test_one_persons_labels_just_under_the_plausibility_limit_weigh_as_one_voice(engine):
    """Right after a promotion, 20 false values, each 4.9 holdout RMSEs off both models, beside 1,000 honest
    labels: counted one by one they make the new champion significantly worse than the one it replaced
    (the simulation's poisoner, who rolled a healthy champion back in a quarter of its runs); as one
    cluster they cannot."""
    policy, _ = load_policy()
    traffic = Traffic().honest(users=1000, each=1)
    off = 0.98 * policy.labels.implausible_error_ratio * HOLDOUT_RMSE
    for _ in range(20):
        traffic.add(user="attacker", address="203.0.113.9", truth=traffic.rng.uniform(80_000, 400_000))
        prediction, label = traffic.records[-2][1], traffic.records[-1][1]
        label["actual"] = prediction["prediction"] + off  # served and shadow predictions are equal here
    write_rows(engine, traffic.records)
    champion, _ = _guard(engine, policy)
    assert (champion.labels, champion.labels_over_cap, champion.labels_implausible) == (1020, 0, 0)
    assert champion.label_clusters == 1001

    honest_mse = (0.8 * HOLDOUT_RMSE) ** 2  # Traffic's noise: the previous champion's record, an hour of labels
    previous = dataclasses.replace(champion, version="1", labels=4000, se_sum=4000 * honest_mse,
                                   se_sq_sum=4000 * 3 * honest_mse ** 2, label_clusters=0)

    def watched(arm):
        return decide(GuardEvidence(arm, HOLDOUT_RMSE ** 2, previous=previous, previous_version="1",
                                    in_watch_window=True), policy)

    decision = watched(champion)
    assert decision.action == "KEEP", decision.reason
    decision = watched(dataclasses.replace(champion, label_clusters=0))  # what the judge did before clusters
    assert decision.action == "ROLLBACK" and "mse_vs_previous" in decision.reason, decision.reason


def test_cluster_sums_match_a_direct_computation(engine):
    """The query's cluster-robust terms against the same sums done in Python from the written rows."""
    policy, _ = load_policy()
    traffic = Traffic(seed=3).honest(users=7, each=5, served_error=20_000.0)
    write_rows(engine, traffic.records)
    counted = label_sums(engine, ["2"], NOW - timedelta(minutes=15), None, policy.labels, HOLDOUT_RMSE ** 2,
                         by_variant=False).of("2", None)
    preds = {r["prediction_id"]: r for kind, r in traffic.records if kind == "prediction"}
    clusters: dict[str, list[float]] = {}
    for kind, r in traffic.records:
        if kind == "feedback":
            clusters.setdefault(r["address_hash"], []).append(preds[r["prediction_id"]]["prediction"] - r["actual"])
    n = sum(len(v) for v in clusters.values())
    mean_se = sum(e * e for v in clusters.values() for e in v) / n
    mean_ae = sum(abs(e) for v in clusters.values() for e in v) / n
    se_ss = sum((sum(e * e for e in v) - len(v) * mean_se) ** 2 for v in clusters.values())
    ae_ss = sum((sum(abs(e) for e in v) - len(v) * mean_ae) ** 2 for v in clusters.values())
    assert (counted["labels"], counted["label_clusters"]) == (35, 7)
    assert counted["se_cluster_ss"] == pytest.approx(se_ss, rel=1e-9)
    assert counted["ae_cluster_ss"] == pytest.approx(ae_ss, rel=1e-9)


def test_paired_cluster_sums_match_a_direct_computation(engine):
    """The shadow pairs' sums and cluster terms (champion v2 served, challenger v1 in the shadow)."""
    policy, _ = load_policy()
    since = NOW - timedelta(minutes=15)
    empty = paired(engine, "2", "1", since, policy.labels, HOLDOUT_RMSE ** 2)
    assert (empty.pairs, empty.clusters, empty.d_se_cluster_ss) == (0, 0, 0.0)
    traffic = Traffic(seed=5).honest(users=6, each=4, shadow_error=15_000.0)
    write_rows(engine, traffic.records)
    got = paired(engine, "2", "1", since, policy.labels, HOLDOUT_RMSE ** 2)
    preds = {r["prediction_id"]: r for kind, r in traffic.records if kind == "prediction"}
    clusters: dict[str, list[tuple[float, float]]] = {}
    for kind, r in traffic.records:
        if kind == "feedback":
            p = preds[r["prediction_id"]]
            e_ch, e_cp = p["shadow_prediction"] - r["actual"], p["prediction"] - r["actual"]
            clusters.setdefault(r["address_hash"], []).append((e_ch * e_ch - e_cp * e_cp, abs(e_ch) - abs(e_cp)))
    d = [x for v in clusters.values() for x in v]
    mean_se, mean_ae = sum(x[0] for x in d) / len(d), sum(x[1] for x in d) / len(d)
    assert (got.pairs, got.clusters) == (24, 6)
    assert got.d_se_sum == pytest.approx(sum(x[0] for x in d), rel=1e-9)
    assert got.d_se_cluster_ss == pytest.approx(
        sum((sum(x[0] for x in v) - len(v) * mean_se) ** 2 for v in clusters.values()), rel=1e-9)
    assert got.d_ae_cluster_ss == pytest.approx(
        sum((sum(x[1] for x in v) - len(v) * mean_ae) ** 2 for v in clusters.values()), rel=1e-9)
