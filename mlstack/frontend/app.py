"""The web frontend: a Flask application factory (gunicorn runs `create_app()`).

Pages: the prediction form built from the API's `/schema`, the result with a form to report the
true value, and the status page (aliases, holdout metrics, the split, what each slot serves, the
audit trail). Everything is rendered on the server and works without JavaScript; the small
script only shows the browser's validation messages next to each field.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from mlstack.contracts import get_contract
from mlstack.frontend.api import ApiClient, ApiUnavailable
from mlstack.frontend.forms import form_fields, initial_values, parse_actual, parse_form
from mlstack.frontend.status import StatusReader
from mlstack.request_body import BodyRefused, request_id, require_form
from mlstack.settings import FrontendSettings, load

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024  # a form post is a few hundred bytes


def _api() -> ApiClient:
    return current_app.extensions["mlstack.api"]


def _status() -> StatusReader:
    return current_app.extensions["mlstack.status"]


def _user_id() -> str:
    """nginx passes the person's sticky id (its cookie); a direct visit gets a one-off id."""
    return request.headers.get("X-User-Id") or g.request_id


def _unavailable(exc: Exception) -> tuple[str, int]:
    log.warning("frontend: %s", exc)
    return render_template("unavailable.html", reason=str(exc)), 503


def _form_page(schema: dict[str, Any], values: dict[str, str], errors: dict[str, str], status: int = 200,
               message: str | None = None) -> tuple[str, int]:
    fields = form_fields(schema)
    return render_template("form.html", schema=schema, fields=fields, values=values, errors=errors,
                           message=message), status


def index() -> tuple[str, int]:
    try:
        schema = _api().schema()
    except ApiUnavailable as exc:
        return _unavailable(exc)
    return _form_page(schema, initial_values(form_fields(schema), schema), {})


def predict() -> tuple[str, int]:
    try:
        schema = _api().schema()
    except ApiUnavailable as exc:
        return _unavailable(exc)
    fields = form_fields(schema)
    values = {f.name: request.form.get(f.name, "") for f in fields}
    record, errors = parse_form(fields, request.form)
    if errors:
        return _form_page(schema, values, errors, 422, f"{len(errors)} field(s) need a change")
    try:
        resp = _api().call("POST", "/predict", json=record, user_id=_user_id(), request_id=g.request_id)
    except ApiUnavailable as exc:
        return _unavailable(exc)
    if not resp.ok:  # the API's own checks (should agree with ours; shown the same way)
        return _form_page(schema, values, resp.fields, 422 if resp.status < 500 else 503, resp.message)
    body = resp.body
    info = _status().version(body["model"]["version"])
    return render_template("result.html", schema=schema, result=body, record=record, fields=fields,
                           info=info, errors={}, actual=""), 200


def feedback() -> tuple[str, int]:
    try:
        schema = _api().schema()
    except ApiUnavailable as exc:
        return _unavailable(exc)
    prediction_id = request.form.get("prediction_id", "").strip()
    text = request.form.get("actual", "")
    if not prediction_id:  # the result page's form always sends it: this post did not come from there
        return render_template("refused.html", message="the form names no prediction",
                               fields={"prediction_id": "is required (the estimate's page sends it)"}), 422
    actual, error = parse_actual(schema["target"], text)
    if error is None:
        try:
            resp = _api().call("POST", "/feedback", json={"prediction_id": prediction_id, "actual": actual},
                               user_id=_user_id(), request_id=g.request_id)
        except ApiUnavailable as exc:
            return _unavailable(exc)
        if resp.ok:
            return render_template("thanks.html", schema=schema, prediction_id=prediction_id, actual=actual), 202
        error = resp.fields.get("actual") or resp.fields.get("prediction_id") or resp.message
        status = 404 if resp.status == 404 else 422
    else:
        status = 422
    return render_template("feedback.html", schema=schema, prediction_id=prediction_id, actual=text,
                           errors={"actual": error}), status


def status_page() -> tuple[str, int]:
    return render_template("status.html", status=_status().read()), 200


def status_json() -> Response:
    return jsonify(_status().read().as_json())


def health() -> Response:
    return jsonify(status="ok", service="frontend")


def _before() -> None:
    g.request_id = request_id(request.headers.get("X-Request-Id"))
    if request.method == "POST":
        require_form(request)  # before Werkzeug parses anything: only a form is read here


def _after(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return response


def _not_found(_exc: Exception) -> tuple[str, int]:
    return render_template("not_found.html"), 404


def _refused(exc: BodyRefused) -> tuple[str, int]:
    return render_template("refused.html", message=exc.message, fields=exc.fields), exc.status


def _http_error(exc: HTTPException) -> tuple[str, int] | HTTPException:
    """A body Werkzeug could not parse (too large, too many parts): the same page, naming the rule."""
    if exc.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return _refused(BodyRefused(413, "payload_too_large", "the submitted form is too large or has too many parts",
                                    f"must be at most {limit} bytes and at most 1000 parts"))
    if exc.code == 400:
        return _refused(BodyRefused(400, "bad_request", "the submitted form cannot be read",
                                    "must be a well-formed form"))
    return exc


def amount_filter(unit: str):  # noqa: ANN201 - a Jinja filter
    """Format values of the target: dollars for USD, else the number and its unit (e.g. "152.3 progression score")."""
    def amount(value: float | None) -> str:
        if value is None:
            return "–"
        if unit == "USD":
            return f"${value:,.0f}"
        return f"{value:,.{0 if abs(value) >= 1000 else 1}f} {unit}".rstrip()
    return amount


def create_app(settings: FrontendSettings | None = None) -> Flask:
    """Build the frontend app; `settings` default to the environment and `.env`."""
    settings = settings or load(FrontendSettings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES
    api = ApiClient(settings.API_BASE_URL, settings.API_TIMEOUT_SECONDS, settings.SCHEMA_CACHE_SECONDS)

    def split() -> int:
        resp = api.call("GET", "/split", timeout=3)
        return int(resp.body["weight_b"])

    app.extensions["mlstack.settings"] = settings
    app.extensions["mlstack.api"] = api
    app.extensions["mlstack.status"] = StatusReader(settings, split)
    contract = get_contract(settings.DATA_CONTRACT)  # the same contract the slots serve (one .env)
    app.jinja_env.filters["amount"] = amount_filter(contract.target.unit)
    app.jinja_env.globals["contract"] = contract
    app.add_url_rule("/", view_func=index, methods=["GET"])
    app.add_url_rule("/predict", view_func=predict, methods=["POST"])
    app.add_url_rule("/feedback", view_func=feedback, methods=["POST"])
    app.add_url_rule("/status", view_func=status_page, methods=["GET"])
    app.add_url_rule("/status.json", view_func=status_json, methods=["GET"])
    app.add_url_rule("/health", view_func=health, methods=["GET"])
    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(BodyRefused, _refused)
    app.register_error_handler(HTTPException, _http_error)
    return app
