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
import urllib.request
from pathlib import Path

import pytest

from mlstack.native.stack import Stack
from mlstack.registry.aliases import CHALLENGER, CHAMPION, move_alias
from mlstack.serving.faults import write_fault
from mlstack.settings import TrainingSettings
from mlstack.simulator import Simulator, holdout_rows
from tests.integration.helpers import registry, tiny_version, versions

ROOT = Path(__file__).resolve().parents[2]


class AirflowApi:
    def __init__(self, native: Stack) -> None:
        s = native.settings
        self.base = f"http://127.0.0.1:{s.AIRFLOW_PORT}"
        body = json.dumps({"username": s.AIRFLOW_ADMIN_USER,
                           "password": s.AIRFLOW_ADMIN_PASSWORD.get_secret_value()}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body, headers={"Content-Type": "application/json"})
        self.token = json.loads(urllib.request.urlopen(req, timeout=10).read())["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=15).read() or b"{}")

    def wait_parsed(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.call("GET", f"/api/v2/dags/{dag_id}")
                return
            except OSError:
                time.sleep(2)
        raise AssertionError(f"Airflow did not parse {dag_id} within {timeout}s")

    def run(self, dag_id: str, conf: dict | None = None, timeout: float = 180) -> dict:
        """Trigger a run and wait for it to finish; return the run."""
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        run_id = run["dag_run_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise AssertionError(f"{dag_id} run {run_id} did not finish within {timeout}s")

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> object:
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}/taskInstances/{task_id}"
                "/xcomEntries/return_value")
        return self.call("GET", path)["value"]


pytestmark = pytest.mark.usefixtures("registry_restored")


@pytest.fixture(scope="module")
def api(native):
    return AirflowApi(native)


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


def test_evaluate_ab_dag_retires_a_bad_challenger_with_one_slack_message(stack, native, api, contract, housing,
                                                                         slack_sink):
    reg = registry(stack)
    champion = reg.alias_version(CHAMPION)
    _, bad = tiny_version(stack, contract, housing.sample(3000, random_state=5), "house-price")
    move_alias(reg, CHALLENGER, bad, actor="test", reason="a challenger for the Airflow test")
    native.set_ab_weight(50)
    write_fault(native.fault_file("B"), error_rate=0.3)
    s = stack.settings(TrainingSettings)
    sim = Simulator(native.settings.WEB_PORT, holdout_rows(s.DATA_PATH, contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION),
                    contract, rate=80, threads=6, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(150,), daemon=True)
    api.wait_parsed("evaluate_ab")
    slack_sink.take()
    # Unpaused, the scheduler runs it every minute (and at once for the last interval); manual runs
    # are triggered in between. Whichever run has the evidence first retires the challenger.
    api.call("PATCH", "/api/v2/dags/evaluate_ab", {"is_paused": False})
    outcomes = []
    try:
        runner.start()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and reg.alias_version(CHALLENGER) == bad:
            time.sleep(3)
            run = api.run("evaluate_ab")
            assert run["state"] == "success", run
            outcomes.append(api.xcom("evaluate_ab", run["dag_run_id"], "evaluate"))
    finally:
        api.call("PATCH", "/api/v2/dags/evaluate_ab", {"is_paused": True})
        sim.stop()
        write_fault(native.fault_file("B"))
        native.set_ab_weight(10)
    print("evaluate_ab via Airflow (manual runs):", [o["action"] for o in outcomes])
    assert reg.alias_version(CHALLENGER) is None and reg.alias_version(CHAMPION) == champion
    decisions = [e for e in reg.events.recent(reg.model_name, limit=200)
                 if e["action"] == "judge_ab" and e["details"]["decision"]["action"] == "RETIRE"]
    assert len(decisions) == 1 and decisions[0]["actor"] == "airflow:evaluate_ab"
    assert decisions[0]["details"]["aliases"][CHALLENGER] == bad
    time.sleep(2)
    posts = slack_sink.take()
    assert len(posts) == 1 and "retired" in posts[0]["text"]
    recent = reg.events.recent(reg.model_name, limit=50)
    assert any(e["actor"] == "airflow:evaluate_ab" and e["action"] == "judge_ab" for e in recent)
    assert reg.events.verify().ok
