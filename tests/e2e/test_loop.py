"""The loop, end to end, in both modes (native and Compose) through one interface (mlstack.deployment).

One scenario, in order: a prediction and its feedback through nginx → a better challenger promoted
by evaluate_ab run by the scheduler → a degraded champion rolled back by guard_champion → exactly
one Slack message each in the stack's own Slack sink → a drift alert in the sink → the audit chain
verifies → a slot restarted under traffic fails no request → `down` and `up` keep the registry,
the audit trail and the predictions → a backup restores. The same tests run against each mode.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlstack.airflow_api import AirflowApi
from mlstack.contracts import get_contract
from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from mlstack.simulator import Simulator, drifted, holdout_rows
from tests.scenario import act_through_airflow

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------------

def run_cli(stack, *args: str, extra: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m mlstack ...` on the host, reaching the stack as a user's shell would."""
    import os

    env = {**os.environ, **stack.client_env(), **(extra or {})}
    return subprocess.run([sys.executable, "-m", "mlstack", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def registry(stack):
    from mlflow.tracking import MlflowClient

    from mlstack.db.engine import create_engine
    from mlstack.db.events import EventStore
    from mlstack.registry.aliases import Registry

    from dotenv import dotenv_values

    env = stack.client_env()
    key = dotenv_values(env["MLSTACK_ENV_FILE"]).get("AUDIT_SIGNING_KEY")  # archived ticks: gaps are signed
    return Registry(MlflowClient(env["MLFLOW_TRACKING_URI"]), "house-price",
                    EventStore(create_engine(env["APP_DATABASE_URL"]), key.encode() if key else None))


def sink_messages(stack) -> list[dict]:
    with urllib.request.urlopen(f"{stack.slack_sink_url}/messages.json", timeout=10) as resp:
        return [m["view"] for m in json.loads(resp.read())]


def post(stack, path: str, body: dict, user: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{stack._web_url()}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-User-Id": user})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def count(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def contract():
    return get_contract("california_housing")


@pytest.fixture(scope="module")
def rows(contract):
    return holdout_rows(ROOT / "data" / "housing.csv", contract)


@pytest.fixture(scope="module")
def api(deployment):
    return AirflowApi.from_stack(deployment.settings)


def one_message(stack, words: str, before: int) -> dict:
    time.sleep(2)
    new = [m for m in sink_messages(stack)[before:] if m["source"] == "mlstack"]
    assert len(new) == 1 and words in (new[0]["title"] + new[0]["body"]).lower(), new
    return new[0]


# -- the scenario ----------------------------------------------------------------------------------

def test_every_service_is_healthy(deployment):
    health = deployment.health()
    assert health and all(state in ("healthy", "completed") for state in health.values()), health
    if deployment.mode == "compose" and "grafana" not in health:  # its image could not be pulled here
        assert "could not be pulled" in deployment.console.export_text(clear=False)


def _docker_time(text):
    """Docker's RFC 3339 times carry nanoseconds with trailing zeros dropped ("17.09895Z") and a zone that
    may be "Z" or an offset; Python's parser takes at most microseconds."""
    from datetime import datetime

    match = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    whole, fraction, zone = match.groups()
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6].ljust(6, '0')}"
                                  f"{'+00:00' if zone == 'Z' else zone}")


def test_health_checks_are_cheap(deployment):
    """Each Compose health check is one HTTP request (or pg_isready): per container, the typical check of its
    log takes well under a second or two. The `airflow jobs check` they replaced took 8-16 s every time; a
    single check may still wait on a service starved of CPU while a 2-core machine starts the stack, so the
    median is judged, not the slowest."""
    if deployment.mode == "native":
        pytest.skip("native mode's supervisor checks health from one process, without per-check processes")
    from statistics import median

    ids = deployment.compose("ps", "--quiet").stdout.split()
    typical = {}
    for state in json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                           check=True).stdout):
        took = [(_docker_time(entry["End"]) - _docker_time(entry["Start"])).total_seconds()
                for entry in (state["State"].get("Health") or {}).get("Log", [])]
        if took:
            typical[state["Name"]] = median(took)
    assert len(typical) >= 10, typical  # every long-running service has a health check
    slow = {name: seconds for name, seconds in typical.items() if seconds > 2.0}
    assert not slow, slow


