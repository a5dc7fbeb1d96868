"""The inference backend against the real registry and PostgreSQL (Flask test client)."""

import math
import time

import pytest
import sqlalchemy as sa

from mlstack.settings import BackendSettings
from tests.integration.helpers import registry

SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def backend_settings(stack, tmp_path_factory):
    def make(slot="A", **overrides):
        base = tmp_path_factory.mktemp(f"slot{slot}")
        values = {"SLOT": slot, "PREDICTION_ID_SECRET": SECRET, "MODEL_POLL_SECONDS": 0.5,
                  "MODEL_CACHE_DIR": base / "cache", "PREDICTION_LOG_DIR": base / "log",
                  "PREDICTION_FLUSH_SECONDS": 0.2, "BATCH_MAX_ROWS": 50, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0,
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": 5}
        return stack.settings(BackendSettings, **{**values, **overrides})
    return make


@pytest.fixture(scope="module")
def app_a(backend_settings):
    from mlstack.serving.app import create_app

    app = create_app(backend_settings("A"))
    yield app
    app.extensions["mlstack"].close()


@pytest.fixture()
def client(app_a):
    return app_a.test_client()


def test_health_ready_and_headers(client):
    assert client.get("/health").json == {"status": "ok", "slot": "A"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["model"]["alias"] == "champion"
    assert ready.headers["X-Model-Variant"] == "A" and ready.headers["X-Model-Version"]
    assert ready.headers["X-Request-Id"]
    assert client.get("/health", headers={"X-Request-Id": "abc"}).headers["X-Request-Id"] == "abc"


def test_predict_matches_the_registry_model(client, contract, stack):
    import mlflow
    import pandas as pd

    response = client.post("/predict", json=contract.example())
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == {"prediction_id", "prediction", "model", "variant"}
    assert body["variant"] == "A" and body["model"]["name"] == "house-price" and body["model"]["alias"] == "champion"
    mlflow.set_tracking_uri(stack.tracking_uri)
    reference = mlflow.pyfunc.load_model(f"models:/house-price/{body['model']['version']}")
    frame = pd.DataFrame([contract.example()]).astype({n: float for n in contract.numeric_features})
    assert body["prediction"] == pytest.approx(float(reference.predict(frame)[0]), rel=1e-9)
    assert client.get("/model-info").json["compiled"] is True


BAD = {
    "wrong-type": ({"latitude": "north"}, "latitude"),
    "boolean": ({"households": True}, "households"),
    "missing": ({"median_income": ...}, "median_income"),
    "extra": ({"colour": "red"}, "colour"),
    "out-of-range": ({"latitude": 99.0}, "latitude"),
    "fraction-for-count": ({"total_rooms": 10.5}, "total_rooms"),
    "huge": ({"population": 10**30}, "population"),
    "unknown-category": ({"ocean_proximity": "MOON"}, "ocean_proximity"),
    "null-not-nullable": ({"households": None}, "households"),
}


@pytest.mark.parametrize("change, field", BAD.values(), ids=BAD.keys())
def test_bad_records_get_a_field_level_4xx(client, contract, change, field):
    record = {**contract.example(), **{k: v for k, v in change.items() if v is not ...}}
    for k, v in change.items():
        if v is ...:
            record.pop(k)
    response = client.post("/predict", json=record)
    assert response.status_code == 422
    assert set(response.json) == {"error", "message", "fields"} and field in response.json["fields"]


@pytest.mark.parametrize("body, content_type", [
    (b"", "application/json"), (b"not json", "application/json"), (b"[1, 2]", "application/json"),
    (b'{"latitude": NaN}', "application/json"), (b'{"latitude": Infinity}', "application/json"),
])
def test_bad_bodies_get_a_4xx(client, body, content_type):
    response = client.post("/predict", data=body, content_type=content_type)
    assert 400 <= response.status_code < 500
    assert response.json["fields"], response.json


@pytest.mark.parametrize("body", [
    "longitude\n" + "9" * 200_000,  # a field over the csv module's size limit
    "\ufeff",  # a byte-order mark and nothing else
])
def test_unparseable_csv_batches_get_a_field_level_4xx(client, body):
    response = client.post("/predict/batch", data=body.encode("utf-8"), content_type="text/csv")
    assert 400 <= response.status_code < 500, response.json
    assert response.json["fields"], response.json


def test_a_bare_carriage_return_in_a_csv_is_a_rejected_row_not_a_500(client):
    """Found by the fuzzer: csv's universal-newline mode raised on it (a 500); now it is one bad row."""
    response = client.post("/predict/batch", data="Z-\u00ddp\u00a3\x08\u00ff\r+^".encode(), content_type="text/csv")
    assert response.status_code == 200 and (response.json["predicted"], response.json["rejected"]) == (0, 1)
    assert response.json["results"][0]["fields"]


def test_nan_and_infinity_in_a_field_are_rejected(client, contract):
    import json

    text = json.dumps(contract.example()).replace('"latitude": 34.26', '"latitude": NaN')
    response = client.post("/predict", data=text, content_type="application/json")
    assert response.status_code == 422 and "latitude" in response.json["fields"]


def test_nullable_field_may_be_null(client, contract):
    response = client.post("/predict", json={**contract.example(), "total_bedrooms": None})
    assert response.status_code == 200 and math.isfinite(response.json["prediction"])


def test_batch_json_predicts_valid_rows_and_reports_invalid_ones(client, contract):
    good = contract.example()
    rows = [good, {**good, "latitude": 99.0}, {**good, "median_income": 8.0}, "not a record"]
    response = client.post("/predict/batch", json={"records": rows})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["predicted"], body["rejected"]) == (2, 2)
    results = body["results"]
    assert [r["row"] for r in results] == [0, 1, 2, 3]
    assert "prediction" in results[0] and "prediction" in results[2]
    assert results[1]["fields"] == {"latitude": "must be a number from 32.5 to 42; got 99.0"}
    assert results[2]["prediction"] > results[0]["prediction"]  # richer block group, dearer houses
    single = client.post("/predict", json=good).json["prediction"]
    assert results[0]["prediction"] == pytest.approx(single, rel=1e-12)


def test_batch_csv_upload(client, contract, sample):
    import io

    csv_text = sample.drop(columns=[contract.target.name]).head(5).to_csv(index=False)
    csv_text = csv_text.replace("NEAR BAY", "MOON", 1)
    response = client.post("/predict/batch", data={"file": (io.BytesIO(csv_text.encode()), "rows.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert response.json["predicted"] == 4 and response.json["results"][0]["fields"]["ocean_proximity"]


def test_batch_limits(client, contract):
    too_many = client.post("/predict/batch", json={"records": [contract.example()] * 51})
    assert too_many.status_code == 413 and "records" in too_many.json["fields"]
    empty = client.post("/predict/batch", json={"records": []})
    assert empty.status_code == 422
    wrong = client.post("/predict/batch", json={"rows": []})
    assert wrong.status_code == 422 and "records" in wrong.json["fields"]


def test_feedback_is_accepted_idempotent_and_unknown_ids_are_404(client, contract, stack):
    pid = client.post("/predict", json=contract.example()).json["prediction_id"]
    for _ in range(2):
        response = client.post("/feedback", json={"prediction_id": pid, "actual": 250_000})
        assert response.status_code == 202 and response.json == {"prediction_id": pid, "status": "accepted"}
    forged = pid[:32] + "0" * 16
    assert client.post("/feedback", json={"prediction_id": forged, "actual": 1.0}).status_code == 404
    assert client.post("/feedback", json={"prediction_id": pid, "actual": "lots"}).status_code == 422
    assert client.post("/feedback", json={"prediction_id": pid, "actual": -5}).status_code == 422
    engine = sa.create_engine(stack.app_db_url)
    deadline = time.time() + 10
    while time.time() < deadline:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT f.actual, p.prediction FROM feedback f JOIN predictions p "
                                        "USING (prediction_id) WHERE prediction_id = :p"), {"p": pid}).all()
        if rows:
            break
        time.sleep(0.2)
    engine.dispose()
    assert len(rows) == 1 and rows[0][0] == 250_000


def test_every_prediction_reaches_the_database(client, contract, stack):
    ids = [client.post("/predict", json=contract.example()).json["prediction_id"] for _ in range(25)]
    ids += [r["prediction_id"] for r in client.post(
        "/predict/batch", json={"records": [contract.example()] * 10}).json["results"]]
    engine = sa.create_engine(stack.app_db_url)
    deadline = time.time() + 10
    found = 0
    while time.time() < deadline and found < len(ids):
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT count(*) FROM predictions WHERE prediction_id = ANY(:ids)"),
                                 {"ids": ids}).scalar()
        time.sleep(0.2)
    engine.dispose()
    assert found == len(ids)


def test_openapi_and_schema_come_from_the_contract(client, contract):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.1") and {"/predict", "/predict/batch", "/feedback"} <= set(doc["paths"])
    record = doc["components"]["schemas"]["Record"]
    assert set(record["required"]) == set(contract.feature_names) and record["additionalProperties"] is False
    assert record["properties"]["latitude"]["minimum"] == 32.5
    schema = client.get("/schema").json
    assert [f["name"] for f in schema["fields"]] == contract.feature_names and schema["example"] == contract.example()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` carrying exactly `labels` (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_metrics_count_requests_predictions_and_live_error_per_version(client, contract):
    body = client.post("/predict", json=contract.example()).json
    version = body["model"]["version"]
    before = client.get("/metrics").data.decode()
    n_before = _sample(before, "mlstack_live_absolute_error_count", variant="A", model_version=version)
    sq_before = _sample(before, "mlstack_live_squared_error_sum_total", variant="A", model_version=version)
    time.sleep(0.5)  # the prediction reaches the database before its feedback is joined to it
    actual = body["prediction"] + 12_345.0
    assert client.post("/feedback", json={"prediction_id": body["prediction_id"], "actual": actual}).status_code == 202
    deadline = time.time() + 10
    while time.time() < deadline:
        text = client.get("/metrics").data.decode()
        if _sample(text, "mlstack_live_absolute_error_count", variant="A", model_version=version) > n_before:
            break
        time.sleep(0.2)
    assert _sample(text, "mlstack_live_absolute_error_count", variant="A", model_version=version) == n_before + 1
    squared = _sample(text, "mlstack_live_squared_error_sum_total", variant="A", model_version=version) - sq_before
    assert squared == pytest.approx(12_345.0 ** 2, rel=1e-6)
    assert _sample(text, "mlstack_requests_total", variant="A", model_version=version, endpoint="/predict",
                   status="200") >= 1
    assert _sample(text, "mlstack_predicted_value_count", variant="A", model_version=version) >= 1
    assert _sample(text, "mlstack_request_duration_seconds_bucket", variant="A", model_version=version,
                   endpoint="/predict", le="0.1") >= 1
    assert max(_sample(text, "mlstack_model_version_info", variant="A", model_version=version, alias="champion",
                       compiled=c) for c in ("True", "False")) == 1
    counted = _sample(text, "mlstack_predicted_value_count", variant="A", model_version=version)
    assert client.post("/predict/batch", json={"records": [contract.example()] * 3}).status_code == 200
    text = client.get("/metrics").data.decode()
    assert _sample(text, "mlstack_predicted_value_count", variant="A", model_version=version) == counted + 3
    buckets = [_sample(text, "mlstack_predicted_value_bucket", variant="A", model_version=version, le=le)
               for le in ("+Inf",)]
    assert buckets == [counted + 3]  # the bulk observe keeps buckets cumulative and complete


def _wait_ready(client, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline and client.get("/ready").status_code != 200:
        time.sleep(0.2)
    assert client.get("/ready").status_code == 200


def _wait_for(client, version, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline and (client.get("/model-info").json["model"] or {}).get("version") != version:
        time.sleep(0.2)
    return client.get("/model-info").json


def test_slot_b_follows_challenger_falls_back_to_champion_and_refuses_a_bad_version(
        backend_settings, stack, contract, housing):
    from mlstack.registry.aliases import move_alias
    from mlstack.registry.policy import set_champion
    from mlstack.serving.app import create_app
    from tests.integration.helpers import tiny_version

    rows = housing.head(5000)
    name, v1 = tiny_version(stack, contract, rows)
    _, v2 = tiny_version(stack, contract, rows, name)
    _, bad = tiny_version(stack, contract, rows, name, target_scale=10.0)  # predicts millions
    reg = registry(stack, name)
    set_champion(reg, v1, actor="test", reason="slot test", metrics={})
    app = create_app(backend_settings("B", MODEL_NAME=name))
    try:
        client = app.test_client()
        assert client.get("/model-info").json["model"] == {"name": name, "version": v1, "alias": "champion"}
        move_alias(reg, "challenger", v2, actor="test", reason="slot B test", metrics={})
        info = _wait_for(client, v2)
        assert info["model"] == {"name": name, "version": v2, "alias": "challenger"}
        # shadow scoring: while serving the challenger, slot B scores the champion on each request too
        deadline = time.time() + 10
        while time.time() < deadline and client.get("/model-info").json["shadow"] is None:
            time.sleep(0.1)
        assert client.get("/model-info").json["shadow"] == {"name": name, "version": v1, "alias": "champion"}
        answer = client.post("/predict", json=contract.example()).json
        assert answer["variant"] == "B" and answer["model"]["version"] == v2
        # A version that fails the smoke test is refused; v2 keeps serving, and the refusal is counted.
        move_alias(reg, "challenger", bad, actor="test", reason="bad model", metrics={})
        time.sleep(2.0)
        info = client.get("/model-info").json
        assert info["model"]["version"] == v2 and bad in info["refused_versions"]
        assert "outside" in info["refused_versions"][bad]
        assert 'mlstack_model_swaps_refused_total{variant="B"} 1.0' in client.get("/metrics").data.decode()
        # No challenger: slot B falls back to the champion, and has nothing to score in the shadow.
        move_alias(reg, "challenger", None, actor="test", reason="retired", metrics={})
        info = _wait_for(client, v1)
        assert info["model"] == {"name": name, "version": v1, "alias": "champion"} and info["shadow"] is None
    finally:
        app.extensions["mlstack"].close()
    engine = sa.create_engine(stack.app_db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT model_version, shadow_version, shadow_prediction, prediction "
                                   "FROM predictions WHERE prediction_id = :p"), {"p": answer["prediction_id"]}).first()
    engine.dispose()
    assert row is not None and (row.model_version, row.shadow_version) == (v2, v1)
    assert row.shadow_prediction is not None  # v1 and v2 were fitted on the same rows: equal values here


@pytest.mark.faults
def test_cold_start_with_mlflow_down_serves_from_the_cache(backend_settings, app_a, contract):
    """A slot started while MLflow is unreachable serves the last good model from its cache."""
    from mlstack.serving.app import create_app

    warm = app_a.extensions["mlstack"].settings
    app = create_app(backend_settings("A", MODEL_CACHE_DIR=warm.MODEL_CACHE_DIR,
                                      MLFLOW_TRACKING_URI="http://127.0.0.1:9"))
    try:
        client = app.test_client()
        assert client.get("/ready").status_code == 200
        info = client.get("/model-info").json
        assert info["source"] == "cache" and "registry unreachable" in info["last_error"]
        assert client.post("/predict", json=contract.example()).status_code == 200
    finally:
        app.extensions["mlstack"].close()


def test_no_model_and_no_cache_is_not_ready(backend_settings, contract):
    from mlstack.serving.app import create_app

    app = create_app(backend_settings("A", MLFLOW_TRACKING_URI="http://127.0.0.1:9"))
    try:
        client = app.test_client()
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        response = client.post("/predict", json=contract.example())
        assert response.status_code == 503 and response.json["error"] == "not_ready"
    finally:
        app.extensions["mlstack"].close()


def test_fault_mode_and_request_stats(backend_settings, contract, pg_database, tmp_path):
    """A slot put into a fault mode fails, slows or biases on purpose; request_stats counts it."""
    from mlstack.db.engine import create_engine, ensure_database
    from mlstack.db.migrate import upgrade
    from mlstack.serving.app import create_app
    from mlstack.serving.faults import write_fault

    db = pg_database("mlstack_stats")  # its own database: the running slots write request_stats too
    ensure_database(db)
    upgrade(create_engine(db))
    fault = tmp_path / "fault.json"
    app = create_app(backend_settings("B", FAULT_FILE=fault, STATS_PERIOD_SECONDS=300, APP_DATABASE_URL=db))
    try:
        client = app.test_client()
        _wait_ready(client)
        plain = client.post("/predict", json=contract.example()).json["prediction"]
        write_fault(fault, bias=50_000.0)
        time.sleep(0.6)
        assert client.post("/predict", json=contract.example()).json["prediction"] == pytest.approx(plain + 50_000)
        write_fault(fault, error_rate=1.0, latency_ms=120)
        time.sleep(0.6)
        failed = client.post("/predict", json=contract.example())
        assert failed.status_code == 500 and failed.json["error"] == "injected_fault"
        assert client.post("/predict", json={"latitude": 1}).status_code == 422  # bad input: not counted
        version = client.get("/model-info").json["model"]["version"]
    finally:
        app.extensions["mlstack"].close()  # the final flush writes the open period's counts
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT sum(requests), sum(errors), sum(over_100_ms) FROM request_stats "
            "WHERE variant = 'B' AND model_version = :v"), {"v": version}).first()
    engine.dispose()
    assert tuple(row) == (3, 1, 1)


@pytest.mark.faults
def test_a_full_spill_refuses_with_a_clear_503_and_keeps_every_accepted_prediction(backend_settings, contract,
                                                                                     stack):
    """App database down and the spill at its disk budget: refuse (503 naming it), never accept and drop."""
    from mlstack.db.engine import create_engine
    from mlstack.serving.app import create_app

    app = create_app(backend_settings("A", APP_DATABASE_URL="postgresql+psycopg2://postgres@127.0.0.1:9/down",
                                      PREDICTION_SPILL_MAX_BYTES=1 << 16))
    state = app.extensions["mlstack"]
    try:
        client = app.test_client()
        accepted, refused = [], None
        for _ in range(1000):
            answer = client.post("/predict", json=contract.example())
            if answer.status_code == 503:
                refused = answer
                break
            assert answer.status_code == 200, answer.json
            accepted.append(answer.json["prediction_id"])
            time.sleep(0.005)  # flushes (every 0.2 s) find the database down and measure the spill
        assert refused is not None and len(accepted) > 20
        assert refused.json["error"] == "prediction_log_full" and "PREDICTION_SPILL_MAX_BYTES" in refused.json["message"]
        assert refused.json["fields"] and refused.headers["Retry-After"]
        feedback = [client.post("/feedback", json={"prediction_id": pid, "actual": 1000.0}) for pid in accepted[:40]]
        assert {f.status_code for f in feedback} <= {202, 503} and feedback[-1].status_code == 503  # feedback too
        assert feedback[-1].json["error"] == "prediction_log_full"
        assert 'mlstack_prediction_log_refused_total{variant="A"}' in client.get("/metrics").data.decode()
        state.predlog.engine = create_engine(stack.app_db_url)  # the database is back
        deadline = time.time() + 20
        while time.time() < deadline and client.post("/predict", json=contract.example()).status_code != 200:
            time.sleep(0.2)
        engine = sa.create_engine(stack.app_db_url)
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT count(*) FROM predictions WHERE prediction_id = ANY(:ids)"),
                                 {"ids": accepted}).scalar()
        engine.dispose()
        print(f"spill budget 64 KiB: {len(accepted)} predictions accepted, then refused; {found} in the database")
        assert found == len(accepted)
    finally:
        state.close()
