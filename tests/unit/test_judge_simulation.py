"""The simulation harness itself: seeded, so a run is reproducible; scenarios end the way they should."""

from dataclasses import replace

from mlstack.rollout.policy import load_policy
from mlstack.rollout.simulation import ArmModel, Scenario, simulate_ab, simulate_guard


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