def test_compose_runs_the_versions_native_mode_tests(deployment):
    """PostgreSQL, nginx, Prometheus, Alertmanager, the Pushgateway and the exporters: Debian's, as natively."""
    if deployment.mode == "native":
        pytest.skip("compares the Compose images with this machine's binaries")
    probes = {"prometheus": ["prometheus", "--version"], "alertmanager": ["prometheus-alertmanager", "--version"],
              "pushgateway": ["prometheus-pushgateway", "--version"],
              "blackbox-exporter": ["prometheus-blackbox-exporter", "--version"],
              "nginx": ["nginx", "-v"], "postgres": ["postgres", "--version"]}
    import re

    for service, cmd in probes.items():
        inside = deployment.compose("exec", "-T", service, *cmd, check=False)
        binary = cmd[0] if service != "postgres" else "/usr/lib/postgresql/15/bin/postgres"
        here = subprocess.run([f"/usr/{'sbin' if service == 'nginx' else 'bin'}/{binary}" if "/" not in binary
                               else binary, *cmd[1:]], capture_output=True, text=True)
        # the release native mode tests: major.minor (PostgreSQL: the major; its minor is Debian's security update)
        digits = 1 if service == "postgres" else 2
        version = lambda text: re.search(r"\d+(\.\d+)*", text).group(0).split(".")[:digits]  # noqa: E731
        assert version(inside.stdout + inside.stderr) == version(here.stdout + here.stderr), \
            (service, inside.stdout + inside.stderr, here.stdout + here.stderr)


def imported_modules() -> list[str]:
    """Every module the package and the DAGs import, at a file's top or inside a function (lazily)."""
    import ast

    names: set[str] = set()
    for path in [*(ROOT / "mlstack").rglob("*.py"), *(ROOT / "airflow" / "dags").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n != "__future__")


def test_everything_the_package_imports_imports_where_its_services_run(deployment):
    """A module imported only inside a task (prometheus_client by guard_champion, Evidently by monitor_drift)
    fails at run time, not at start: import every one where the services run (the venv, the Python image)."""
    code = ("import importlib, json, sys\nfailed = {}\nfor name in sys.argv[1:]:\n    try:\n"
            "        importlib.import_module(name)\n    except Exception as exc:\n"
            "        failed[name] = f'{type(exc).__name__}: {exc}'\nprint(json.dumps(failed))")
    modules = imported_modules()
    assert {"prometheus_client", "evidently", "airflow.sdk"} <= set(modules)
    if deployment.mode == "compose":
        result = deployment.compose("exec", "-T", "airflow-scheduler", "python", "-c", code, *modules, check=False)
    else:
        result = subprocess.run([sys.executable, "-c", code, *modules], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_a_prediction_and_its_feedback_through_nginx(deployment, contract):
    status, body = post(deployment, "/api/predict", contract.example(), "e2e-user-1")
    assert status == 200 and body["variant"] == "A" and body["model"]["alias"] == CHAMPION, body
    status, answer = post(deployment, "/api/feedback", {"prediction_id": body["prediction_id"], "actual": 250_000.0},
                          "e2e-user-1")
    assert status == 202, answer


def _send(url: str, headers: dict[str, str], body: bytes, over_limit: bool) -> tuple[int, str, bytes]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=body, headers={"Connection": "close", **headers})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    except (ConnectionResetError, BrokenPipeError):
        if not over_limit:
            raise
        return 413, "", b"(body) must be at most the limit"  # the server answered early and stopped reading
    finally:
        conn.close()


