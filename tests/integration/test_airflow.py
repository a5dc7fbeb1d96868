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
from tests.integration.helpers import registry, tiny_version, versions
from tests.scenario import act_through_airflow

ROOT = Path(__file__).resolve().parents[2]


DAGS = {"ab": "evaluate_ab", "guard": "guard_champion"}  # which DAG makes each kind of decision

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


def _act_through_airflow(api, native, reg, sink, rows, contract, dag_id: str, decided, **kwargs) -> int:
    """act_through_airflow; return the last audit event id before, for `_one_decision_and_message`."""
    since = _last_event_id(reg)
    sink.take()
    act_through_airflow(api, native, rows, contract, dag_id, decided, **kwargs)
    return since


def _one_decision_and_message(reg, sink, kind: str, action: str, since_id: int, words: str) -> tuple[dict, dict]:
    """The one audited decision of `action` since `since_id`, made by its DAG, that `audit explain`
    reproduces (chain verified), and the one Slack message the stack sent about it."""
    from mlstack.rollout.audit import explain

    events = [e for e in reg.events.recent(reg.model_name, limit=2000, actions=(f"judge_{kind}",))
              if e["id"] > since_id and e["details"]["decision"]["action"] == action]
    assert len(events) == 1, [(e["id"], e["actor"]) for e in events]  # acted once, though ticks kept coming
    assert events[0]["actor"] == f"airflow:{DAGS[kind]}"
    assert explain(reg.events.engine, events[0]["id"]).reproduced
    assert reg.events.verify().ok
    time.sleep(2)
    posts = sink.take("mlstack")  # Alertmanager's alerts share the webhook; count the stack's own messages
    assert len(posts) == 1 and words in posts[0]["text"], posts
    return events[0], posts[0]


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
    native.wait_serving("B", bad)
    since = _act_through_airflow(api, native, reg, slack_sink, rows, contract, "evaluate_ab",
                                 lambda: reg.alias_version(CHALLENGER) != bad, seconds=150, rate=80,
                                 fault=("B", {"error_rate": 0.3}))
    assert reg.alias_version(CHALLENGER) is None and reg.alias_version(CHAMPION) == champion
    decision, post = _one_decision_and_message(reg, slack_sink, "ab", "RETIRE", since, "retired")
    assert decision["details"]["aliases"][CHALLENGER] == bad and "error_rate" in decision["reason"]
    assert post["blocks"][0]["type"] == "header"


def test_evaluate_ab_dag_promotes_a_better_challenger_with_one_slack_message(stack, native, api, contract, housing,
                                                                             slack_sink, rows):
    reg = registry(stack)
    old = reg.alias_version(CHAMPION)
    _, better = tiny_version(stack, contract, housing.sample(8000, random_state=2), "house-price",
                             family="hist_gradient_boosting", holdout=rows)
    move_alias(reg, CHALLENGER, better, actor="test", reason="a better challenger for the promotion test")
    native.set_ab_weight(50)
    native.wait_serving("B", better)
    since = _act_through_airflow(api, native, reg, slack_sink, rows, contract, "evaluate_ab",
                                 lambda: reg.alias_version(CHALLENGER) != better, seconds=180, rate=100)
    assert reg.aliases() == {CHAMPION: better, PREVIOUS_CHAMPION: old}
    _one_decision_and_message(reg, slack_sink, "ab", "PROMOTE", since, "promoted")


def test_guard_champion_dag_rolls_back_a_degraded_champion_with_one_slack_message(stack, native, api, contract,
                                                                                  slack_sink, rows):
    reg = registry(stack)
    champion, previous = reg.alias_version(CHAMPION), reg.alias_version(PREVIOUS_CHAMPION)
    assert previous is not None, "runs after the promotion test"
    native.wait_serving("A", champion)
    try:
        since = _act_through_airflow(api, native, reg, slack_sink, rows, contract, "guard_champion",
                                     lambda: reg.alias_version(CHAMPION) != champion, seconds=120, rate=80,
                                     fault=("A", {"bias": 80_000.0}))
    finally:
        native.set_ab_weight(10)
    assert reg.aliases() == {CHAMPION: previous}
    decision, _ = _one_decision_and_message(reg, slack_sink, "guard", "ROLLBACK", since, "rolled back")
    assert "mse" in decision["reason"]


@pytest.mark.faults
def test_a_degradation_while_the_scheduler_is_down_is_rolled_back_once_when_it_returns(stack, native, api, contract,
                                                                                      housing, slack_sink, rows):
    """The scheduler is stopped while the champion degrades: nothing acts; when it returns, the
    scheduled guard_champion rolls back once, and the next scheduled run does not do it again."""
    from mlstack.registry.policy import set_champion

    reg = registry(stack)
    good = reg.alias_version(CHAMPION)
    _, new = tiny_version(stack, contract, housing.sample(8000, random_state=3), "house-price", holdout=rows)
    set_champion(reg, new, actor="test", reason="a champion to degrade while the scheduler is down", metrics={})
    native.wait_serving("A", new)
    since = _last_event_id(reg)
    slack_sink.take()
    api.wait_parsed("guard_champion")
    sim = Simulator(native.settings.WEB_PORT, rows, contract, rate=80, threads=6, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(240,), daemon=True)
    native.ctl("stop", "airflow-scheduler")
    write_fault(native.fault_file("A"), bias=80_000.0)
    api.set_paused("guard_champion", False)
    try:
        runner.start()
        time.sleep(45)  # a degraded champion, evidence piling up, nobody to act on it
        assert reg.alias_version(CHAMPION) == new
        returned = time.monotonic()
        native.ctl("start", "airflow-scheduler")
        deadline = returned + 150
        while time.monotonic() < deadline and reg.alias_version(CHAMPION) == new:
            time.sleep(2)
        took = time.monotonic() - returned
        write_fault(native.fault_file("A"))
        assert reg.alias_version(CHAMPION) == good, f"no rollback {took:.0f}s after the scheduler returned"
        rolled_back = {r["dag_run_id"] for r in api.runs("guard_champion")}
        deadline = time.monotonic() + 100  # the next scheduled run (every minute) must find nothing to undo
        while time.monotonic() < deadline:
            later = [r for r in api.runs("guard_champion") if r["dag_run_id"] not in rolled_back
                     and r["state"] in ("success", "failed")]
            if later:
                break
            time.sleep(3)
        assert later and later[0]["state"] == "success", later
    finally:
        api.set_paused("guard_champion", True)
        write_fault(native.fault_file("A"))
        native.ctl("start", "airflow-scheduler", check=False)
        sim.stop()
        runner.join(timeout=30)
    print(f"scheduler down 45 s: rolled back {took:.0f}s after it returned; next run {later[0]['dag_run_id']}")
    assert reg.alias_version(CHAMPION) == good
    _one_decision_and_message(reg, slack_sink, "guard", "ROLLBACK", since, "rolled back")
