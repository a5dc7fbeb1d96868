import pytest
from pydantic import ValidationError

from mlstack.settings import (BackendSettings, FrontendSettings, RolloutSettings, SlackSinkSettings, StackSettings,
                              TrainingSettings, normalize_database_url)

SECRETS = {"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s", "AIRFLOW_ADMIN_PASSWORD": "p",
           "AIRFLOW_JWT_SECRET": "j" * 64, "AIRFLOW_API_SECRET_KEY": "a", "MLFLOW_TRACKING_PASSWORD": "m" * 16,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "f" * 32}


def test_postgres_urls_use_psycopg2():
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_embedded_defaults_live_under_the_var_dir(tmp_path):
    s = StackSettings(_env_file=None, MLSTACK_VAR_DIR=tmp_path, **SECRETS)
    assert s.MLFLOW_DATABASE_URL == f"sqlite:///{tmp_path}/db/mlflow.db"
    assert s.APP_DATABASE_URL == f"sqlite:///{tmp_path}/db/app.db"
    assert s.S3_ENDPOINT_URL == "http://127.0.0.1:9000"


def test_secrets_are_required_and_never_defaulted():
    with pytest.raises(ValidationError) as info:
        StackSettings(_env_file=None)
    text = str(info.value)
    assert "S3_ACCESS_KEY_ID" in text and "S3_SECRET_ACCESS_KEY" in text
    s3 = {"S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"}
    with pytest.raises(ValidationError, match="MLFLOW_TRACKING_PASSWORD .* must be set"):
        StackSettings(_env_file=None, **{**SECRETS, "MLFLOW_TRACKING_PASSWORD": None})
    with pytest.raises(ValidationError, match="at least 12 characters"):
        StackSettings(_env_file=None, **{**SECRETS, "MLFLOW_TRACKING_PASSWORD": "short"})
    s3 |= {"MLFLOW_TRACKING_PASSWORD": "m" * 16, "MLFLOW_FLASK_SERVER_SECRET_KEY": "f" * 32}
    with pytest.raises(ValidationError, match="AIRFLOW_ADMIN_PASSWORD, AIRFLOW_JWT_SECRET, AIRFLOW_API_SECRET_KEY"):
        StackSettings(_env_file=None, **s3)
    assert StackSettings(_env_file=None, AIRFLOW_ENABLED=False, **s3).AIRFLOW_ENABLED is False
    with pytest.raises(ValidationError, match="at least 64"):
        StackSettings(_env_file=None, **{**SECRETS, "AIRFLOW_JWT_SECRET": "short"})


def test_port_rules():
    with pytest.raises(ValidationError, match="MLFLOW_PORT must be between 1 and 32767"):
        TrainingSettings(_env_file=None, MLFLOW_PORT=40000)
    with pytest.raises(ValidationError, match="gRPC"):
        StackSettings(_env_file=None, S3_PORT=25000, **SECRETS)
    with pytest.raises(ValidationError, match="clashes"):
        StackSettings(_env_file=None, S3_PORT=9333, **SECRETS)


def test_same_database_for_mlflow_and_app_is_refused():
    with pytest.raises(ValidationError, match="different databases"):
        StackSettings(_env_file=None, MLFLOW_DATABASE_URL="postgresql://p@h/x", APP_DATABASE_URL="postgresql://p@h/x",
                      **SECRETS)


def test_families_are_checked():
    assert TrainingSettings(_env_file=None, TRAIN_FAMILIES="linear").families == ["linear"]
    with pytest.raises(ValidationError, match="TRAIN_FAMILIES"):
        TrainingSettings(_env_file=None, TRAIN_FAMILIES="linear,xgboost")


def test_env_file_and_environment(tmp_path, monkeypatch):
    from mlstack.settings import load

    env = tmp_path / "x.env"
    env.write_text("MODEL_NAME=from-file\nSPLIT_SEED=\nMLFLOW_PORT=5100\n")
    monkeypatch.setenv("MLSTACK_ENV_FILE", str(env))
    monkeypatch.setenv("MLFLOW_PORT", "5200")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow's set_tracking_uri exports it in-process
    s = load(TrainingSettings)
    assert s.MODEL_NAME == "from-file"  # from the file
    assert s.SPLIT_SEED == 42  # empty means default
    assert s.MLFLOW_TRACKING_URI == "http://127.0.0.1:5200"  # the environment wins


