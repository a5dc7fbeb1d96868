"""Rollout decisions on the real native stack, through the action functions the DAGs run: a dead
slot, a champion slot failing its health check, the rollback script, long HOLDs, failed DAG runs.
(Retirement, promotion and rollback through Airflow's scheduler are in test_airflow.py.)

Traffic comes from the simulator (held-out rows through nginx, feedback after a delay); faults
come from the slots' fault mode; the Slack webhook is a local sink recording each post.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from mlstack.registry.aliases import CHALLENGER, CHAMPION, move_alias
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


@pytest.mark.faults
def test_a_dead_slot_is_a_sample_ratio_hold_not_a_verdict(ctx, native, stack, contract, housing, rows):
    from mlstack.rollout.actions import evaluate_ab

    reg = ctx.registry
    _, challenger = tiny_version(stack, contract, housing.sample(3000, random_state=7), "house-price")
    move_alias(reg, CHALLENGER, challenger, actor="test", reason="a challenger for the dead-slot test")
    native.set_ab_weight(50)
    native.wait_serving("B", challenger)
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


@pytest.mark.faults
def test_a_champion_slot_failing_its_health_check_is_rolled_back_at_once(ctx, native, sink, stack):
    from mlstack.registry.policy import set_champion
    from mlstack.rollout.actions import guard_champion

    reg = ctx.registry
    current = reg.alias_version(CHAMPION)
    other = next(v for v in reversed(versions(stack))
                 if v != current and reg.artifacts_present(v))
    set_champion(reg, other, actor="test", reason="a champion whose slot will fail", metrics={})
    native.wait_serving("A", other)
    sink.take()
    native.ctl("stop", "backend-a")
    try:
        result = guard_champion(ctx)
    finally:
        native.ctl("start", "backend-a")
        native.wait_healthy({p.name: p for p in native.programs()}["backend-a"], 60)
    assert result["action"] == "ROLLBACK" and "health check failed" in result["reason"]
    assert reg.alias_version(CHAMPION) == current  # no statistics needed: one tick
    posts = sink.take("mlstack")
    assert len(posts) == 1 and "rolled back" in posts[0]["text"]
    assert ctx.events.verify().ok


def test_the_rollback_script_dry_run_changes_nothing_and_refuses_unknown_versions(stack, ctx):
    reg = ctx.registry
    before = reg.aliases()
    events = len(reg.events.recent(reg.model_name, limit=10_000))
    target = versions(stack)[-1]  # the dead-slot test's challenger: registered, artifacts in place, no alias
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
    posts = sink.take("mlstack")
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
    posts = sink.take("mlstack")
    assert len(posts) == 1 and "train_model run manual__test failed in task validate" in posts[0]["text"]
    assert "latitude" in json.dumps(posts[0]["blocks"])
