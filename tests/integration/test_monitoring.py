"""Prometheus, Alertmanager and the Pushgateway on the real native stack.

Runs after test_airflow.py (file order), so the DAG runs there have pushed their results.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest

from mlstack.airflow_api import AirflowApi
from mlstack.registry.aliases import CHALLENGER
from mlstack.settings import TrainingSettings
from mlstack.simulator import Simulator, drifted, holdout_rows
from tests.integration.helpers import registry, versions

pytestmark = pytest.mark.usefixtures("registry_restored")


def query(native, expr: str) -> list[dict]:
    """Run an instant PromQL query against the stack's Prometheus; return the result vector."""
    url = (f"http://127.0.0.1:{native.settings.PROMETHEUS_PORT}/api/v1/query?"
           + urllib.parse.urlencode({"query": expr}))
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def served_versions(native) -> dict[str, str]:
    """slot → the model version it serves now (its /model-info)."""
    out = {}
    for slot, port in (("A", native.settings.BACKEND_A_PORT), ("B", native.settings.BACKEND_B_PORT)):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/model-info", timeout=5) as resp:
            out[slot] = json.loads(resp.read())["model"]["version"]
    return out


def wait_for(native, expr: str, timeout: float = 60, check=lambda r: bool(r)) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(native, expr)
        if check(result) or time.monotonic() > deadline:
            return result
        time.sleep(2)


@pytest.fixture(scope="module")
def traffic(native, stack, contract):
    """Two minutes of simulated users with feedback in the background while this module runs."""
    s = stack.settings(TrainingSettings)
    rows = holdout_rows(s.DATA_PATH, contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION)
    sim = Simulator(native.settings.WEB_PORT, rows, contract, rate=20, threads=2, feedback_delay=0.5)
    thread = threading.Thread(target=sim.run, args=(600,), daemon=True)
    thread.start()
    yield sim
    sim.stop()
    thread.join(timeout=30)


def test_prometheus_scrapes_every_target(native):
    url = f"http://127.0.0.1:{native.settings.PROMETHEUS_PORT}/api/v1/targets"
    deadline = time.monotonic() + 60
    while True:
        active = json.loads(urllib.request.urlopen(url, timeout=10).read())["data"]["activeTargets"]
        down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in active if t["health"] != "up"]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not down, down
    jobs = {t["labels"]["job"] for t in active}
    assert {"slots", "nginx", "postgres", "health", "pushgateway", "alertmanager", "prometheus"} <= jobs
    probes = wait_for(native, 'probe_success{job="health"}', check=lambda r: len(r) == 4 and
                      all(float(x["value"][1]) == 1 for x in r))
    assert {p["metric"]["service"]: float(p["value"][1]) for p in probes} == \
        {"mlflow": 1, "frontend": 1, "s3": 1, "airflow": 1}
    assert float(query(native, "pg_up")[0]["value"][1]) == 1
    assert float(query(native, "nginx_up")[0]["value"][1]) == 1


def test_slot_metrics_per_version_and_live_accuracy_reach_prometheus(native, traffic):
    served = wait_for(native, "sum by (variant, model_version) (mlstack_predictions_total)",
                      check=lambda r: {x["metric"]["variant"] for x in r} == {"A", "B"})
    assert {r["metric"]["variant"] for r in served} == {"A", "B"}
    assert all(r["metric"]["model_version"] for r in served)
    # the versions the slots serve now: earlier tests may have left other versions' series (faults included)
    serving = {(slot, version) for slot, version in served_versions(native).items()}

    def current(result):
        return {(x["metric"]["variant"], x["metric"]["model_version"]): float(x["value"][1]) for x in result
                if (x["metric"]["variant"], x["metric"]["model_version"]) in serving}

    mae = current(wait_for(native, "variant_version:mlstack_live_mae:30m", timeout=60,
                           check=lambda r: len(current(r)) == len(serving)))
    assert set(mae) == serving and all(0 < value < 500_000 for value in mae.values()), (mae, serving)
    ratio = {r["metric"]["variant"]: float(r["value"][1])
             for r in wait_for(native, "variant:mlstack_predict_error_ratio:rate5m")}
    assert ratio["A"] == 0  # slot A was never put in an error fault: no errors reads 0, not "no data"
    assert wait_for(native, "variant:mlstack_predict_latency_seconds:p95_5m")
    assert wait_for(native, "nginx_connections_accepted")


def test_dag_results_reach_prometheus_through_the_pushgateway(native):
    """test_airflow.py ran the DAGs: their last success, the judge's ticks and the transitions are there."""
    success = wait_for(native, "mlstack_dag_last_success_timestamp_seconds")
    assert {r["metric"]["dag_id"] for r in success} >= {"evaluate_ab", "guard_champion", "train_model"}
    decisions = wait_for(native, 'mlstack_judge_decision{kind="ab"}')
    assert sum(float(r["value"][1]) for r in decisions) == 1  # one-hot: exactly one action is current
    transitions = {r["metric"]["transition"]: float(r["value"][1])
                   for r in wait_for(native, "mlstack_transitions_total")}
    assert transitions["promotion"] >= 1 and transitions["rollback"] >= 1 and transitions["retirement"] >= 1
    assert wait_for(native, "mlstack_training_holdout_rmse")


