"""Turn the API's `/schema` into form fields, and submitted form text back into a record.

Pure functions over the schema document (no Flask, no I/O): the browser checks the same rules
through the HTML attributes these fields render (required, min, max, step, options), and the
server checks them again here before calling the API, which checks them a third time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FormField:
    """One input of the prediction form, as the template renders it."""

    name: str
    label: str
    description: str
    kind: str  # "number", "integer" or "category"
    unit: str | None
    minimum: float | None
    maximum: float | None
    categories: tuple[str, ...]
    required: bool
    default: Any
    rule: str  # the allowed values in words ("a whole number from 0 to 100"), shown under the input

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"

    def value_text(self, value: Any) -> str:
        """Return the text an input shows for `value` (integers without a trailing .0)."""
        if value is None:
            return ""
        if self.kind == "integer" and isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def parse(self, text: str | None) -> tuple[Any, str | None]:
        """Return (value, None) or (None, the reason the text is refused)."""
        text = (text or "").strip()
        if not text:
            return (None, None) if not self.required else (None, "is required")
        if self.kind == "category":
            if text not in self.categories:
                return None, "must be one of " + ", ".join(self.categories)
            return text, None
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            return None, "must be a whole number" if self.kind == "integer" else "must be a number"
        if not math.isfinite(number):
            return None, "must be a finite number"
        if self.kind == "integer":
            if not number.is_integer():
                return None, "must be a whole number"
            number = int(number)
        if (self.minimum is not None and number < self.minimum) or (
                self.maximum is not None and number > self.maximum):
            return None, f"must be {self.rule}"
        return number, None


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """Return the form's fields, in the schema's order."""
    kinds = {"number": "number", "integer": "integer", "string": "category"}
    return [
        FormField(name=f["name"], label=f["label"], description=f.get("description") or "",
                  kind=kinds[f["type"]], unit=f.get("unit"), minimum=f.get("minimum"), maximum=f.get("maximum"),
                  categories=tuple(f.get("categories") or ()), required=not f.get("nullable", False),
                  default=f.get("default"), rule=f.get("rule") or "")
        for f in schema["fields"]
    ]


def parse_form(fields: list[FormField], form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (record, errors by field name); the record holds every field that parsed."""
    record: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        value, error = f.parse(form.get(f.name))
        if error:
            errors[f.name] = error
        else:
            record[f.name] = value
    return record, errors


def initial_values(fields: list[FormField], schema: dict[str, Any]) -> dict[str, str]:
    """Return the text each input starts with: the schema's example row, else each field's default."""
    example = schema.get("example") or {}
    return {f.name: f.value_text(example.get(f.name, f.default)) for f in fields}


def parse_actual(target: dict[str, Any], text: str | None) -> tuple[float | None, str | None]:
    """Parse the true value a person reports for a prediction."""
    text = (text or "").strip().replace(",", "").lstrip("$")
    if not text:
        return None, "is required"
    try:
        value = float(text)
    except ValueError:
        return None, "must be a number"
    if not math.isfinite(value):
        return None, "must be a finite number"
    low, high = target.get("minimum"), target.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        return None, f"must be from {low:,.0f} to {high:,.0f}"
    return value, None