def test_hostile_bodies_get_a_4xx_naming_the_rule_through_nginx_and_direct(deployment):
    """Every hostile generator (tests/hostile.py) against a slot, the web form and the Slack sink: no 5xx."""
    from tests import hostile

    from mlstack.frontend.app import MAX_FORM_BYTES
    from mlstack.settings import BackendSettings
    from mlstack.slack_sink import MAX_BODY

    web, slot = deployment._web_url(), deployment._slot_urls()["SLOT_A_URL"]
    slot_limit = BackendSettings.model_fields["MAX_BODY_BYTES"].default  # nginx's NGINX_MAX_BODY is the same 16 MiB
    targets = [(f"{web}/api", hostile.SLOT, slot_limit), (slot, hostile.SLOT, slot_limit),
               (web, hostile.FRONTEND, MAX_FORM_BYTES), (deployment.slack_sink_url, hostile.SINK, MAX_BODY)]
    problems, sent, statuses = [], 0, {}
    started = time.time()
    for base, endpoints, max_body in targets:
        for name, path, headers, body in hostile.cases(endpoints, max_body):
            status, content_type, answer = _send(f"{base}{path}", {"X-User-Id": "hostile", **headers}, body,
                                                 over_limit=len(body) > max_body)
            sent += 1
            statuses[status] = statuses.get(status, 0) + 1
            if problem := hostile.problem(status, content_type, answer):
                problems.append(f"{base}{path} {name}: {problem}")
            time.sleep(0.005)  # well under nginx's per-client rate limit: the limiter is not under test here
    time.sleep(2)  # the slots flush their prediction logs every PREDICTION_FLUSH_SECONDS
    user_hash = hashlib.sha256(b"hostile").hexdigest()[:32]  # the few bodies that were valid: not the judge's traffic
    with sa.create_engine(deployment.client_env()["APP_DATABASE_URL"]).begin() as conn:
        conn.execute(sa.text("DELETE FROM predictions WHERE user_hash = :u"), {"u": user_hash})
    print(f"hostile bodies: {sent} sent in {time.time() - started:.0f} s; by status {dict(sorted(statuses.items()))}")
    assert problems == []
    assert sent > 400 and not any(code >= 500 for code in statuses)


def test_a_tick_before_any_model_holds_quietly(deployment):
    """The minute DAGs' task with no champion registered (a model name nothing registered): HOLD, no failure."""
    code = "import json; from mlstack.rollout.actions import dag_tick; print(json.dumps(dag_tick('guard_champion')))"
    import os

    env = {**os.environ, **deployment.client_env(), "MODEL_NAME": "no-model-yet", "PUSHGATEWAY_URL": ""}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    tick = json.loads(result.stdout.strip().splitlines()[-1])
    assert tick == {"action": "HOLD", "reason": "no model yet", "champion": None}


def test_a_better_challenger_is_promoted_by_evaluate_ab(deployment, api, rows, contract):
    reg = registry(deployment)
    old = reg.alias_version(CHAMPION)
    trained = run_cli(deployment, "train", "--json", "--quiet",
                      extra={"TRAIN_FAMILIES": "hist_gradient_boosting", "SEARCH_ITERATIONS": "0"})
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    better = str(result["version"])
    assert reg.alias_version(CHALLENGER) == better, result
    deployment.set_ab_weight(50)
    deployment.wait_serving("B", better, timeout=60)
    before = len(sink_messages(deployment))
    act_through_airflow(api, deployment, rows, contract, "evaluate_ab",
                        lambda: reg.alias_version(CHAMPION) == better, seconds=240, rate=100)
    assert reg.aliases() == {CHAMPION: better, PREVIOUS_CHAMPION: old}
    events = [e for e in reg.events.recent(reg.model_name, limit=500, actions=("judge_ab",))
              if e["details"]["decision"]["action"] == "PROMOTE"]
    assert len(events) == 1 and events[0]["actor"] == "airflow:evaluate_ab", [(e["id"], e["actor"]) for e in events]
    one_message(deployment, "promoted", before)


def _tick(deployment, dag_id: str) -> dict:
    """One judge tick as the DAG's task runs it, from this machine, against the stack's databases and registry."""
    import os

    code = f"import json; from mlstack.rollout.actions import dag_tick; print(json.dumps(dag_tick({dag_id!r})))"
    env = {**os.environ, **deployment.client_env()}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_one_user_with_500_false_labels_causes_no_rollback_and_no_promotion(deployment, rows, contract):
    """Label poisoning: beside real users' labels, one person reports the highest price for 500 of their predictions."""
    reg = registry(deployment)
    before = reg.aliases()
    report = Simulator(deployment.settings.WEB_PORT, rows, contract, rate=20, threads=2, feedback_delay=0.3,
                       seed=7).run(20)
    assert report.feedback_sent >= 300, report.as_dict()
    records = [{k: (None if v != v else v) for k, v in r.items()}  # NaN (v != v) is null in JSON
               for r in rows[contract.feature_names].head(500).astype(object).to_dict("records")]
    poisoned = 0
    for record in records:
        status, body = post(deployment, "/api/predict", record, "poisoner")
        assert status == 200, body
        status, _ = post(deployment, "/api/feedback", {"prediction_id": body["prediction_id"],
                                                        "actual": contract.target.maximum}, "poisoner")
        poisoned += status == 202
    assert poisoned == 500
    time.sleep(2)  # the slots' prediction logs flush every PREDICTION_FLUSH_SECONDS
    guard, ab = _tick(deployment, "guard_champion"), _tick(deployment, "evaluate_ab")
    assert guard["action"] == "KEEP" and ab["action"] in ("HOLD", "KEEP"), (guard, ab)
    assert "reported labels not counted" in guard["reason"], guard
    assert reg.aliases() == before


