"""What batch jobs push to the Pushgateway: the judge's ticks and drift checks."""

from __future__ import annotations

import math

from mlstack.monitoring import push
from mlstack.monitoring.drift import DriftResult
from mlstack.monitoring.tasks import drift_samples
from mlstack.rollout.judge import ABEvidence, ArmEvidence, Check, Decision


def _by_name(samples):
    out = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_a_judge_tick_is_one_hot_with_each_arm_and_the_split_check():
    ev = ABEvidence(champion=ArmEvidence("1", requests=400, errors=4, labels=100, se_sum=100 * 50_000.0 ** 2,
                                         ae_sum=100 * 40_000.0),
                    challenger=ArmEvidence("2", requests=100, errors=0, labels=0), weight_b=20)
    srm = Check("sample_ratio", "gate", 400, 100, None, None, 0.0, None, None, 0.001, True, note="p=0.5, expected B≈100")
    samples = _by_name(push.judge_samples("ab", ev, Decision("HOLD", "not yet", (srm,))))
    decision = {s.labels["action"]: s.value for s in samples["mlstack_judge_decision"]}
    assert decision == {"PROMOTE": 0.0, "RETIRE": 0.0, "HOLD": 1.0}
    rmse = {s.labels["arm"]: s.value for s in samples["mlstack_judge_arm_rmse"]}
    assert rmse["champion"] == 50_000.0 and math.isnan(rmse["challenger"])  # no labels: NaN, not absent
    ratio = {s.labels["arm"]: s.value for s in samples["mlstack_judge_arm_error_ratio"]}
    assert ratio == {"champion": 0.01, "challenger": 0.0}
    assert samples["mlstack_judge_srm_p_value"][0].value == 0.5 and samples["mlstack_judge_srm_mismatch"][0].value == 0
    assert samples["mlstack_ab_weight_b"][0].value == 20


def test_a_failed_split_check_sets_the_mismatch_flag():
    ev = ABEvidence(champion=ArmEvidence("1", requests=500), challenger=ArmEvidence("2", requests=0), weight_b=50)
    srm = Check("sample_ratio", "gate", 500, 0, None, None, -250.0, None, None, 0.001, False, note="p=1e-110, x")
    samples = _by_name(push.judge_samples("ab", ev, Decision("HOLD", "sample-ratio mismatch", (srm,))))
    assert samples["mlstack_judge_srm_mismatch"][0].value == 1.0
    assert samples["mlstack_judge_srm_p_value"][0].value == 1e-110


def test_a_drift_check_without_a_verdict_pushes_no_share():
    quiet = _by_name(drift_samples(DriftResult(rows=12, reference_rows=5000, reason="no verdict"), 0.2))
    assert "mlstack_drift_share" not in quiet and quiet["mlstack_drift_window_rows"][0].value == 12
    drifted = _by_name(drift_samples(DriftResult(2000, 5000, {"a": 0.5, "b": 0.0}, ["a"], 0.5, True, "x"), 0.2))
    assert drifted["mlstack_drift_share"][0].value == 0.5 and drifted["mlstack_drift_detected"][0].value == 1.0
    assert {s.labels["feature"]: s.value for s in drifted["mlstack_drift_score"]} == {"a": 0.5, "b": 0.0}


def test_pushing_never_fails_the_job():
    samples = [push.Sample("mlstack_x", "x", 1.0)]
    assert push.push(None, "test", samples) is False
    assert push.push("http://127.0.0.1:9", "test", samples, timeout=2) is False  # nothing listens on port 9
