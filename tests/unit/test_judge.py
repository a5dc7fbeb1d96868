"""The judge: validity gates first, then always-valid comparisons; pure and deterministic."""

from dataclasses import replace
from pathlib import Path

import pytest

from mlstack.rollout.judge import ABEvidence, ArmEvidence, GuardEvidence, cs_radius, decide, srm_p_value
from mlstack.rollout.policy import PolicyError, load_policy, parse_policy

POLICY, _ = load_policy()
ROOT = Path(__file__).resolve().parents[2]
MSE = 45_000.0 ** 2


def arm(version, requests, errors=0, slow=0, labels=0, rmse=45_000.0, kurtosis=3.0):
    """An arm whose squared errors have mean rmse² and the given kurtosis (3 = normal)."""
    mse = rmse * rmse
    return ArmEvidence(version=version, requests=requests, errors=errors, slow=slow, labels=labels,
                       se_sum=mse * labels, se_sq_sum=kurtosis * mse * mse * labels, ae_sum=0.8 * rmse * labels)


def ab(a, b, weight=50):
    return ABEvidence(a, b, weight, holdout_mse=MSE, holdout_mae=0.8 * 45_000.0)


def test_no_challenger_no_data_and_too_few_samples_hold():
    assert decide(ab(arm("1", 500), ArmEvidence(None)), POLICY).action == "HOLD"
    assert decide(ab(arm("1", 500), arm("2", 500), weight=0), POLICY).action == "HOLD"
    nothing = decide(ab(arm("1", 0), arm("2", 0)), POLICY)
    assert nothing.action == "HOLD" and nothing.reason.startswith("no data")
    few = decide(ab(arm("1", 150), arm("2", 150)), POLICY)
    assert few.action == "HOLD" and few.reason.startswith("collecting") and few.checks[0].metric == "requests"


def test_a_dead_slot_is_a_sample_ratio_mismatch_not_a_verdict():
    # slot B dead: nginx sent its users to A, so B has almost no requests, and B's errors never show
    d = decide(ab(arm("1", 2000, errors=200), arm("2", 3)), POLICY)
    assert d.action == "HOLD" and d.reason.startswith("sample-ratio mismatch")
    srm = next(c for c in d.checks if c.metric == "sample_ratio")
    assert not srm.passed and "p=" in srm.note
    assert srm_p_value(1000, 1000, 0.5) == pytest.approx(1.0)
    assert srm_p_value(900, 100, 0.1) == pytest.approx(1.0)
    assert srm_p_value(1000, 900, 0.5) < 0.05


def test_the_split_is_checked_on_users_the_unit_it_randomizes():
    # 500 sticky users, 234 of them hashed into B (a draw a fair 50% split gives often): their
    # requests are 46.5% B, which a request-level χ² calls a mismatch at 7,500 requests; per user it is none.
    a = replace(arm("1", 4032, errors=40), users=266)
    b = replace(arm("2", 3499, errors=35), users=234)
    d = decide(ab(a, b), POLICY)
    srm = next(c for c in d.checks if c.metric == "sample_ratio")
    assert srm.passed and "users" in srm.note and (srm.n_a, srm.n_b) == (266, 234)
    assert srm_p_value(4032, 3499, 0.5) < POLICY.srm_p_value  # what the request-level check would say
    # a dead slot B: its users were served by A, so B has no users at all
    dead = decide(ab(replace(arm("1", 2000), users=480), replace(arm("2", 3), users=2)), POLICY)
    assert dead.action == "HOLD" and "users" in dead.reason and dead.reason.startswith("sample-ratio mismatch")


def test_a_challenger_with_many_more_errors_is_retired():
    d = decide(ab(arm("1", 3000, errors=30), arm("2", 3000, errors=150)), POLICY)
    assert d.action == "RETIRE" and "error_rate" in d.reason
    check = next(c for c in d.checks if c.metric == "error_rate" and c.test == "regression")
    assert check.passed and check.lower > 0 and check.n_a == check.n_b == 3000


def test_a_better_challenger_is_promoted_only_with_labels_and_guardrails():
    a, b = arm("1", 5000, errors=50, labels=3000), arm("2", 5000, errors=50, labels=3000, rmse=36_000.0)
    d = decide(ab(a, b), POLICY)
    assert d.action == "PROMOTE" and d.target_version == "2"
    assert {c.metric for c in d.checks if c.test in ("non-inferiority", "superiority")} == {
        "error_rate", "slo_violation_rate", "mae_relative", "mse_relative"}
    unlabelled = decide(ab(replace(a, labels=50, se_sum=MSE * 50, se_sq_sum=3 * MSE * MSE * 50, ae_sum=0),
                           replace(b, labels=50, se_sum=36_000.0 ** 2 * 50,
                                   se_sq_sum=3 * 36_000.0 ** 4 * 50, ae_sum=0)), POLICY)
    assert unlabelled.action == "HOLD" and unlabelled.reason.startswith("collecting ground truth")
    # a better RMSE does not excuse a worse error rate: the guardrail must be shown non-inferior
    noisy = decide(ab(a, replace(b, errors=90)), POLICY)
    assert noisy.action != "PROMOTE"