def test_a_degraded_champion_is_rolled_back_by_guard_champion(deployment, api, rows, contract):
    reg = registry(deployment)
    champion, previous = reg.alias_version(CHAMPION), reg.alias_version(PREVIOUS_CHAMPION)
    assert previous is not None, "runs after the promotion"
    deployment.wait_serving("A", champion, timeout=60)
    before = len(sink_messages(deployment))
    try:
        act_through_airflow(api, deployment, rows, contract, "guard_champion",
                            lambda: reg.alias_version(CHAMPION) != champion, seconds=180, rate=80,
                            fault=("A", {"bias": 80_000.0}))
    finally:
        deployment.set_ab_weight(10)
    assert reg.aliases() == {CHAMPION: previous}
    events = [e for e in reg.events.recent(reg.model_name, limit=500, actions=("judge_guard",))
              if e["details"]["decision"]["action"] == "ROLLBACK"]
    assert len(events) == 1 and events[0]["actor"] == "airflow:guard_champion"
    one_message(deployment, "rolled back", before)


def test_drift_reaches_the_slack_sink_as_an_alert(deployment, api, contract):
    rows = drifted(holdout_rows(ROOT / "data" / "housing.csv", contract), contract)
    report = Simulator(deployment.settings.WEB_PORT, rows, contract, rate=150, threads=8, feedback_delay=0.3).run(40)
    assert report.answered.get(200, 0) >= 4000, report.as_dict()
    api.wait_parsed("monitor_drift")
    api.set_paused("monitor_drift", False)  # Airflow runs nothing of a paused DAG, a triggered run included
    try:
        run = api.run("monitor_drift", timeout=300)
    finally:
        api.set_paused("monitor_drift", True)
    assert run["state"] == "success", run
    assert api.xcom("monitor_drift", run["dag_run_id"], "check")["drifted"] is True
    ended, alert = time.monotonic(), None
    while alert is None and time.monotonic() - ended < 120:
        alert = next((m for m in sink_messages(deployment) if m["source"] == "alertmanager"
                      and m["title"].startswith("[FIRING") and "Input drift" in m["title"]), None)
        time.sleep(2)
    assert alert is not None, [m["title"] for m in sink_messages(deployment)]
    print(f"[{deployment.mode}] drift alert in the sink {time.monotonic() - ended:.0f} s after monitor_drift ended")