@pytest.mark.faults
def test_a_dead_slot_is_one_slack_message_from_alertmanager(native, slack_sink, traffic):
    slack_sink.take()
    native.ctl("stop", "backend-b")
    try:
        deadline = time.monotonic() + 120
        posts: list[dict] = []
        while time.monotonic() < deadline:
            posts += slack_sink.take("alertmanager")
            if any("Slot B is down" in a["title"] for p in posts for a in p["attachments"]):
                break
            time.sleep(2)
        time.sleep(15)  # a second message for the same incident would come within group_interval
        posts += slack_sink.take("alertmanager")
    finally:
        native.ctl("start", "backend-b")
        native.wait_healthy({p.name: p for p in native.programs()}["backend-b"], 60)
    firing = [a for p in posts for a in p["attachments"]
              if a["title"].startswith("[FIRING") and "MlstackSlotDown" in a["text"]]
    assert len(firing) == 1, [a["title"] for p in posts for a in p["attachments"]]  # one incident, one message
    assert "Slot B is down" in firing[0]["title"]


def _finished_runs(api, dag_id: str) -> list[dict]:
    return [r for r in api.runs(dag_id) if r["state"] in ("success", "failed")]


def test_drift_alerts_in_slack_within_a_minute_and_retrains_a_challenger(native, stack, contract, slack_sink):
    """Simulated drift → monitor_drift (scheduler) → MlstackDataDrift in Slack → train_model → a new challenger."""
    api = AirflowApi.from_stack(native.settings)
    for dag_id in ("monitor_drift", "train_model"):
        api.wait_parsed(dag_id)
    reg = registry(stack)
    before = versions(stack)
    # Unpaused, each DAG first runs once for its last interval: let those finish on today's (undrifted) traffic.
    for dag_id in ("monitor_drift", "train_model"):
        api.set_paused(dag_id, False)
    try:
        for dag_id in ("monitor_drift", "train_model"):
            deadline = time.monotonic() + 300
            while not _finished_runs(api, dag_id) and time.monotonic() < deadline:
                time.sleep(3)
            runs = _finished_runs(api, dag_id)
            assert runs and runs[0]["state"] == "success", runs[:1]
        scheduled = api.xcom("monitor_drift", _finished_runs(api, "monitor_drift")[0]["dag_run_id"], "check")
        assert scheduled["drifted"] is False, scheduled["reason"]  # the earlier tests' traffic is no drift
        assert versions(stack) == before

        s = stack.settings(TrainingSettings)
        rows = drifted(holdout_rows(s.DATA_PATH, contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION), contract)
        sim = Simulator(native.settings.WEB_PORT, rows, contract, rate=150, threads=8, feedback_delay=0.3)
        report = sim.run(40)  # > drift.max_rows: the newest window is all drifted
        assert report.answered.get(200, 0) >= 5000 and report.feedback_sent >= 5000, report.as_dict()
        slack_sink.take()
        run = api.run("monitor_drift", timeout=300)
        ended = time.monotonic()
        assert run["state"] == "success", run
        result = api.xcom("monitor_drift", run["dag_run_id"], "check")
        assert result["drifted"] is True and result["data_path"], result
        assert "median_income" in result["reason"] and "housing_median_age" in result["reason"]

        alert = None
        while alert is None and time.monotonic() - ended < 90:
            for post in slack_sink.take():
                for a in post.get("attachments", []):
                    if a["title"].startswith("[FIRING") and "MlstackDataDrift" in a["text"]:
                        alert = (time.monotonic() - ended, a)
            time.sleep(1)
        assert alert is not None, "no drift alert reached Slack"
        print(f"drift alert in Slack {alert[0]:.1f} s after the monitor_drift run ended")
        reports = pathlib.Path(__file__).resolve().parents[2] / "reports"
        reports.mkdir(exist_ok=True)
        (reports / "drift-alert.txt").write_text(
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: simulated drift → monitor_drift ({result['reason']}) → "
            f"MlstackDataDrift in the Slack sink {alert[0]:.1f} s after the run ended (target < 60 s)\n")
        assert alert[0] < 60 and "Input drift" in alert[1]["title"]

        deadline = time.monotonic() + 420
        retrain = None
        while time.monotonic() < deadline:
            retrain = next((r for r in _finished_runs(api, "train_model")
                            if (r.get("conf") or {}).get("data_path") == result["data_path"]), None)
            if retrain:
                break
            time.sleep(3)
        assert retrain is not None and retrain["state"] == "success", retrain
        trained = api.xcom("train_model", retrain["dag_run_id"], "train_register")
        assert trained["skipped"] is False and versions(stack) == [*before, trained["version"]]
        assert trained["alias"] == CHALLENGER and reg.alias_version(CHALLENGER) == trained["version"], trained
    finally:
        for dag_id in ("monitor_drift", "train_model"):
            api.set_paused(dag_id, True)
    event = next(e for e in reg.events.recent(reg.model_name, limit=200, actions=("drift_check",)))
    assert event["details"]["result"]["detected"] is True and event["details"]["links"]["report"]
    assert reg.events.verify().ok
    page = urllib.request.urlopen(f"http://127.0.0.1:{native.settings.WEB_PORT}/status", timeout=15).read().decode()
    assert "Evidently report" in page and event["details"]["links"]["report"].replace("&", "&amp;") in page


def test_every_dashboard_panel_query_returns_data(native):
    """Grafana cannot run here: parse each provisioned dashboard and run every query against Prometheus."""
    folder = pathlib.Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
    empty = []
    checked = 0
    for path in sorted(folder.glob("*.json")):
        dashboard = json.loads(path.read_text())
        queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
        queries += [(f"annotation {a['name']}", a["expr"].split(" > ")[0]) for a in dashboard["annotations"]["list"]]
        for title, expr in queries:
            checked += 1
            if not wait_for(native, expr, timeout=30):
                empty.append(f"{path.name} · {title}: {expr}")
    print(f"{checked} dashboard queries checked")
    assert not empty, "queries without data:\n" + "\n".join(empty)