def test_env_example_documents_every_setting():
    """Every settings field appears in .env.example (the complete contract)."""
    from pathlib import Path

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    names = (set(TrainingSettings.model_fields) | set(StackSettings.model_fields) | set(BackendSettings.model_fields)
             | set(FrontendSettings.model_fields) | set(RolloutSettings.model_fields)
             | set(SlackSinkSettings.model_fields))
    missing = sorted(n for n in names if f"\n{n}=" not in example)
    assert missing == []


def test_mlflow_login_reaches_the_mlflow_client_through_the_environment(monkeypatch):
    import os

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    TrainingSettings(_env_file=None, MLFLOW_TRACKING_USERNAME="svc", MLFLOW_TRACKING_PASSWORD="p" * 16)
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc" and os.environ["MLFLOW_TRACKING_PASSWORD"] == "p" * 16


def test_no_validator_of_a_settings_class_hides_another_of_the_same_name():
    """Two bases with a validator of one name: the class runs only one (S3_ENDPOINT_URL stayed empty that way)."""
    import inspect

    from pydantic_settings import BaseSettings

    import mlstack.settings as module

    for _, cls in inspect.getmembers(module, inspect.isclass):
        if not issubclass(cls, BaseSettings) or cls.__module__ != module.__name__:
            continue
        owners: dict[str, str] = {}
        for base in cls.__mro__:
            validators = getattr(base, "__pydantic_decorators__", None)
            for name in (validators.model_validators if validators else {}):
                if name in vars(base):
                    assert owners.setdefault(name, base.__name__) == base.__name__, \
                        f"{cls.__name__}: {owners[name]}.{name} hides {base.__name__}.{name}"


def test_the_archive_task_finds_the_bucket_from_the_port_alone(monkeypatch):
    from mlstack.settings import LifecycleSettings, load

    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    s = load(LifecycleSettings, S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s", S3_PORT=9123, PREDICTION_ID_SECRET="x" * 32)
    assert s.S3_ENDPOINT_URL == "http://127.0.0.1:9123"


def test_pools_sized_auto_follow_the_cores_and_a_number_overrides(monkeypatch):
    import mlstack.settings as settings

    for n, expected in ((1, (1, 1, 2, 1)), (2, (2, 1, 2, 1)), (8, (4, 4, 8, 2)), (64, (4, 4, 8, 4))):
        monkeypatch.setattr(settings, "cores", lambda n=n: n)
        stack = StackSettings(_env_file=None, AIRFLOW_PARALLELISM="auto", **SECRETS)  # "auto" as .env writes it
        sized = (BackendSettings(_env_file=None, PREDICTION_ID_SECRET="x" * 32).BACKEND_WORKERS,
                 FrontendSettings(_env_file=None).FRONTEND_WORKERS, stack.AIRFLOW_PARALLELISM, stack.MLFLOW_WORKERS)
        assert sized == expected, n
    assert StackSettings(_env_file=None, AIRFLOW_PARALLELISM="3", **SECRETS).AIRFLOW_PARALLELISM == 3
    with pytest.raises(ValidationError, match="BACKEND_WORKERS"):
        BackendSettings(_env_file=None, PREDICTION_ID_SECRET="x" * 32, BACKEND_WORKERS="many")
    with pytest.raises(ValidationError, match="BACKEND_WORKERS"):
        BackendSettings(_env_file=None, PREDICTION_ID_SECRET="x" * 32, BACKEND_WORKERS=0)


def test_start_scripts_size_pools_by_the_same_rule():
    """The shell entrypoints (Airflow, MLflow) ask the settings module, so `auto` means one thing everywhere."""
    import subprocess
    import sys

    from mlstack.settings import POOLS, cores

    out = subprocess.run([sys.executable, "-m", "mlstack.settings", "pool", "AIRFLOW_PARALLELISM", "auto"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout) == POOLS["AIRFLOW_PARALLELISM"](cores())
    out = subprocess.run([sys.executable, "-m", "mlstack.settings", "pool", "MLFLOW_WORKERS", "3"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3" and not out.stderr
    bad = subprocess.run([sys.executable, "-m", "mlstack.settings", "pool", "NOPE"], capture_output=True, text=True)
    assert bad.returncode != 0 and "usage" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "mlstack.settings", "pool", "MLFLOW_WORKERS", "0"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "MLFLOW_WORKERS: Input should be greater than or equal to 1" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "mlstack.settings", "pool", "MLFLOW_WORKERS", "9"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "less than or equal to 8" in bad.stderr  # the setting's own bound
