"""The simulation harness itself: seeded, so a run is reproducible; scenarios end the way they should."""

from dataclasses import replace

import numpy as np
import pytest

from mlstack.rollout import simulation
from mlstack.rollout.policy import load_policy
from mlstack.rollout.simulation import ArmModel, Scenario, simulate_ab, simulate_guard


@pytest.fixture
def policy():
    return load_policy()[0]


def test_a_seed_reproduces_a_run():
    policy, _ = load_policy()
    sc = Scenario("worse", ArmModel(), replace(ArmModel(), error_rate=0.05), requests_per_second=30, tick_seconds=10,
                  ticks=30)
    first, second = simulate_ab(sc, policy, 50, seed=7), simulate_ab(sc, policy, 50, seed=7)
    assert first.decisions == second.decisions and first.seconds == second.seconds
    assert first.decisions["RETIRE"] == 50


def test_a_dead_slot_never_yields_a_verdict_even_when_its_model_is_bad():
    policy, _ = load_policy()
    sc = Scenario("dead", ArmModel(), replace(ArmModel(), error_rate=0.5), served_b=0.0, ticks=60)
    assert simulate_ab(sc, policy, 100).decisions == {"HOLD": 100}


def test_the_guard_rolls_back_a_biased_champion():
    policy, _ = load_policy()
    sc = Scenario("bias", ArmModel(), replace(ArmModel(), bias=30_000.0), ticks=40)
    out = simulate_guard(sc, policy, 100)
    assert out.decisions["ROLLBACK"] == 100


def test_few_senders_count_at_most_their_cap_and_slow_the_guard(policy):
    base = ArmModel()
    worse = Scenario("worse", base, replace(base, rmse=base.rmse * 1.25))
    few = simulate_guard(replace(worse, senders=5), policy, runs=40)
    cap = 5 * policy.labels.max_per_sender
    assert few.decisions.get("ROLLBACK", 0) < simulate_guard(worse, policy, runs=40).decisions["ROLLBACK"]
    assert all(n <= cap for n in few.labels_b)


def test_a_poisoner_just_under_the_plausibility_limit_weighs_as_one_cluster(policy, monkeypatch):
    """The attack the per-sender cap alone does not stop: counted per label, one person's false values roll a
    healthy champion back; as one cluster of the judge's cluster-robust variance, never."""
    base = ArmModel()
    attack = Scenario("ok", base, base, poison_ratio=0.98 * policy.labels.implausible_error_ratio)
    assert simulate_guard(attack, policy, runs=100).decisions.get("ROLLBACK", 0) == 0
    monkeypatch.setattr(simulation, "_clustered", lambda stats, senders, poison: stats)  # every label its own voice
    assert simulate_guard(attack, policy, runs=100).decisions.get("ROLLBACK", 0) >= 5


def test_cluster_terms_of_honest_singletons_are_the_per_label_variance(policy):
    """With every label its own cluster and nobody else, the cluster-robust variance is the per-label one."""
    rng = np.random.default_rng(0)
    e = rng.standard_t(5, size=(1, 300)) * 40_000
    stats = {"labels": np.array([[300]]), "se_sum": np.array([[np.sum(e ** 2)]]),
             "se_sq_sum": np.array([[np.sum(e ** 4)]]), "ae_sum": np.array([[np.sum(np.abs(e))]])}
    out = simulation._clustered(stats, None, None)
    assert out["label_clusters"][0, 0] == 300
    assert out["se_cluster_ss"][0, 0] == pytest.approx(np.sum((e ** 2 - np.mean(e ** 2)) ** 2), rel=1e-9)
    assert out["ae_cluster_ss"][0, 0] == pytest.approx(np.sum((np.abs(e) - np.mean(np.abs(e))) ** 2), rel=1e-9)


def test_scenarios_on_several_processes_give_the_same_outcomes(policy):
    one, two = simulation.run_all(policy, runs=10, seed=3), simulation.run_all(policy, runs=10, seed=3, workers=2)
    assert list(one) == list(two)
    assert [(o.decisions, o.seconds) for o in one.values()] == [(o.decisions, o.seconds) for o in two.values()]
