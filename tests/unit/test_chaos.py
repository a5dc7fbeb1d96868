"""The chaos driver's plan and report (the soak itself runs against real stacks in tests/e2e)."""

from __future__ import annotations

from mlstack.chaos import SERVICES, Kill, Result, markdown, plan


def test_the_plan_is_seeded_and_kills_every_service_once_before_any_twice():
    services = list(SERVICES)
    first = plan(services, 30, seed=7)
    assert first == plan(services, 30, seed=7) and first != plan(services, 30, seed=8)
    assert sorted(first[:len(services)]) == sorted(services)
    assert all(a != b for a, b in zip(first, first[1:], strict=False))


def test_the_report_fails_on_a_lost_record_or_a_service_that_did_not_come_back():
    good = Result(kills=[Kill("nginx", 10.0, 1, 0.4)], predictions_accepted=5, labels_accepted=5, chain_verified=True)
    assert good.ok and "**PASS**" in markdown(good, mode="native", minutes=1, every=30, seed=1)
    assert not Result(kills=[Kill("mlflow", 1.0, 2, None)], chain_verified=True).ok
    lost = Result(predictions_lost=["p1"], chain_verified=True)
    assert not lost.ok and "| accepted predictions missing from the database | 1 |" in markdown(
        lost, mode="compose", minutes=1, every=30, seed=1)
    assert not Result(chain_verified=True, alias_moves=[{"id": 1}]).ok
