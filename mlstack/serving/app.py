"""The inference backend: a Flask application factory, run by gunicorn as one slot (A or B).

    gunicorn -c inference/backend/gunicorn.conf.py "mlstack.serving.app:create_app()"

Errors are JSON everywhere: {"error", "message", "fields": {field: reason}}; bad input is a 4xx.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.json.provider import JSONProvider
from pydantic import TypeAdapter, ValidationError
from werkzeug.exceptions import HTTPException

from mlstack.contract import DataContract
from mlstack.request_body import BodyRefused, check_encoding_headers, read_json, request_id
from mlstack.contracts import get_contract
from mlstack.serving import metrics
from mlstack.serving.models import LoadedModel, ModelManager
from mlstack.serving.faults import FaultSwitch
from mlstack.serving.predlog import PredictionLog, SpillFull, joined_errors
from mlstack.serving.stats import RequestStats
from mlstack.serving.schemas import FeedbackRequest, describe_errors, record_model, schema_document
from mlstack.settings import BackendSettings, export_mlflow_client_env, load

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON with a 4xx/5xx status."""

    def __init__(self, status: int, error: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.fields = status, error, message, fields or {}


@dataclass
class Serving:
    """What the request handlers need, attached to the app in the factory."""

    settings: BackendSettings
    contract: DataContract
    manager: ModelManager
    predlog: PredictionLog
    stats: RequestStats
    faults: FaultSwitch
    secret: bytes
    predicted: Any = None  # the mlstack_predicted_value histogram (buckets from the contract)
    record: Any = field(init=False)

    def __post_init__(self) -> None:
        self.record = record_model(self.contract)
        self.records = TypeAdapter(list[self.record])  # type: ignore[name-defined]

    def model(self) -> LoadedModel:
        model = self.manager.current
        if model is None:
            raise ApiError(503, "not_ready", "no model loaded yet: " + (self.manager.last_error or "starting"))
        return model

    def _mac(self, raw: str) -> str:
        return hmac.digest(self.secret, raw.encode(), "sha256").hex()[:16]

    def new_prediction_ids(self, n: int) -> list[str]:
        """Return n ids: 128 random bits (one urandom call) + a MAC, so feedback can be checked offline."""
        random = os.urandom(16 * n).hex()
        return [(raw := random[i:i + 32]) + self._mac(raw) for i in range(0, 32 * n, 32)]

    def address_hash(self, address: str) -> str | None:
        """A keyed hash of a public client address (labels are counted per address without storing any).

        None for this machine's and private networks' addresses: there every client is one address
        (127.0.0.1, a Compose gateway, an office NAT), so only the per-sender cap applies to them.
        """
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if not ip.is_global:  # loopback, private, link-local, shared (CGNAT) and reserved ranges
            return None
        return hmac.digest(self.secret, b"address:" + ip.packed, "sha256").hex()[:32]

    def issued(self, prediction_id: str) -> bool:
        """Return True if this stack issued the id (its MAC matches): no database lookup needed."""
        if len(prediction_id) != 48:
            return False
        return hmac.compare_digest(prediction_id[32:], self._mac(prediction_id[:32]))

    def close(self) -> None:
        self.manager.stop()
        self.predlog.close()


class FastJSON(JSONProvider):
    """orjson for response bodies (several times faster than the standard library).

    Request bodies are read by mlstack.request_body, which bounds them before parsing.
    """

    @staticmethod
    def _encode(obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # e.g. an integer beyond 64 bits: the standard library writes anything
            return json.dumps(obj, default=str).encode()

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._encode(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            return json.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return current_app.response_class(self._encode(obj), mimetype="application/json")


def serving() -> Serving:
    return current_app.extensions["mlstack"]


def _user_hash() -> str | None:
    user = request.headers.get("X-User-Id")
    return hashlib.sha256(user.encode()).hexdigest()[:32] if user else None


def _client_address() -> str:
    """The client's address: nginx's X-Real-IP (it overwrites whatever a client sends), else the peer."""
    return request.headers.get("X-Real-IP") or request.remote_addr or ""


def _log_row(s: Serving, model: LoadedModel, prediction_id: str, created_at: float, user_hash: str | None,
             record: dict[str, Any], value: float, latency_ms: float,
             shadow: tuple[str, float] | None = None) -> dict[str, Any]:
    """Return one `predictions` row for the prediction log (columns of mlstack.db.schema.predictions)."""
    return {"prediction_id": prediction_id, "created_at": created_at, "variant": s.settings.SLOT,
            "model_name": model.name, "model_version": model.version, "model_alias": model.alias,
            "user_hash": user_hash, "request_id": g.request_id, "features": record, "prediction": value,
            "latency_ms": latency_ms, "shadow_version": shadow[0] if shadow else None,
            "shadow_prediction": shadow[1] if shadow else None}


def _shadow(s: Serving, record: dict[str, Any]) -> tuple[str, float] | None:
    """Score the record with the other alias's model too (never served; a failure only skips it)."""
    model = s.manager.shadow
    if model is None:
        return None
    try:
        return model.version, model.predict_record(record, s.contract)
    except Exception:  # noqa: BLE001
        log.exception("shadow prediction failed (v%s)", model.version)
        return None


def _apply_fault(s: Serving) -> Any:
    """Apply the slot's fault mode, if one is set (tests and the demo): a delay, maybe an error."""
    fault = s.faults.current()
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if s.faults.fails(fault):
        raise ApiError(500, "injected_fault", "this slot is in a fault mode (FAULT_FILE) and failed on purpose")
    return fault


def _validate(s: Serving, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ApiError(422, "validation_error", "a record must be a JSON object", {"(body)": "must be a JSON object"})
    try:
        return s.record.model_validate(row).model_dump()
    except ValidationError as exc:
        fields = describe_errors(exc, s.contract)
        raise ApiError(422, "validation_error", f"{len(fields)} field(s) are invalid", fields) from exc


api = Blueprint("api", __name__)


@api.post("/predict")
def predict() -> Response:
    s = serving()
    record = _validate(s, read_json(request))
    model = s.model()
    g.model = model
    fault = _apply_fault(s)
    started = time.perf_counter()
    value = model.predict_record(record, s.contract) + fault.bias
    latency_ms = (time.perf_counter() - started) * 1000
    (prediction_id,) = s.new_prediction_ids(1)
    s.predlog.record("prediction", _log_row(s, model, prediction_id, time.time(), _user_hash(), record, value,
                                            latency_ms, _shadow(s, record)))
    metrics.PREDICTIONS.labels(s.settings.SLOT, model.version).inc()
    s.predicted.labels(s.settings.SLOT, model.version).observe(value)
    return jsonify(prediction_id=prediction_id, prediction=value, model=model.describe(), variant=s.settings.SLOT)


def _csv_rows(s: Serving) -> list[Any]:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "invalid_csv", "the multipart body has no part named file",
                           {"file": "must be a CSV file sent as the multipart part named file"})
        raw = upload.read()
    else:
        raw = request.get_data()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_csv", "the CSV is not UTF-8 text", {"file": "must be UTF-8 CSV"}) from exc
    try:
        return _parse_csv(s, text)
    except csv.Error as exc:  # e.g. a bare carriage return inside a field, a NUL, a field over the size limit
        raise ApiError(400, "invalid_csv", f"the CSV cannot be parsed: {exc}", {"file": "must be valid CSV"}) from exc


def _parse_csv(s: Serving, text: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # newline="": quoted fields may hold line breaks
    if not reader.fieldnames:
        raise ApiError(400, "invalid_csv", "the CSV has no header row", {"file": "needs a header row"})
    numeric = set(s.contract.numeric_features)
    rows = []
    for row in reader:
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if key is None:  # more cells than headers
                clean["(row)"] = value
                continue
            value = (value or "").strip()
            if key in numeric:
                if value == "":
                    clean[key] = None
                else:
                    try:
                        clean[key] = float(value)
                    except ValueError:
                        clean[key] = value  # left as text: validation names the field
            else:
                clean[key] = value
        rows.append(clean)
    return rows


@api.post("/predict/batch")
def predict_batch() -> Response:
    s = serving()
    limit = s.settings.BATCH_MAX_ROWS
    if request.mimetype in ("text/csv", "multipart/form-data"):
        check_encoding_headers(request)
        rows = _csv_rows(s)
    else:
        body = read_json(request)
        if not isinstance(body, dict) or set(body) != {"records"} or not isinstance(body["records"], list):
            raise ApiError(422, "validation_error", 'send {"records": [...]} or a CSV file',
                           {"records": "must be the only key, holding a list of records"})
        rows = body["records"]
    if not rows:
        raise ApiError(422, "validation_error", "the batch is empty", {"records": "must hold at least one record"})
    if len(rows) > limit:
        raise ApiError(413, "batch_too_large", f"{len(rows)} rows is more than the limit of {limit}",
                       {"records": f"at most {limit} rows"})
    model = s.model()
    valid: list[dict[str, Any]] = []
    positions: list[int] = []
    results: list[dict[str, Any]] = []
    try:  # the common case, every row valid: one pass through pydantic-core for the whole batch
        valid = s.records.dump_python(s.records.validate_python(rows))
        positions = list(range(len(rows)))
        results = [{"row": i} for i in positions]
    except ValidationError:  # some rows are not: check row by row, so each gets its own errors
        valid, positions, results = [], [], []
        for i, row in enumerate(rows):
            try:
                valid.append(_validate(s, row))
                positions.append(i)
                results.append({"row": i})
            except ApiError as exc:
                results.append({"row": i, "fields": exc.fields})
    g.model = model
    fault = _apply_fault(s)
    if valid:
        started = time.perf_counter()
        values = model.predict_frame(pd.DataFrame.from_records(valid, columns=s.contract.feature_names), s.contract)
        if fault.bias:
            values = values + fault.bias
        latency_ms = (time.perf_counter() - started) * 1000 / len(valid)
        now, user = time.time(), _user_hash()
        log_rows = []
        for pos, record, value, pid in zip(positions, valid, values, s.new_prediction_ids(len(valid)), strict=True):
            results[pos].update(prediction_id=pid, prediction=float(value))
            log_rows.append(_log_row(s, model, pid, now, user, record, float(value), latency_ms))
        s.predlog.record_many("prediction", log_rows)
        metrics.PREDICTIONS.labels(s.settings.SLOT, model.version).inc(len(valid))
        metrics.observe_many(s.predicted.labels(s.settings.SLOT, model.version), values)
    return jsonify(model=model.describe(), variant=s.settings.SLOT, predicted=len(valid),
                   rejected=len(rows) - len(valid), results=results)


@api.post("/feedback")
def feedback() -> tuple[Response, int]:
    s = serving()
    body = read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "send a JSON object", {"(body)": "must be a JSON object"})
    try:
        fb = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "the feedback is invalid", describe_errors(exc)) from exc
    target = s.contract.target
    if not target.minimum <= fb.actual <= target.maximum:
        raise ApiError(422, "validation_error", "the actual value is out of range",
                       {"actual": f"must be a number from {target.minimum:g} to {target.maximum:g}"})
    if not s.issued(fb.prediction_id):
        raise ApiError(404, "unknown_prediction", "no prediction has this id",
                       {"prediction_id": "was not issued by this service"})
    s.predlog.record("feedback", {"prediction_id": fb.prediction_id, "actual": fb.actual, "received_at": time.time(),
                                  "sender_hash": _user_hash(), "address_hash": s.address_hash(_client_address())})
    metrics.FEEDBACK.labels(s.settings.SLOT).inc()
    return jsonify(prediction_id=fb.prediction_id, status="accepted"), 202


@api.get("/schema")
def schema() -> Response:
    return jsonify(schema_document(serving().contract))


@api.get("/model-info")
def model_info() -> Response:
    s = serving()
    m = s.manager.current
    shadow = s.manager.shadow
    return jsonify(slot=s.settings.SLOT, follows=list(s.manager.follow), model=m.describe() if m else None,
                   shadow=shadow.describe() if shadow else None,
                   source=m.source if m else None, loaded_at=m.loaded_at if m else None,
                   compiled=bool(m and m.compiled), last_error=s.manager.last_error,
                   refused_versions=s.manager.refused)


ops = Blueprint("ops", __name__)


@ops.get("/health")
def health() -> Response:
    return jsonify(status="ok", slot=serving().settings.SLOT)


@ops.get("/ready")
def ready() -> tuple[Response, int]:
    s = serving()
    m = s.manager.current
    if m is None:
        return jsonify(status="not_ready", slot=s.settings.SLOT, reason=s.manager.last_error or "starting"), 503
    return jsonify(status="ready", slot=s.settings.SLOT, model=m.describe()), 200


@ops.get("/metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.render(serving().settings.PROMETHEUS_MULTIPROC_DIR)
    return Response(body, content_type=content_type)


@ops.get("/openapi.json")
def openapi() -> Response:
    return jsonify(current_app.extensions["mlstack.openapi"])


def _before() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id(request.headers.get("X-Request-Id"))
    g.model = None


PREDICTION_ENDPOINTS = frozenset({"/predict", "/predict/batch"})


def _after(response: Response) -> Response:
    s = serving()
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    elapsed = time.perf_counter() - g.get("started", 0.0)
    model = g.get("model") or s.manager.current
    version = model.version if model is not None else "none"
    status = response.status_code
    metrics.REQUESTS.labels(s.settings.SLOT, version, endpoint, str(status)).inc()
    metrics.LATENCY.labels(s.settings.SLOT, version, endpoint).observe(elapsed)
    response.headers["X-Model-Variant"] = s.settings.SLOT
    if endpoint in PREDICTION_ENDPOINTS and model is not None and not 400 <= status < 500:
        # the judge's evidence: answers the model is responsible for (bad input is not)
        s.stats.observe(model.version, status >= 500, elapsed * 1000)
    if model is not None:
        response.headers["X-Model-Version"] = model.version
    response.headers["X-Request-Id"] = g.get("request_id", "")
    return response


def _api_error(exc: ApiError | BodyRefused) -> tuple[Response, int]:
    return jsonify(error=exc.error, message=exc.message, fields=exc.fields), exc.status


def _spill_full(exc: SpillFull) -> tuple[Response, int, dict[str, str]]:
    """Not accepted, so nothing is lost: the client may retry once the app database answers."""
    metrics.LOG_REFUSED.labels(serving().settings.SLOT).inc()
    return jsonify(error="prediction_log_full", message=str(exc),
                   fields={"(service)": "the app database is down and the spill is full; retry later"}), 503, \
        {"Retry-After": "30"}


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = exc.code or 500
    fields = {"(body)": f"must be at most {current_app.config['MAX_CONTENT_LENGTH']} bytes"} if code == 413 else {}
    return jsonify(error=(exc.name or "error").lower().replace(" ", "_"), message=exc.description or exc.name,
                   fields=fields), code


def _unexpected(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error")
    return jsonify(error="internal_error", message="an unexpected error occurred; it has been logged",
                   fields={}), 500


def create_app(settings: BackendSettings | None = None, *, start: bool = True) -> Flask:
    """Build a slot's app: settings, contract, model manager, prediction log, routes."""
    from mlstack.db.engine import create_engine
    from mlstack.serving.openapi import build_spec

    settings = settings or load(BackendSettings)
    export_mlflow_client_env(settings)  # a poll against a dead registry must give up in seconds
    contract = get_contract(settings.DATA_CONTRACT)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_BODY_BYTES
    app.json = FastJSON(app)

    shown: list[tuple[str, ...]] = []  # the model-info series this process set to 1

    def on_model_event(kind: str, model: LoadedModel | None, detail: str) -> None:
        if kind == "refused":
            metrics.MODEL_REFUSED.labels(settings.SLOT).inc()
            return
        if model is not None:
            metrics.MODEL_SWAPS.labels(settings.SLOT, model.version).inc()
            for labels in shown:  # Gauge.clear() does not work in multiprocess mode: zero the old series
                metrics.MODEL_INFO.labels(*labels).set(0)
            shown[:] = [(settings.SLOT, model.version, model.alias, str(model.compiled is not None))]
            metrics.MODEL_INFO.labels(*shown[0]).set(1)

    manager = ModelManager(slot=settings.SLOT, model_name=settings.MODEL_NAME,
                           tracking_uri=settings.MLFLOW_TRACKING_URI, contract=contract,
                           cache_dir=settings.MODEL_CACHE_DIR, poll_seconds=settings.MODEL_POLL_SECONDS,
                           fast_path=settings.FAST_PATH, on_event=on_model_event)

    def on_flush(flushed: int, pending: int, spilled: int) -> None:
        metrics.LOG_PENDING.labels(settings.SLOT).set(pending)
        if spilled:
            metrics.LOG_SPILLED.labels(settings.SLOT).inc(spilled)

    predicted, live_error = metrics.value_histograms(contract)
    for counter in (metrics.MODEL_REFUSED, metrics.LOG_SPILLED, metrics.LOG_REFUSED, metrics.FEEDBACK):
        counter.labels(settings.SLOT)  # present at 0 from the start: "none yet" is a value, not "no data"

    def on_written(engine, records) -> None:  # noqa: ANN001 - the flush thread, after a successful write
        ids = [row["prediction_id"] for kind, row in records if kind == "feedback"]
        for variant, version, error in joined_errors(engine, ids):
            live_error.labels(variant, version).observe(abs(error))
            metrics.LIVE_SQUARED_ERROR.labels(variant, version).inc(error * error)

    predlog = PredictionLog(settings.PREDICTION_LOG_DIR, create_engine(settings.APP_DATABASE_URL),
                            flush_seconds=settings.PREDICTION_FLUSH_SECONDS, on_flush=on_flush,
                            max_spill_bytes=settings.PREDICTION_SPILL_MAX_BYTES,
                            on_written=on_written)
    stats = RequestStats(settings.SLOT, settings.STATS_PERIOD_SECONDS)
    predlog.sources.append(lambda final: [("request_stats", row) for row in stats.drain(force=final)])
    state = Serving(settings, contract, manager, predlog, stats, FaultSwitch(settings.FAULT_FILE),
                    settings.PREDICTION_ID_SECRET.get_secret_value().encode(), predicted)
    app.extensions["mlstack"] = state
    app.extensions["mlstack.openapi"] = build_spec(contract, settings.BATCH_MAX_ROWS)

    app.register_blueprint(api)
    app.register_blueprint(ops)
    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(BodyRefused, _api_error)  # an unreadable body: the same JSON error shape
    app.register_error_handler(SpillFull, _spill_full)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    if start:
        predlog.start()
        manager.start()
    return app
