"""Rollout decisions on the real native stack: a bad challenger retired, a better one promoted, a
degraded champion rolled back — each with exactly one Slack message and a verified audit chain.

Traffic comes from the simulator (held-out rows through nginx, feedback after a delay); faults
come from the slots' fault mode; the Slack webhook is a local sink recording each post.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, move_alias
from mlstack.serving.faults import write_fault
from mlstack.settings import RolloutSettings, TrainingSettings
from mlstack.simulator import Simulator, holdout_rows
from tests.integration.helpers import tiny_version, versions


@pytest.fixture(scope="module")
def sink(slack_sink):
    return slack_sink


pytestmark = pytest.mark.usefixtures("registry_restored")


@pytest.fixture(scope="module")
def ctx(stack, sink):
    from mlstack.rollout.actions import open_context

    settings = stack.settings(RolloutSettings, SLACK_WEBHOOK_URL=sink.url, SLACK_ATTEMPTS=2)
    return open_context("test", settings)


@pytest.fixture(scope="module")
def rows(stack, contract):
    s = stack.settings(TrainingSettings)
    return holdout_rows(s.DATA_PATH, contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION)


def _decide_under_traffic(action, ctx, native, rows, contract, want: set[str], seconds: float = 90, rate: float = 80):
    """Send traffic and run a decision tick every 2 s until one of `want` comes; return all results."""
    sim = Simulator(native.settings.WEB_PORT, rows, contract, rate=rate, threads=6, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(seconds,), daemon=True)
    runner.start()
    results = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(2)
            results.append(action(ctx))
            if results[-1]["action"] in want:
                break
    finally:
        sim.stop()
        runner.join(timeout=30)
    return results, sim.report


def _wait_serving(native, slot: str, version: str, timeout: float = 30) -> None:
    import urllib.request

    port = native.settings.BACKEND_A_PORT if slot == "A" else native.settings.BACKEND_B_PORT
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/model-info", timeout=5).read())
        if (info.get("model") or {}).get("version") == version:
            return
        time.sleep(0.5)
    raise AssertionError(f"slot {slot} did not serve v{version} within {timeout}s")


def _assert_audit(ctx, event_id: int) -> None:
    from mlstack.rollout.audit import explain

    assert ctx.events.verify().ok
    assert explain(ctx.engine, event_id).reproduced


def test_a_bad_challenger_is_retired(ctx, native, sink, stack, contract, housing, rows):
    from mlstack.rollout.actions import evaluate_ab

    reg = ctx.registry
    _, bad = tiny_version(stack, contract, housing.sample(4000, random_state=1), "house-price")
    move_alias(reg, CHALLENGER, bad, actor="test", reason="a challenger for the retirement test")
    native.set_ab_weight(50)
    write_fault(native.fault_file("B"), error_rate=0.3)
    try:
        _wait_serving(native, "B", bad)
        sink.take()
        results, report = _decide_under_traffic(evaluate_ab, ctx, native, rows, contract, {"RETIRE", "PROMOTE"})
    finally:
        write_fault(native.fault_file("B"))
    print("retirement:", [r["action"] for r in results], report.as_dict())
    final = results[-1]
    assert final["action"] == "RETIRE" and "error_rate" in final["reason"]
    assert reg.alias_version(CHALLENGER) is None and reg.alias_version(CHAMPION) == final["champion"]
    posts = sink.take()
    assert len(posts) == 1 and "retired" in posts[0]["text"] and posts[0]["blocks"][0]["type"] == "header"
    _assert_audit(ctx, final["event_id"])
    holds = [r for r in results[:-1]]
    assert all(r["action"] == "HOLD" for r in holds)  # every earlier tick held, and was recorded
    assert len(ctx.events.recent(reg.model_name, limit=500)) >= len(results)


def test_a_better_challenger_is_promoted(ctx, native, sink, stack, contract, housing, rows):
    from mlstack.rollout.actions import evaluate_ab

    reg = ctx.registry
    old = reg.alias_version(CHAMPION)
    _, better = tiny_version(stack, contract, housing.sample(8000, random_state=2), "house-price",
                             family="hist_gradient_boosting", holdout=rows)
    move_alias(reg, CHALLENGER, better, actor="test", reason="a better challenger for the promotion test")
    _wait_serving(native, "B", better)
    sink.take()
    results, report = _decide_under_traffic(evaluate_ab, ctx, native, rows, contract, {"RETIRE", "PROMOTE"},
                                            seconds=120, rate=100)
    print("promotion:", [r["action"] for r in results][-3:], report.as_dict())
    final = results[-1]
    assert final["action"] == "PROMOTE", final["reason"]
    assert reg.aliases() == {CHAMPION: better, PREVIOUS_CHAMPION: old}
    posts = sink.take()
    assert len(posts) == 1 and "promoted" in posts[0]["text"]
    _assert_audit(ctx, final["event_id"])


def test_a_degraded_champion_is_rolled_back(ctx, native, sink, stack, contract, rows):
    from mlstack.rollout.actions import guard_champion

    reg = ctx.registry
    champion, previous = reg.alias_version(CHAMPION), reg.alias_version(PREVIOUS_CHAMPION)
    assert previous is not None, "runs after the promotion test"
    _wait_serving(native, "A", champion)
    write_fault(native.fault_file("A"), bias=80_000.0)
    try:
        sink.take()
        results, report = _decide_under_traffic(guard_champion, ctx, native, rows, contract, {"ROLLBACK"})
    finally:
        write_fault(native.fault_file("A"))
    print("rollback:", [r["action"] for r in results][-3:], report.as_dict())
    final = results[-1]
    assert final["action"] == "ROLLBACK" and final["rolled_back"] and "mse" in final["reason"]
    assert reg.aliases() == {CHAMPION: previous}
    posts = sink.take()
    assert len(posts) == 1 and "rolled back" in posts[0]["text"]
    _assert_audit(ctx, final["event_id"])
    native.set_ab_weight(10)


def test_a_dead_slot_is_a_sample_ratio_hold_not_a_verdict(ctx, native, stack, contract, housing, rows):
    from mlstack.rollout.actions import evaluate_ab

    reg = ctx.registry
    _, challenger = tiny_version(stack, contract, housing.sample(3000, random_state=7), "house-price")
    move_alias(reg, CHALLENGER, challenger, actor="test", reason="a challenger for the dead-slot test")
    native.set_ab_weight(50)
    _wait_serving(native, "B", challenger)
    native.ctl("stop", "backend-b")
    try:
        results, report = _decide_under_traffic(evaluate_ab, ctx, native, rows, contract, {"RETIRE", "PROMOTE"},
                                                seconds=20, rate=60)
    finally:
        native.ctl("start", "backend-b")
        native.wait_healthy({p.name: p for p in native.programs()}["backend-b"], 60)
        native.set_ab_weight(10)
    print("dead slot:", [r["reason"][:40] for r in results], report.as_dict())
    assert report.answered.get(200, 0) == report.sent  # nginx sent B's users to A: nothing failed
    assert {r["action"] for r in results} == {"HOLD"}
    assert results[-1]["reason"].startswith("sample-ratio mismatch")
    assert reg.alias_version(CHALLENGER) == challenger
    move_alias(reg, CHALLENGER, None, actor="test", reason="end of the dead-slot test")


def test_a_champion_slot_failing_its_health_check_is_rolled_back_at_once(ctx, native, sink, stack):
    from mlstack.registry.policy import set_champion
    from mlstack.rollout.actions import guard_champion

    reg = ctx.registry
    current = reg.alias_version(CHAMPION)
    other = next(v for v in reversed(versions(stack))
                 if v != current and reg.artifacts_present(v))
    set_champion(reg, other, actor="test", reason="a champion whose slot will fail", metrics={})
    _wait_serving(native, "A", other)
    sink.take()
    native.ctl("stop", "backend-a")
    try:
        result = guard_champion(ctx)
    finally:
        native.ctl("start", "backend-a")
        native.wait_healthy({p.name: p for p in native.programs()}["backend-a"], 60)
    assert result["action"] == "ROLLBACK" and "health check failed" in result["reason"]
    assert reg.alias_version(CHAMPION) == current  # no statistics needed: one tick
    posts = sink.take()
    assert len(posts) == 1 and "rolled back" in posts[0]["text"]
    assert ctx.events.verify().ok


def test_the_rollback_script_dry_run_changes_nothing_and_refuses_unknown_versions(stack, ctx):
    reg = ctx.registry
    before = reg.aliases()
    events = len(reg.events.recent(reg.model_name, limit=10_000))
    target = versions(stack)[-1]  # the promoted (and rolled back) version: its artifacts are in place
    assert target != before[CHAMPION]
    dry = stack.script("scripts/rollback.py", "--to", target, "--reason", "what if", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["would_be"] == target
    assert reg.aliases() == before
    assert len(reg.events.recent(reg.model_name, limit=10_000)) == events + 1  # the dry run is recorded
    unknown = stack.script("scripts/rollback.py", "--to", "999", "--reason", "no such version")
    assert unknown.returncode == 5 and "no version 999" in unknown.stderr
    assert reg.aliases() == before
    # by hand, to an explicit version, then the same again: the second run changes nothing
    first = stack.script("scripts/rollback.py", "--to", target, "--reason", "by hand")
    again = stack.script("scripts/rollback.py", "--to", target, "--reason", "by hand")
    assert first.returncode == 0 and json.loads(first.stdout)["rolled_back"] is True
    assert again.returncode == 0 and json.loads(again.stdout)["rolled_back"] is False
    assert reg.alias_version(CHAMPION) == target and reg.events.verify().ok


def test_a_hold_past_its_timeout_sends_one_message(stack, sink, tmp_path):
    from mlstack.rollout.actions import evaluate_ab, open_context

    policy = (Path(__file__).resolve().parents[2] / "mlstack" / "rollout" / "policy.yaml").read_text()
    custom = tmp_path / "policy.yaml"
    custom.write_text(policy.replace("hold_timeout_minutes: 120", "hold_timeout_minutes: 0"))
    ctx = open_context("test", stack.settings(RolloutSettings, SLACK_WEBHOOK_URL=sink.url, JUDGE_POLICY_FILE=custom))
    sink.take()
    first, second = evaluate_ab(ctx), evaluate_ab(ctx)
    assert first["action"] == second["action"] == "HOLD"
    posts = sink.take()
    assert len(posts) == 1 and "undecided for too long" in posts[0]["text"]  # one per HOLD streak
    notes = [e for e in ctx.events.recent(ctx.registry.model_name, limit=5) if e["action"] == "notify"]
    assert notes and notes[0]["details"]["topic"] == "hold_timeout" and notes[0]["details"]["delivery"] == "delivered"


def test_a_failed_dag_run_sends_one_message(stack, sink):
    """The DAGs' on_failure_callback, given the context Airflow passes it."""
    from types import SimpleNamespace

    from mlstack.rollout.callbacks import on_dag_failure

    import os

    sink.take()
    os.environ.update(stack.env)  # the callback reads its settings from the environment, as in an Airflow worker
    on_dag_failure({"dag_run": SimpleNamespace(dag_id="train_model", run_id="manual__test"),
                    "task_instance": SimpleNamespace(task_id="validate"),
                    "exception": ValueError("latitude [maximum] 1 row(s): must be at most 42")})
    posts = sink.take()
    assert len(posts) == 1 and "train_model run manual__test failed in task validate" in posts[0]["text"]
    assert "latitude" in json.dumps(posts[0]["blocks"])
