"""Bring your own data on the real stack: the diabetes contract trains, registers and serves."""

from __future__ import annotations

import uuid

import pytest

from mlstack.contracts import get_contract
from mlstack.settings import BackendSettings
from tests.integration.helpers import train_json

DIABETES = {"DATA_CONTRACT": "diabetes", "DATA_PATH": "data/diabetes.csv", "MLFLOW_EXPERIMENT_NAME": "diabetes-test",
            "TRAIN_FAMILIES": "linear,hist_gradient_boosting", "SEARCH_ITERATIONS": "2"}


@pytest.fixture(scope="module")
def trained(stack):
    name = f"diabetes-{uuid.uuid4().hex[:6]}"
    return name, train_json(stack, MODEL_NAME=name, **DIABETES)


def test_validate_accepts_the_file_under_its_contract_only(stack):
    ok = stack.run("validate", "data/diabetes.csv", extra_env={"DATA_CONTRACT": "diabetes"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = stack.run("validate", "data/diabetes.csv")  # the default contract: California housing
    assert wrong.returncode == 3 and "longitude" in wrong.stdout + wrong.stderr


def test_the_first_diabetes_model_is_champion_with_holdout_metrics(trained):
    _, result = trained
    assert result["alias"] == "champion" and result["rmse"] < 70, result  # the target's standard deviation is 77


def test_a_slot_serves_the_new_contract_and_names_its_fields_in_errors(stack, trained, tmp_path):
    from mlstack.serving.app import create_app

    name, result = trained
    contract = get_contract("diabetes")
    settings = stack.settings(BackendSettings, MODEL_NAME=name, DATA_CONTRACT="diabetes", SLOT="A",
                              PREDICTION_ID_SECRET="byod-test-secret-0123456789", MODEL_CACHE_DIR=tmp_path / "cache",
                              PREDICTION_LOG_DIR=tmp_path / "log", MLFLOW_HTTP_REQUEST_MAX_RETRIES=0)
    app = create_app(settings)
    try:
        client = app.test_client()
        schema = client.get("/schema").json
        assert [f["name"] for f in schema["fields"]] == contract.feature_names
        assert schema["target"]["unit"] == "progression score"
        answer = client.post("/predict", json=contract.example()).json
        assert answer["model"] == {"name": name, "version": str(result["version"]), "alias": "champion"}
        assert 25 <= answer["prediction"] <= 346
        bad = client.post("/predict", json={**contract.example(), "bmi": 500})
        assert bad.status_code in (400, 422) and "bmi" in bad.json["fields"], bad.json
    finally:
        app.extensions["mlstack"].close()
