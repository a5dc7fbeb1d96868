"""The drift check: its verdict, Evidently's report against the fast path, and a week without drift."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mlstack.monitoring.drift import (
    DriftPolicyError,
    evidently_report,
    fast_scores,
    load_drift_policy,
    reference_frame,
    verdict,
    week_without_drift,
)
from mlstack.simulator import drifted, holdout_rows

DATA = Path(__file__).resolve().parents[2] / "data" / "housing.csv"


@pytest.fixture(scope="module")
def policy():
    return load_drift_policy()[0]


def test_small_windows_give_no_verdict(policy):
    result = verdict({"a": 5.0, "b": 5.0}, policy.min_rows - 1, 5000, policy)
    assert result.share is None and not result.detected and "no verdict" in result.reason


def test_share_above_the_threshold_is_drift(policy):
    p = replace(policy, column_threshold=0.2, share_threshold=0.2)
    scores = {f"f{i}": 0.0 for i in range(9)}
    assert not verdict({**scores, "f0": 0.5}, 2000, 5000, p).detected  # 1 of 9 = 11%
    result = verdict({**scores, "f0": 0.5, "f1": 0.2}, 2000, 5000, p)  # 2 of 9 = 22%; the threshold counts
    assert result.detected and result.drifted == ["f0", "f1"] and result.share == pytest.approx(2 / 9)


def test_a_bad_drift_section_names_the_setting(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text((Path(__file__).resolve().parents[2] / "mlstack/rollout/policy.yaml").read_text()
                   .replace("retrain: true", "retrain: 3"))
    with pytest.raises(DriftPolicyError, match="drift.retrain"):
        load_drift_policy(bad)


def test_the_report_and_the_fast_path_give_the_same_scores(contract, policy):
    reference = reference_frame(DATA, contract, 3000, 42, 0.2)
    current = drifted(holdout_rows(DATA, contract).sample(1200, random_state=3), contract)
    scores, html = evidently_report(reference, current, contract, policy)
    assert scores == pytest.approx(fast_scores(reference, current, contract), abs=1e-9)
    assert scores["median_income"] > policy.column_threshold and html.lstrip().lower().startswith("<!doctype html")


def test_a_week_of_hourly_checks_without_drift_raises_nothing(contract, policy):
    week = week_without_drift(DATA, contract, policy, runs=168, seed=7)
    print("drift, a week of hourly runs without drift:", week)
    assert week["raised"] == 0 and week["no_verdict"] > 0  # quiet hours give no verdict at all
    assert week["worst_feature_score"] < policy.column_threshold
    assert week["simulated_drift_detected"], week["simulated_drift"]