def test_archive_history_archives_what_expired_to_the_bucket_and_keeps_the_rest(deployment, api):
    """Predictions, labels and quiet ticks 40 days old → the archive_history DAG → Parquet by day, deleted."""
    from datetime import UTC, datetime, timedelta

    from mlstack.db.events import ModelEvent
    from mlstack.db.schema import feedback, predictions
    from mlstack.storage import list_objects

    url = deployment.client_env()["APP_DATABASE_URL"]
    old = datetime.now(UTC) - timedelta(days=40)
    store = registry(deployment).events
    row = {"variant": "A", "model_name": "house-price", "model_version": "1", "model_alias": "champion",
           "user_hash": "u", "features": {"median_income": 3.0}, "prediction": 1.0e5, "latency_ms": 1.0}
    with store.engine.begin() as conn:
        conn.execute(predictions.insert(), [
            {**row, "prediction_id": f"e2e-old-{i:02d}", "created_at": old + timedelta(minutes=i)} for i in range(20)]
            + [{**row, "prediction_id": f"e2e-new-{i}", "created_at": datetime.now(UTC) - timedelta(hours=i)}
               for i in range(3)])
        conn.execute(feedback.insert(), [{"prediction_id": f"e2e-old-{i:02d}", "actual": 9.0e4,
                                          "received_at": old + timedelta(minutes=i + 1)} for i in range(0, 20, 4)])
    for _ in range(3):
        store.append(ModelEvent("e2e", "judge_guard", "house-price", "old quiet tick",
                                details={"decision": {"action": "KEEP"}}, event_time=old))
    # a tick of today after them, as in real life (the chain's newest row is never archived)
    store.append(ModelEvent("e2e", "judge_guard", "house-price", "recent quiet tick",
                            details={"decision": {"action": "KEEP"}}))
    api.wait_parsed("archive_history")
    api.set_paused("archive_history", False)
    try:
        run = api.run("archive_history", timeout=300)
    finally:
        api.set_paused("archive_history", True)
    assert run["state"] == "success", run
    # unpausing starts the scheduled run first (one run at a time): the old rows may be that run's work
    report = api.xcom("archive_history", run["dag_run_id"], "archive")
    print(f"[{deployment.mode}] archive_history: "
          f"{ {k: (v['rows'], len(v['files'])) for k, v in report['tables'].items()} } in {report['seconds']} s")
    assert count(url, "SELECT count(*) FROM predictions WHERE prediction_id LIKE 'e2e-old-%'") == 0
    assert count(url, "SELECT count(*) FROM feedback WHERE prediction_id LIKE 'e2e-old-%'") == 0
    assert count(url, "SELECT count(*) FROM predictions WHERE prediction_id LIKE 'e2e-new-%'") == 3
    # the judges keep ticking meanwhile: count the test's own old ticks, not the table
    assert count(url, "SELECT count(*) FROM model_events WHERE reason = 'old quiet tick'") == 0
    assert count(url, "SELECT count(*) FROM model_events WHERE reason = 'recent quiet tick'") == 1
    assert report["chain_ok"] is True
    day = f"day={old:%Y-%m-%d}"
    keys = list_objects(deployment.settings, "archive/")
    assert any(k.startswith(f"archive/predictions/{day}/") for k in keys), keys
    assert any(k.startswith(f"archive/feedback/{day}/") for k in keys), keys
    assert any(k.startswith(f"archive/model_events/{day}/") for k in keys), keys


def test_the_audit_chain_verifies(deployment):
    result = run_cli(deployment, "audit", "verify")
    assert result.returncode == 0 and "audit chain verified" in result.stdout, result.stdout + result.stderr


def test_a_slot_restarted_under_traffic_fails_no_request(deployment, rows, contract):
    sim = Simulator(deployment.settings.WEB_PORT, rows, contract, rate=40, threads=4, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(120,), daemon=True)
    runner.start()
    try:
        time.sleep(3)
        started = time.monotonic()
        deployment.restart("backend-b")
        took = time.monotonic() - started
        time.sleep(3)
    finally:
        sim.stop()
        runner.join(timeout=30)
    report = sim.report
    print(f"[{deployment.mode}] backend-b restarted in {took:.0f} s under traffic: {report.as_dict()}")
    assert report.sent > 100 and report.answered.get(200, 0) == report.sent, report.as_dict()
    assert report.feedback_failed == 0, report.as_dict()


def test_frontend_and_nginx_restarted_under_traffic_fail_no_request(deployment, rows, contract):
    """One of each runs: they restart in place (the master keeps the socket, its workers are replaced)."""
    sim = Simulator(deployment.settings.WEB_PORT, rows, contract, rate=30, threads=3, feedback_delay=0.5)
    pages: dict[str, int] = {}
    stop = threading.Event()

    def browse() -> None:  # a person on the form page, through nginx to the frontend
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{deployment.settings.WEB_PORT}/", timeout=10) as r:
                    key = str(r.status)
            except urllib.error.HTTPError as exc:
                key = str(exc.code)
            except OSError as exc:
                key = type(exc).__name__
            pages[key] = pages.get(key, 0) + 1
            time.sleep(0.05)

    threads = [threading.Thread(target=sim.run, args=(120,), daemon=True),
               *(threading.Thread(target=browse, daemon=True) for _ in range(2))]
    for t in threads:
        t.start()
    masters = {name: deployment.main_pid(name) for name in ("frontend", "nginx")}
    took = {}
    try:
        time.sleep(3)
        for name in masters:
            started = time.monotonic()
            deployment.restart(name)  # raises unless every old worker was replaced
            took[name] = round(time.monotonic() - started, 1)
            time.sleep(2)
    finally:
        stop.set()
        sim.stop()
        for t in threads:
            t.join(timeout=30)
    report = sim.report
    print(f"[{deployment.mode}] restarted in place in {took} s under traffic: pages {pages}, api {report.as_dict()}")
    assert {name: deployment.main_pid(name) for name in masters} == masters  # the sockets never closed
    assert set(pages) == {"200"} and pages["200"] > 50, pages
    assert report.sent > 100 and report.answered.get(200, 0) == report.sent, report.as_dict()
    assert report.feedback_failed == 0, report.as_dict()


