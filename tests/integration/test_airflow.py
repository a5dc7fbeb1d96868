"""Real Airflow 3 (native: api-server, scheduler, dag-processor, triggerer on PostgreSQL) running our DAGs.

The stack starts with every DAG paused (AIRFLOW_DAGS_PAUSED=true in the tests); each test
unpauses what it runs and pauses it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlstack.airflow_api import AirflowApi
from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, move_alias
from mlstack.serving.faults import write_fault
from mlstack.settings import TrainingSettings
from mlstack.simulator import Simulator, holdout_rows
from tests.integration.helpers import wait_serving, registry, tiny_version, versions

ROOT = Path(__file__).resolve().parents[2]


TASKS = {"evaluate_ab": "evaluate", "guard_champion": "guard"}  # each rollout DAG's one task

pytestmark = pytest.mark.usefixtures("registry_restored")


@pytest.fixture(scope="module")
def api(native):
    return AirflowApi.from_stack(native.settings)


def test_every_component_reports_healthy(api):
    health = api.call("GET", "/api/v2/monitor/health")
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health


def test_train_model_dag_trains_once_per_data_and_code(stack, native):
    """`airflow dags test` runs the DAG's tasks for real (no scheduler needed): a re-run registers nothing."""
    sample = ROOT / "tests" / "fixtures" / "housing_sample.csv"
    before = versions(stack)
    env = {**stack.env, **native.airflow_env()}
    cmd = [str(Path(sys.executable).parent / "airflow"), "dags", "test", "train_model",
           "-c", json.dumps({"data_path": str(sample)})]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    after_first = versions(stack)
    assert len(after_first) == len(before) + 1
    second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert versions(stack) == after_first  # same data, same code: skipped, nothing registered


@pytest.fixture(scope="module")
def rows(stack, contract):
    s = stack.settings(TrainingSettings)
    return holdout_rows(s.DATA_PATH, contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION)


def _decide_through_airflow(api, native, rows, contract, dag_id: str, decided, *, seconds: float, rate: float):
    """Unpause `dag_id` under simulated traffic until `decided()`; pause it again; return the ticks' results.

    Unpaused, the scheduler runs the DAG every minute; manual runs are triggered in between so
    the test does not wait for the minute. Whichever run has the evidence first acts.
    """
    sim = Simulator(native.settings.WEB_PORT, rows, contract, rate=rate, threads=6, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(seconds,), daemon=True)
    api.wait_parsed(dag_id)
    api.set_paused(dag_id, False)
    outcomes = []
    try:
        runner.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not decided():
            time.sleep(2)
            run = api.run(dag_id)
            assert run["state"] == "success", run
            outcomes.append(api.xcom(dag_id, run["dag_run_id"], TASKS[dag_id]))
    finally:
        api.set_paused(dag_id, True)
        sim.stop()
        runner.join(timeout=30)
    print(f"{dag_id} via Airflow (manual runs):", [o["action"] for o in outcomes], sim.report.as_dict())
    return outcomes


def _one_decision(reg, kind: str, action: str, actor: str, since_id: int) -> dict:
    """The one audited decision of `action` since `since_id`; its explanation reproduces it; chain verified."""
    from mlstack.rollout.audit import explain

    rows = [e for e in reg.events.recent(reg.model_name, limit=2000, actions=(f"judge_{kind}",))
            if e["id"] > since_id and e["details"]["decision"]["action"] == action]
    assert len(rows) == 1, [(e["id"], e["actor"]) for e in rows]  # acted once, though ticks kept coming
    assert rows[0]["actor"] == actor
    assert explain(reg.events.engine, rows[0]["id"]).reproduced
    assert reg.events.verify().ok
    return rows[0]


def _last_event_id(reg) -> int:
    last = reg.events.recent(reg.model_name, limit=1)
    return last[0]["id"] if last else 0


def test_evaluate_ab_dag_retires_a_bad_challenger_with_one_slack_message(stack, native, api, contract, housing,
                                                                         slack_sink, rows):
    reg = registry(stack)
    champion = reg.alias_version(CHAMPION)
    _, bad = tiny_version(stack, contract, housing.sample(3000, random_state=5), "house-price")
    move_alias(reg, CHALLENGER, bad, actor="test", reason="a challenger for the Airflow test")
    native.set_ab_weight(50)
    wait_serving(native, "B", bad)
    write_fault(native.fault_file("B"), error_rate=0.3)
    since = _last_event_id(reg)
    slack_sink.take()
    try:
        _decide_through_airflow(api, native, rows, contract, "evaluate_ab",
                                lambda: reg.alias_version(CHALLENGER) != bad, seconds=150, rate=80)
    finally:
        write_fault(native.fault_file("B"))
    assert reg.alias_version(CHALLENGER) is None and reg.alias_version(CHAMPION) == champion
    decision = _one_decision(reg, "ab", "RETIRE", "airflow:evaluate_ab", since)
    assert decision["details"]["aliases"][CHALLENGER] == bad and "error_rate" in decision["reason"]
    time.sleep(2)
    posts = slack_sink.take("mlstack")
    assert len(posts) == 1 and "retired" in posts[0]["text"] and posts[0]["blocks"][0]["type"] == "header"


def test_evaluate_ab_dag_promotes_a_better_challenger_with_one_slack_message(stack, native, api, contract, housing,
                                                                             slack_sink, rows):
    reg = registry(stack)
    old = reg.alias_version(CHAMPION)
    _, better = tiny_version(stack, contract, housing.sample(8000, random_state=2), "house-price",
                             family="hist_gradient_boosting", holdout=rows)
    move_alias(reg, CHALLENGER, better, actor="test", reason="a better challenger for the promotion test")
    native.set_ab_weight(50)
    wait_serving(native, "B", better)
    since = _last_event_id(reg)
    slack_sink.take()
    _decide_through_airflow(api, native, rows, contract, "evaluate_ab",
                            lambda: reg.alias_version(CHALLENGER) != better, seconds=180, rate=100)
    assert reg.aliases() == {CHAMPION: better, PREVIOUS_CHAMPION: old}
    _one_decision(reg, "ab", "PROMOTE", "airflow:evaluate_ab", since)
    time.sleep(2)
    posts = slack_sink.take("mlstack")
    assert len(posts) == 1 and "promoted" in posts[0]["text"]


def test_guard_champion_dag_rolls_back_a_degraded_champion_with_one_slack_message(stack, native, api, contract,
                                                                                  slack_sink, rows):
    reg = registry(stack)
    champion, previous = reg.alias_version(CHAMPION), reg.alias_version(PREVIOUS_CHAMPION)
    assert previous is not None, "runs after the promotion test"
    wait_serving(native, "A", champion)
    write_fault(native.fault_file("A"), bias=80_000.0)
    since = _last_event_id(reg)
    slack_sink.take()
    try:
        _decide_through_airflow(api, native, rows, contract, "guard_champion",
                                lambda: reg.alias_version(CHAMPION) != champion, seconds=120, rate=80)
    finally:
        write_fault(native.fault_file("A"))
        native.set_ab_weight(10)
    assert reg.aliases() == {CHAMPION: previous}
    decision = _one_decision(reg, "guard", "ROLLBACK", "airflow:guard_champion", since)
    assert "mse" in decision["reason"]
    time.sleep(2)
    posts = slack_sink.take("mlstack")
    assert len(posts) == 1 and "rolled back" in posts[0]["text"]
