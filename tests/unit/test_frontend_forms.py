"""Form fields built from the API's schema, and submitted text parsed back (the server-side checks)."""

import pytest

from mlstack.frontend.forms import form_fields, initial_values, parse_actual, parse_form
from mlstack.serving.schemas import schema_document


@pytest.fixture()
def schema(contract):
    """The document the backend's GET /schema serves."""
    return schema_document(contract)


def _form(contract):
    return {k: "" if v is None else str(v) for k, v in contract.example().items()}


def test_fields_follow_the_contract(schema, contract):
    fields = form_fields(schema)
    assert [f.name for f in fields] == contract.feature_names
    bedrooms = next(f for f in fields if f.name == "total_bedrooms")
    assert not bedrooms.required and bedrooms.step == "1"
    ocean = next(f for f in fields if f.name == "ocean_proximity")
    assert ocean.kind == "category" and "ISLAND" in ocean.categories
    values = initial_values(fields, schema)
    assert values["housing_median_age"] == "29" and values["ocean_proximity"] == "<1H OCEAN"


def test_the_example_parses_to_the_api_record(schema, contract):
    record, errors = parse_form(form_fields(schema), _form(contract))
    assert errors == {} and record == contract.example()
    assert isinstance(record["households"], int) and isinstance(record["median_income"], float)


@pytest.mark.parametrize(("field", "text", "reason"), [
    ("latitude", "99", "must be a number from 32.5 to 42"),
    ("latitude", "", "is required"),
    ("latitude", "north", "must be a number"),
    ("latitude", "nan", "must be a finite number"),
    ("latitude", "inf", "must be a finite number"),
    ("households", "2.5", "must be a whole number"),
    ("households", "0", "must be a whole number from 1 to 50000"),
    ("ocean_proximity", "MOON", "must be one of <1H OCEAN, INLAND, NEAR OCEAN, NEAR BAY, ISLAND"),
])
def test_each_bad_field_gets_its_reason(schema, contract, field, text, reason):
    form = _form(contract)
    form[field] = text
    record, errors = parse_form(form_fields(schema), form)
    assert errors == {field: reason} and field not in record


def test_nullable_field_may_be_empty_and_thousands_separators_are_read(schema, contract):
    form = _form(contract)
    form.update(total_bedrooms=" ", total_rooms="2,127")
    record, errors = parse_form(form_fields(schema), form)
    assert errors == {} and record["total_bedrooms"] is None and record["total_rooms"] == 2127


@pytest.mark.parametrize(("text", "value", "error"), [
    ("287500", 287500.0, None), ("$287,500", 287500.0, None), ("", None, "is required"),
    ("lots", None, "must be a number"), ("0", None, "must be from 1 to 1,000,000"),
    ("2e6", None, "must be from 1 to 1,000,000"), ("nan", None, "must be a finite number"),
])
def test_the_reported_actual_value(schema, text, value, error):
    assert parse_actual(schema["target"], text) == (value, error)


def test_a_frontend_worker_loads_neither_mlflow_nor_the_model_code():
    """A restart's new workers import the app before they serve: what they import is what the restart waits for
    (MLflow alone took 6 of 9 s). The status page reaches the registry through a client it creates when asked."""
    import subprocess
    import sys

    probe = ("import sys, mlstack.frontend.app; "
             "print(sorted(m for m in ('mlflow', 'sklearn', 'numba', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout
