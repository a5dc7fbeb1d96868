"""Fault injection while the simulator sends traffic through nginx (`pytest -m faults`).

Each test breaks one real part of the running native stack — PostgreSQL, MLflow, a model version's
artifact, the spill's disk budget — and counts what the users saw and what was kept. The other
faults of the suite live beside the behaviour they test and carry the same marker: a dead slot
(tests/integration/test_nginx.py, test_monitoring.py, test_rollout.py).
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
import sqlalchemy as sa

from tests.integration.helpers import registry, tiny_version

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("registry_restored")]


class Traffic:
    """The simulator in a thread: predictions through nginx, true values as feedback half a second later."""

    def __init__(self, native, contract, housing, seconds: float, rate: float = 30.0) -> None:
        from mlstack.simulator import Simulator

        self.sim = Simulator(native.settings.WEB_PORT, housing.sample(2000, random_state=1), contract, rate=rate,
                             users=200, feedback_delay=0.5, threads=4, seed=7)
        self.seconds = seconds
        self.thread = threading.Thread(target=lambda: self.sim.run(seconds), daemon=True)

    def __enter__(self) -> Traffic:
        self.started = datetime.now(UTC)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=self.seconds + 60)

    @property
    def report(self):
        return self.sim.report


def _pg(action: str, *args: str) -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *args], check=True,
                   capture_output=True, timeout=60)


def _rows_since(url: str, since: datetime, want: tuple[int, int], timeout: float = 40) -> tuple[int, int]:
    """(predictions, feedback) rows written since `since`, once they reach `want` or the timeout passes."""
    engine = sa.create_engine(url, pool_pre_ping=True)
    found = (-1, -1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with engine.connect() as conn:
                found = (conn.execute(sa.text("SELECT count(*) FROM predictions WHERE created_at >= :t"),
                                      {"t": since}).scalar(),
                         conn.execute(sa.text("SELECT count(*) FROM feedback WHERE received_at >= :t"),
                                      {"t": since}).scalar())
        except sa.exc.OperationalError:
            pass
        if found == want:
            break
        time.sleep(0.5)
    engine.dispose()
    return found


def test_postgres_killed_and_restarted_loses_no_prediction_and_no_feedback(stack, native, contract, housing):
    with Traffic(native, contract, housing, seconds=14) as traffic:
        time.sleep(3)
        _pg("stop", "-m", "immediate")  # a crash: no checkpoint, connections cut
        killed_at = time.time()
        time.sleep(4)
        _pg("start")
        down = time.time() - killed_at
    r = traffic.report
    answered = sum(r.variants.values())
    found = _rows_since(stack.app_db_url, traffic.started, (answered, r.feedback_sent))
    print(f"postgres killed for {down:.1f}s: {r.sent} sent, {answered} answered 200, {r.feedback_sent} feedback "
          f"accepted; in the database: {found[0]} predictions, {found[1]} feedback")
    assert r.answered == {200: r.sent} and r.feedback_failed == 0, r.as_dict()
    assert answered > 200 and r.feedback_sent > 150
    assert found == (answered, r.feedback_sent)


def test_mlflow_down_slots_keep_serving_and_a_cold_started_slot_serves_from_its_cache(stack, native, contract,
                                                                                         housing):
    slot_b = f"http://127.0.0.1:{native.settings.BACKEND_B_PORT}"
    before = requests.get(f"{slot_b}/model-info", timeout=5).json()["model"]["version"]
    native.ctl("stop", "mlflow")
    try:
        with Traffic(native, contract, housing, seconds=10) as traffic:
            time.sleep(2)
        # A cold start while the registry is unreachable (after the traffic: a slot restarting under
        # traffic is a rolling-restart question, not this one).
        native.ctl("restart", "backend-b")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(f"{slot_b}/ready", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # refused or busy while the worker loads
                pass
            time.sleep(0.5)
        info = requests.get(f"{slot_b}/model-info", timeout=5).json()
        answer = requests.post(f"{slot_b}/predict", json=contract.example(), timeout=5)
    finally:
        native.ctl("start", "mlflow")
        native.wait_healthy(next(p for p in native.programs() if p.name == "mlflow"), 120)
    r = traffic.report
    print(f"mlflow down: {r.sent} sent, statuses {dict(r.answered)}; slot B restarted from {info['source']}")
    assert r.answered == {200: r.sent} and r.sent > 150, r.as_dict()
    assert info["source"] == "cache" and info["model"]["version"] == before
    assert "registry unreachable" in info["last_error"]
    assert answer.status_code == 200 and answer.json()["model"]["version"] == before


def test_a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving(stack, native, contract, housing):
    from mlflow.tracking import MlflowClient

    from mlstack.registry.aliases import move_alias
    from mlstack.storage import client, list_objects

    reg = registry(stack)
    serving = requests.get(f"http://127.0.0.1:{native.settings.BACKEND_B_PORT}/model-info", timeout=5).json()
    old = serving["model"]["version"]
    _, bad = tiny_version(stack, contract, housing.head(3000), "house-price")
    # corrupt every file of the new version's artifact in the bucket (a torn upload, a bad disk)
    source = MlflowClient(stack.tracking_uri).get_model_version("house-price", bad).source
    model_id = source.split("/")[-1]  # models:/m-<id>; the server keeps it under .../models/m-<id>/artifacts/
    s3, bucket = client(native.settings), native.settings.S3_BUCKET
    keys = [k for k in list_objects(native.settings) if f"/{model_id}/" in k and k.endswith((".skops", ".pkl"))]
    assert keys, f"no model file of {model_id} in s3://{bucket}"
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"\x00 not a model \x00")
    with Traffic(native, contract, housing, seconds=10) as traffic:
        assert move_alias(reg, "challenger", bad, actor="test", reason="corrupt version", metrics={})
        time.sleep(8)
    info = requests.get(f"http://127.0.0.1:{native.settings.BACKEND_B_PORT}/model-info", timeout=5).json()
    r = traffic.report
    print(f"corrupt v{bad}: refused as {info['refused_versions'].get(bad)!r}; {r.sent} sent, {dict(r.answered)}; "
          f"versions served {dict(r.versions)}")
    assert info["model"]["version"] == old and bad in info["refused_versions"]
    assert r.answered == {200: r.sent} and not any(v.endswith(f":{bad}") for v in r.versions)
