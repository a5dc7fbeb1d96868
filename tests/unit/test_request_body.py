"""Request bodies are read under one set of rules: every hostile body gets a 4xx naming (body) and the rule.

The slot, the web frontend and the Slack sink run here as Flask test clients (no services): a slot
with a stub model, a frontend whose API client answers the schema and predictions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from flask import Flask, jsonify, request

from mlstack.request_body import MAX_DEPTH, BodyRefused, nesting_depth, read_json, request_id
from mlstack.settings import BackendSettings, FrontendSettings, SlackSinkSettings
from tests import hostile


@pytest.mark.parametrize(("text", "depth"), [
    (b"[[[1]]]", 3), (b'{"a": {"b": [1, 2]}}', 3), (b'["[[[[", "]"]', 1), (b'{"a": "\\"[[[["}', 1),
    (b"[" * 40 + b"]" * 40, 40), (b'[' * 20 + b'"]]]]"' + b"]" * 20, 20)])
def test_nesting_depth_counts_brackets_outside_strings(text, depth):
    assert nesting_depth(text, limit=4) == depth if depth > 4 else nesting_depth(text, limit=4) <= 4
    assert nesting_depth(text, limit=0) == depth


@pytest.fixture()
def echo():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10_000

    @app.post("/")
    def read():
        try:
            return jsonify(value=read_json(request))
        except BodyRefused as exc:
            return jsonify(error=exc.error, message=exc.message, fields=exc.fields), exc.status

    return app.test_client()


@pytest.mark.parametrize(("body", "headers", "status", "rule"), [
    (b"", {}, 400, "must be a JSON object"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), {}, 400, f"at most {MAX_DEPTH} levels deep"),
    (b'{"a": 1}', {"Content-Type": "multipart/form-data; boundary=x"}, 415, "must be JSON"),
    (b'{"a": 1}', {"Content-Type": "application/xml"}, 415, "must be JSON"),
    (b'{"a": 1}', {"Content-Type": "application/json; charset=utf-16"}, 415, "must be UTF-8"),
    (b'{"a": 1}', {"Content-Encoding": "gzip"}, 415, "must not be compressed"),
    (b'{"a": "\xff"}', {}, 400, "must be UTF-8 text"),
    ('{"a": 1}'.encode("utf-16"), {}, 400, "must be UTF-8 text"),
    (b'{"a": "\\ud800", "b": NaN}', {}, 400, "no lone surrogate"),
    (b'{"a": ' + b"1" * 5_000 + b"}", {}, 400, "at most 4300 digits"),
    (b'{"a": 1', {}, 400, "must be valid JSON"),
    (b'{"a": "' + b"x" * 20_000 + b'"}', {}, 413, "at most 10000 bytes"),
])
def test_a_body_that_cannot_be_read_is_refused_naming_the_rule(echo, body, headers, status, rule):
    resp = echo.post("/", data=body, headers=headers)
    assert resp.status_code == status, resp.get_json()
    assert rule in resp.get_json()["fields"]["(body)"]


@pytest.mark.parametrize(("body", "headers", "value"), [
    (b'{"a": 1}', {}, {"a": 1}),  # no Content-Type
    (b'{"a": 1}', {"Content-Type": "application/x-www-form-urlencoded"}, {"a": 1}),  # curl -d
    (b'{"a": 1}', {"Content-Type": "application/vnd.example+json"}, {"a": 1}),
    (b"\xef\xbb\xbf" + b'{"a": 1}', {"Content-Type": "application/json; charset=UTF-8"}, {"a": 1}),
    (b'{"a": 1, "a": 2}', {}, {"a": 2}),  # the last of a repeated key counts, as in every mainstream parser
    (b'{"a": NaN, "b": 1e400}', {}, {"a": None, "b": None}),  # read; validation then names the fields
])
def test_a_readable_body_is_read_whatever_its_content_type(echo, body, headers, value):
    resp = echo.post("/", data=body, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    got = resp.get_json()["value"]
    assert got.keys() == value.keys() and all(got[k] == v for k, v in value.items() if v is not None)


def test_a_request_id_is_kept_only_when_it_is_a_short_token():
    assert request_id("abc-123.X:y_z") == "abc-123.X:y_z"
    for header in (None, "", "x" * 65, "a b", "a\nb", "ä"):
        new = request_id(header)
        assert len(new) == 32 and new != header


class StubPipeline:
    def predict(self, frame):  # noqa: D102
        return np.full(len(frame), 200_000.0)


@pytest.fixture()
def slot(tmp_path):
    from mlstack.serving.app import create_app
    from mlstack.serving.models import LoadedModel

    settings = BackendSettings(_env_file=None, PREDICTION_ID_SECRET="s" * 32, MAX_BODY_BYTES=1 << 20,
                               APP_DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", PREDICTION_LOG_DIR=tmp_path / "log",
                               PROMETHEUS_MULTIPROC_DIR=None, BATCH_MAX_ROWS=100)
    app = create_app(settings, start=False)
    app.extensions["mlstack"].manager.current = LoadedModel("house-price", "1", "champion", StubPipeline(), None,
                                                             "stub")
    yield app.test_client(), settings
    app.extensions["mlstack"].predlog.close()


def _send_all(client, targets, max_body):
    answers, problems = [], []
    for name, path, headers, body in hostile.cases(targets, max_body):
        resp = client.post(path, data=body, headers=headers)
        answers.append((name, resp.status_code))
        if problem := hostile.problem(resp.status_code, resp.content_type or "", resp.get_data()):
            problems.append(f"{name}: {problem}")
    return answers, problems


def test_every_hostile_body_to_a_slot_gets_a_4xx_naming_the_rule(slot):
    client, settings = slot
    answers, problems = _send_all(client, hostile.SLOT, settings.MAX_BODY_BYTES)
    assert problems == []
    assert len(answers) > 150
    by_name = dict(answers)
    assert by_name["/predict: arrays nested 50000 deep"] == 400
    assert by_name["/feedback: objects nested 5000 deep"] == 400
    assert by_name["/predict/batch: nesting inside a valid record"] == 400
    assert by_name["/predict: multipart"] == 415
    assert by_name["/predict: no Content-Type"] == 200  # a JSON body is read whatever it is declared as
    assert by_name["/predict: number 1e400"] == 422  # read, then refused by the field's rule
    assert by_name["/predict/batch: multipart without a file part"] == 400
    assert by_name["/predict: a body over the limit"] == 413


def test_the_slot_says_what_is_wrong_with_a_body_that_is_not_empty(slot):
    client, _ = slot
    for headers, body in (({}, b"hello"), ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n")):
        message = client.post("/predict", data=body, headers=headers).get_json()["message"]
        assert "empty" not in message, message


@pytest.fixture()
def frontend(monkeypatch):
    from mlstack.frontend import app as frontend_app
    from mlstack.frontend.api import ApiClient, ApiResponse
    from mlstack.serving.schemas import schema_document
    from mlstack.contracts import get_contract

    schema = schema_document(get_contract("california_housing"))

    def call(self, method, path, **kwargs):  # noqa: ANN001, ARG001 - the API's answers, without the API
        if path == "/predict":
            return ApiResponse(200, {"prediction_id": "0" * 48, "prediction": 1.0, "variant": "A",
                                     "model": {"name": "house-price", "version": "1", "alias": "champion"}}, {})
        return ApiResponse(202, {"prediction_id": "0" * 48, "status": "accepted"}, {})

    monkeypatch.setattr(ApiClient, "call", call)
    monkeypatch.setattr(ApiClient, "schema", lambda self: schema)
    monkeypatch.setattr(frontend_app.StatusReader, "version", lambda self, version: None)
    settings = FrontendSettings(_env_file=None, API_BASE_URL="http://127.0.0.1:9/api")
    app = frontend_app.create_app(settings)
    return app.test_client(), app.config["MAX_CONTENT_LENGTH"]


def test_every_hostile_body_to_the_web_form_gets_a_4xx_naming_the_rule(frontend):
    client, max_body = frontend
    answers, problems = _send_all(client, hostile.FRONTEND, max_body)
    assert problems == []
    by_name = dict(answers)
    assert by_name["/predict: JSON to a form"] == 415
    assert by_name["/feedback: a form over the limit"] == 413
    assert by_name["/predict: multipart with 2,000 parts"] == 413
    page = client.post("/predict", data=b"{}", headers={"Content-Type": "application/json"}).get_data(as_text=True)
    assert "(body)" in page and "must be a form" in page


def test_every_hostile_body_to_the_slack_sink_gets_a_4xx_naming_the_rule(tmp_path):
    from mlstack.slack_sink import MAX_BODY, create_app

    client = create_app(SlackSinkSettings(_env_file=None, SLACK_SINK_DIR=tmp_path)).test_client()
    answers, problems = _send_all(client, hostile.SINK, MAX_BODY)
    assert problems == []
    assert dict(answers)["/hooks/local: arrays nested 50000 deep"] == 400
    stored = [json.loads(line) for line in (tmp_path / "messages.jsonl").read_text().splitlines()]
    assert all(isinstance(r, dict) for r in stored)


def test_too_deep_bounds_parsed_values_without_recursion():
    from mlstack.request_body import too_deep

    assert not too_deep(5) and not too_deep({"records": [{"a": 1}]}, limit=3)
    assert too_deep({"records": [{"a": [1]}]}, limit=3)
    deep: list = []
    node = deep
    for _ in range(100_000):  # deeper than Python's recursion limit
        node.append([])
        node = node[0]
    assert too_deep(deep) and not too_deep(deep, limit=200_000)


def test_feedback_records_its_sender_and_a_keyed_hash_of_public_addresses_only(slot):
    import sqlalchemy as sa

    from mlstack.db.migrate import upgrade

    client, settings = slot
    state = client.application.extensions["mlstack"]
    upgrade(state.predlog.engine)
    sent = {}
    for address in ("81.2.69.160", "127.0.0.1", "172.18.0.1", "not an address"):
        pid = client.post("/predict", json=hostile.RECORD, headers={"X-User-Id": "u1"}).get_json()["prediction_id"]
        resp = client.post("/feedback", json={"prediction_id": pid, "actual": 250_000.0},
                           headers={"X-User-Id": "u1", "X-Real-IP": address})
        assert resp.status_code == 202
        sent[pid] = address
    assert state.predlog.flush(final=True)
    with state.predlog.engine.connect() as conn:
        rows = {r.prediction_id: r for r in conn.execute(sa.text("SELECT * FROM feedback"))}
    hashes = {sent[pid]: (r.sender_hash, r.address_hash) for pid, r in rows.items()}
    assert len({sender for sender, _ in hashes.values()}) == 1
    assert hashes["81.2.69.160"][1] is not None and "81.2" not in hashes["81.2.69.160"][1]
    assert [hashes[a][1] for a in ("127.0.0.1", "172.18.0.1", "not an address")] == [None, None, None]
