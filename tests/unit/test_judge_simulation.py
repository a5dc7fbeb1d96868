"""The simulation harness itself: seeded, so a run is reproducible; scenarios end the way they should."""

from dataclasses import replace

import pytest

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


def test_a_poisoner_just_under_the_plausibility_limit_is_modelled(policy):
    """The harness reproduces the attack the per-sender cap alone does not stop (reported by the targets)."""
    base = ArmModel()
    healthy = simulate_guard(Scenario("ok", base, base), policy, runs=100)
    poisoned = simulate_guard(Scenario("ok", base, base, poison_ratio=0.98 * policy.labels.implausible_error_ratio),
                              policy, runs=100)
    assert poisoned.decisions.get("ROLLBACK", 0) > healthy.decisions.get("ROLLBACK", 0)
