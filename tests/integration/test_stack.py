"""`make up` (python -m mlstack.native up): services, first champion, idempotence, status."""

import math

import mlflow
import pandas as pd

from mlstack.settings import StackSettings
from mlstack.storage import list_objects
from tests.integration.helpers import registry, versions


def test_up_brings_up_services_and_a_first_champion(stack):
    assert "S3 healthy" in stack.up_output and "MLflow healthy" in stack.up_output
    reg = registry(stack)
    events = list(reversed(reg.events.recent("house-price", limit=10_000)))[:2]  # the first two ever
    assert [(e["action"], e["alias"], e["version_before"], e["version_after"], e["actor"]) for e in events] == [
        ("register", None, None, "1", "bootstrap"), ("set_alias", "champion", None, "1", "bootstrap")]
    assert events[1]["metrics"]["rmse"] > 0 and events[0]["details"]["decision"] == "champion"
    # The service table names every service with its URL.
    assert stack.tracking_uri in stack.up_output and "healthy" in stack.up_output


def test_mlflow_uses_postgresql_and_the_s3_bucket(stack):
    import sqlalchemy as sa

    engine = sa.create_engine(stack.mlflow_db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM model_versions")).scalar() >= 1
    engine.dispose()
    keys = list_objects(stack.settings(StackSettings))
    assert any(k.endswith("/artifacts/MLmodel") for k in keys), keys
    assert any(k.endswith("evaluation/evaluation.html") for k in keys), keys
    assert any(k.endswith("evaluation/residuals.png") for k in keys), keys


def test_the_mlflow_server_runs_as_one_process(stack):
    """`mlflow server` waits on the uvicorn it starts, a second copy of MLflow in memory that serves nothing;
    the stack's entrypoint makes the CLI become the server instead (mlstack/registry/server.py)."""
    import psutil

    from mlstack.native.stack import Stack

    s = stack.settings(StackSettings)
    status = Stack(s).ctl("status", "mlflow", check=False).stdout.split()
    assert status[1] == "RUNNING", status
    server = psutil.Process(int(status[3].rstrip(",")))
    assert "uvicorn" in server.cmdline() and f"{s.MLFLOW_PORT}" in server.cmdline(), server.cmdline()
    assert server.children(recursive=True) == []


def test_champion_loads_by_alias_and_predicts(stack, contract):
    mlflow.set_tracking_uri(stack.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/house-price@champion")
    record = pd.DataFrame([contract.example()])
    for name in contract.numeric_features:
        record[name] = record[name].astype(float)
    (value,) = model.predict(record)
    assert math.isfinite(value) and contract.target.minimum < value < contract.target.maximum


def test_up_twice_is_harmless(stack):
    before = versions(stack)
    result = stack.run("up", module="mlstack.native")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already has a champion: nothing to train" in result.stdout
    assert "bucket s3://" in result.stdout and "present" in result.stdout
    assert versions(stack) == before


def test_status_reports_every_service_healthy(stack):
    result = stack.run("status", module="mlstack.native")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RUNNING" in result.stdout and result.stdout.count("healthy") >= 4


def test_logs_show_service_output(stack):
    result = stack.run("logs", "-n", "100000", "mlflow", module="mlstack.native")
    assert result.returncode == 0
    assert "mlflow: backend postgresql" in result.stdout


def _post(url: str, body: dict) -> tuple[int, dict, dict]:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_slots_run_under_gunicorn_and_aggregate_metrics_across_workers(stack, contract):
    import urllib.request

    from mlstack.settings import StackSettings

    s = stack.settings(StackSettings)

    def served(port: int) -> float:
        """This slot's 200s on /predict, every version's line summed (earlier tests' versions have lines too)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("mlstack_requests_total{") and '"/predict"' in ln and 'status="200"' in ln)

    for slot, port in (("A", s.BACKEND_A_PORT), ("B", s.BACKEND_B_PORT)):
        before = served(port)
        for _ in range(20):  # several requests land on both gunicorn workers
            status, body, headers = _post(f"http://127.0.0.1:{port}/predict", contract.example())
            assert status == 200 and body["variant"] == slot and headers["X-Model-Variant"] == slot
        status, body, _ = _post(f"http://127.0.0.1:{port}/predict", {"latitude": "x"})
        assert status == 422 and body["fields"]["latitude"].startswith("must be a number")
        assert served(port) - before >= 20  # summed over workers, not one worker's view
