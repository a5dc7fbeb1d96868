"""Generate the backend's OpenAPI 3.1 document (apispec) from the pydantic validation models."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from pydantic import BaseModel

from mlstack.contract import DataContract
from mlstack.serving.schemas import (
    BatchResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    PredictionResponse,
    record_model,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def build_spec(contract: DataContract, max_rows: int) -> dict[str, Any]:
    """Return the OpenAPI document as a dict."""
    spec = APISpec(title="mlstack inference API", version="1.0.0", openapi_version="3.1.0",
                   info={"description": f"Predictions for the {contract.name} contract. {contract.notes}"})

    def add(model: type[BaseModel], name: str | None = None) -> None:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub in schema.pop("$defs", {}).items():
            if sub_name not in spec.components.schemas:  # shared models (ModelRef) are added once
                spec.components.schema(sub_name, sub)
        spec.components.schema(name or model.__name__, schema)

    add(record_model(contract), "Record")
    for model in (PredictionResponse, BatchResponse, FeedbackRequest, FeedbackResponse, ErrorResponse):
        add(model)
    spec.components.schema("BatchRequest", {
        "type": "object", "additionalProperties": False, "required": ["records"],
        "properties": {"records": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": _ref("Record")}}})

    errors = {str(code): {"description": text, **_json("ErrorResponse")} for code, text in (
        (400, "The body is empty or not JSON/CSV."), (413, "The body or batch is too large."),
        (422, "A field is invalid; `fields` names each one."), (503, "No model is loaded yet."))}
    spec.path(path="/predict", operations={"post": {
        "summary": "Predict one record", "requestBody": {"required": True, **_json("Record")},
        "responses": {"200": {"description": "The prediction", **_json("PredictionResponse")}, **errors}}})
    spec.path(path="/predict/batch", operations={"post": {
        "summary": f"Predict up to {max_rows} records; invalid rows get per-row errors",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("BatchRequest")},
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}}},
        "responses": {"200": {"description": "Predictions in input order", **_json("BatchResponse")}, **errors}}})
    spec.path(path="/feedback", operations={"post": {
        "summary": "Report the true value for an earlier prediction (idempotent)",
        "requestBody": {"required": True, **_json("FeedbackRequest")},
        "responses": {"202": {"description": "Accepted", **_json("FeedbackResponse")},
                      "404": {"description": "Unknown prediction_id", **_json("ErrorResponse")},
                      **{k: v for k, v in errors.items() if k in ("400", "422")}}}})
    for path, summary in (("/schema", "The data contract: fields, types, units, ranges, an example"),
                          ("/model-info", "The model this slot serves"), ("/health", "Liveness (cheap)"),
                          ("/ready", "Readiness: 503 until a model is loaded")):
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object"}}}}}
        if path == "/ready":
            responses["503"] = {"description": "Not ready", "content": {"application/json": {
                "schema": {"type": "object"}}}}
        spec.path(path=path, operations={"get": {"summary": summary, "responses": responses}})
    return spec.to_dict()