def test_a_worse_challenger_rmse_retires_it():
    d = decide(ab(arm("1", 5000, labels=3000), arm("2", 5000, labels=3000, rmse=60_000.0)), POLICY)
    assert d.action == "RETIRE" and "mse_relative" in d.reason


def test_same_evidence_same_decision():
    ev = ab(arm("1", 5000, errors=50, labels=3000), arm("2", 5000, errors=50, labels=3000, rmse=36_000.0))
    assert decide(ev, POLICY) == decide(ev, POLICY)


def _guard(champion, **kw):
    base = dict(holdout_mse=MSE, previous=None, previous_version="1", in_watch_window=False,
                slot_health={"A": "healthy", "B": "healthy"})
    return GuardEvidence(champion, **{**base, **kw})


def test_guard_rolls_back_on_errors_rmse_or_a_dead_champion_slot():
    ok = decide(_guard(arm("2", 1000, errors=5, labels=500)), POLICY)
    assert ok.action == "KEEP"
    errors = decide(_guard(arm("2", 1000, errors=120)), POLICY)
    assert errors.action == "ROLLBACK" and errors.target_version == "1" and "error_rate" in errors.reason
    rmse = decide(_guard(arm("2", 3000, labels=2000, rmse=70_000.0)), POLICY)
    assert rmse.action == "ROLLBACK" and "mse_ratio_to_holdout" in rmse.reason
    dead = decide(_guard(arm("2", 0), slot_health={"A": "unhealthy: connection refused", "B": "healthy"}), POLICY)
    assert dead.action == "ROLLBACK" and "health check failed" in dead.reason
    alone = decide(_guard(arm("2", 1000, errors=120), previous_version=None), POLICY)
    assert alone.action == "KEEP" and "no previous champion" in alone.reason


def test_guard_compares_with_the_previous_champion_in_the_watch_window():
    previous = arm("1", 5000, labels=3000, rmse=40_000.0)
    champion = arm("2", 3000, labels=2000, rmse=48_000.0)  # within 1.10 × holdout, worse than before
    outside = decide(_guard(champion, previous=previous), POLICY)
    inside = decide(_guard(champion, previous=previous, in_watch_window=True), POLICY)
    assert outside.action == "KEEP"
    assert inside.action == "ROLLBACK" and "mse_vs_previous" in inside.reason


def test_labels_from_one_cluster_decide_nothing_and_singletons_are_per_label():
    """Cluster-robust variance: every label its own cluster gives the per-label decision; the same labels
    from one voice (one cluster) tell nothing about the spread between voices, so no verdict."""
    rmse = arm("2", 3000, labels=2000, rmse=70_000.0)
    per_label = decide(_guard(rmse), POLICY)
    var_se = (3.0 - 1.0) * (70_000.0 ** 2) ** 2 * 2000  # Σ (e² − mean e²)² of this arm's squared errors
    var_ae = (1.0 - 0.8 ** 2) * 70_000.0 ** 2 * 2000
    singletons = replace(rmse, label_clusters=2000, se_cluster_ss=var_se, ae_cluster_ss=var_ae)
    one_voice = replace(singletons, label_clusters=1)
    assert per_label.action == decide(_guard(singletons), POLICY).action == "ROLLBACK"
    assert [c.lower for c in per_label.checks] == pytest.approx([c.lower for c in decide(_guard(singletons),
                                                                                          POLICY).checks], rel=1e-3)
    assert decide(_guard(one_voice), POLICY).action == "KEEP"


def test_confidence_sequence_narrows_with_data_and_widens_with_confidence():
    assert cs_radius(1e-4, 0.02, 0.05) < cs_radius(1e-3, 0.02, 0.05)
    assert cs_radius(1e-4, 0.02, 0.01) > cs_radius(1e-4, 0.02, 0.05)
    assert cs_radius(0.0, 0.02, 0.05) == float("inf")


def test_the_policy_file_loads_and_bad_settings_are_named():
    policy, digest = load_policy()
    assert policy.alpha == 0.05 and policy.guard.max_rmse_ratio == 1.10 and len(digest) == 64
    text = (ROOT / "mlstack" / "rollout" / "policy.yaml").read_text()
    with pytest.raises(PolicyError, match="unknown setting"):
        parse_policy(text + "alfa: 0.1\n")
    with pytest.raises(PolicyError, match="missing setting.*srm_p_value"):
        parse_policy(text.replace("srm_p_value: 0.001", ""))
    with pytest.raises(PolicyError, match="guard.min_labels: must be a number"):
        parse_policy(text.replace("min_labels: 100\n  window", "min_labels: lots\n  window"))
    with pytest.raises(PolicyError, match="alpha: must be between 0 and 0.5"):
        parse_policy(text.replace("alpha: 0.05", "alpha: 0.7"))