def test_pushgateway_keeps_its_metrics_across_a_restart(deployment):
    """Its store persists (natively a file under var/, in Compose a named volume its user can write)."""
    url = f"http://127.0.0.1:{deployment.settings.PUSHGATEWAY_PORT}"
    body = b"# TYPE mlstack_e2e_marker gauge\nmlstack_e2e_marker 42\n"
    urllib.request.urlopen(urllib.request.Request(f"{url}/metrics/job/e2e", data=body, method="PUT"), timeout=10)
    time.sleep(32)  # --persistence.interval=30s
    deployment.restart("pushgateway")
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        assert "mlstack_e2e_marker" in resp.read().decode()


def test_nothing_paged_that_the_scenario_did_not_call_for(deployment):
    """Start-up, the restarts above (through the stack's commands) and the traffic page only for what they caused."""
    import re

    if not deployment.settings.MONITORING_ENABLED:
        pytest.skip("monitoring is off")
    names: set[str] = set()
    for message in sink_messages(deployment):
        if message["source"] == "alertmanager":
            names |= set(re.findall(r"(Mlstack\w+) \((?:critical|warning|info)\)", message["body"]))
    assert names <= {"MlstackDataDrift", "MlstackRollback"}, names
    assert "MlstackDataDrift" in names  # the sink does receive alerts: the check above can fail


def test_a_short_chaos_run_loses_nothing_and_every_service_comes_back(deployment, rows, contract):
    """`make chaos` in small (after the no-page check: a crash is a real outage and may page)."""
    from mlstack.chaos import markdown, soak

    seed = 1 if deployment.mode == "compose" else 0
    result = soak(deployment, rows, contract, minutes=2.5, every=25, seed=seed)
    print(markdown(result, mode=deployment.mode, minutes=2.5, every=25, seed=seed))
    assert len(result.kills) == 6 and all(k.recovered is not None for k in result.kills), result.kills
    assert result.predictions_accepted > 500 and result.predictions_lost == [], result.predictions_lost[:10]
    assert result.labels_accepted > 300 and result.labels_lost == [], result.labels_lost[:10]
    assert result.chain_verified, result.chain_output
    assert result.alias_moves == [], result.alias_moves


def test_down_and_up_keep_registry_audit_and_predictions(deployment):
    reg = registry(deployment)
    app = deployment.client_env()["APP_DATABASE_URL"]
    aliases, versions = reg.aliases(), len(reg.client.search_model_versions("name='house-price'"))
    events = count(app, "SELECT count(*) FROM model_events")
    predictions = count(app, "SELECT count(*) FROM predictions")
    assert predictions > 0 and events > 0
    deployment.down()
    deployment.up()
    reg = registry(deployment)
    assert reg.aliases() == aliases
    assert len(reg.client.search_model_versions("name='house-price'")) == versions
    assert count(app, "SELECT count(*) FROM model_events") >= events  # guard ticks may add, nothing is lost
    assert count(app, "SELECT count(*) FROM predictions") >= predictions
    assert reg.events.verify().ok


def test_a_backup_restores_into_fresh_databases_and_a_fresh_bucket(deployment, scratch_database, tmp_path):
    result = run_cli(deployment, "backup", "create", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["bucket"]["objects"] > 0 and {"mlflow", "app"} <= set(manifest["databases"])
    from mlstack.backup import restore
    from mlstack.settings import StackSettings, load

    settings = load(StackSettings).model_copy(update={k: v for k, v in deployment.client_env().items()
                                                      if k in StackSettings.model_fields})
    app, mlflow_db = scratch_database("restored_app"), scratch_database("restored_mlflow")
    done = restore(settings, tmp_path / "backup", databases=("app", "mlflow"),
                   overrides={"app": app, "mlflow": mlflow_db}, bucket_name="restored-bucket")
    assert done["databases"] == ["mlflow", "app"] and done["bucket"]["objects"] == manifest["bucket"]["objects"]
    assert count(mlflow_db, "SELECT count(*) FROM model_versions") == \
        count(settings.MLFLOW_DATABASE_URL, "SELECT count(*) FROM model_versions") > 0
    assert count(app, "SELECT count(*) FROM model_events") > 0
