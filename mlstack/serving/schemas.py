"""Build the API's request and response models from the data contract (pydantic).

The same models validate requests and generate the OpenAPI document, so the two cannot drift.
Field-level messages come from the contract ("must be a whole number from 0 to 100").
"""

from __future__ import annotations

import math
from functools import cache
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from mlstack.contract import DataContract, Feature


def _reject_str_and_bool(value: Any) -> Any:
    # JSON strings and booleans are never numbers here, whatever pydantic's lax mode would allow.
    if isinstance(value, (str, bool)):
        raise ValueError("wrong type")
    return value


def _feature_type(feature: Feature) -> Any:
    extra: dict[str, Any] = {"x-label": feature.label}
    if feature.unit:
        extra["x-unit"] = feature.unit
    common = {"title": feature.label, "description": feature.description, "json_schema_extra": extra,
              "examples": [feature.default]}
    if feature.is_numeric:
        base = int if feature.dtype == "int" else float
        # Constraints first, then the before-validator wrapping them (so the JSON schema says
        # minimum/maximum and strings/booleans are refused before any coercion).
        annotated = Annotated[base, Field(ge=feature.minimum, le=feature.maximum, allow_inf_nan=False, **common),
                              BeforeValidator(_reject_str_and_bool)]
    else:
        from typing import Literal

        annotated = Annotated[Literal[feature.categories], Field(**common)]  # type: ignore[valid-type]
    return Optional[annotated] if feature.nullable else annotated  # noqa: UP007 - runtime construction


@cache
def record_model(contract: DataContract) -> type[BaseModel]:
    """Return the model of one feature record: every contract feature, nothing else."""
    fields = {f.name: (_feature_type(f), ...) for f in contract.features}
    return create_model(  # type: ignore[call-overload,no-any-return]
        "Record", __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [contract.example()]}),
        __doc__=f"One record of the {contract.name} contract. {contract.notes}", **fields)


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str


class PredictionResponse(BaseModel):
    prediction_id: str = Field(description="Quote it in POST /feedback to report the true value later.")
    prediction: float
    model: ModelRef
    variant: str = Field(description="The serving slot that answered: A (champion) or B (challenger).")


class RowError(BaseModel):
    row: int
    fields: dict[str, str]


class BatchItem(BaseModel):
    row: int
    prediction_id: str | None = None
    prediction: float | None = None
    fields: dict[str, str] | None = Field(None, description="Per-field errors when this row was invalid.")


class BatchResponse(BaseModel):
    model: ModelRef
    variant: str
    predicted: int
    rejected: int
    results: list[BatchItem]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: Annotated[str, Field(min_length=1, max_length=100)]
    actual: Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_reject_str_and_bool)]


class FeedbackResponse(BaseModel):
    prediction_id: str
    status: str


class ErrorResponse(BaseModel):
    error: str = Field(description="A stable machine-readable code, e.g. validation_error.")
    message: str
    fields: dict[str, str] = Field(default_factory=dict, description="field → what is wrong with it")


@cache
def batch_request_model(contract: DataContract, max_rows: int) -> type[BaseModel]:
    """Return the JSON batch body model: {"records": [...]}, rows validated one by one."""
    return create_model(  # type: ignore[call-overload,no-any-return]
        "BatchRequest", __config__=ConfigDict(extra="forbid"),
        records=(Annotated[list[dict[str, Any]], Field(min_length=1, max_length=max_rows,
                                                       json_schema_extra={"items": {"$ref": "#/components/schemas/Record"}})],
                 ...))


def describe_errors(exc: ValidationError, contract: DataContract | None = None) -> dict[str, str]:
    """Return field → plain-words reason for a pydantic ValidationError, using the contract's rules."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int) or len(err["loc"]) == 1]
        field = ".".join(loc) or "(body)"
        if field in out:
            continue
        kind = err["type"]
        feature = None
        if contract is not None and loc and loc[-1] in {f.name for f in contract.features}:
            feature = contract.feature(loc[-1])
        if kind == "missing":
            out[field] = "is required"
        elif kind == "extra_forbidden":
            out[field] = "is not an accepted field"
        elif feature is not None:
            value = err.get("input")
            if isinstance(value, float) and not math.isfinite(value):
                out[field] = "must be a finite number"
            else:
                out[field] = f"must be {feature.describe_range()}" + (
                    " (or null)" if feature.nullable else "") + f"; got {value!r}"[:80]
        else:
            out[field] = err["msg"]
    return out


def schema_document(contract: DataContract) -> dict[str, Any]:
    """Return what GET /schema serves: fields with types, units, ranges, categories, labels; an example row."""
    c = contract
    fields = [{"name": f.name, "type": {"float": "number", "int": "integer", "category": "string"}[f.dtype],
               "label": f.label, "description": f.description, "unit": f.unit, "minimum": f.minimum,
               "maximum": f.maximum, "categories": list(f.categories) or None, "nullable": f.nullable,
               "default": f.default, "rule": f.describe_range()} for f in c.features]
    return {"contract": c.name, "title": c.title, "notes": c.notes, "data_source": c.data_source,
            "record_label": c.record_label, "fields": fields, "example": c.example(),
            "target": {"name": c.target.name, "label": c.target.label, "unit": c.target.unit,
                       "minimum": c.target.minimum, "maximum": c.target.maximum, "cap": c.target.cap},
            "prediction": c.prediction}
