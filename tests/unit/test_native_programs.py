"""Which programs native mode runs, from settings alone (nothing is started)."""

from __future__ import annotations

from pathlib import Path

from mlstack.native.stack import Stack
from mlstack.settings import StackSettings

SECRETS = {"S3_ACCESS_KEY_ID": "k" * 20, "S3_SECRET_ACCESS_KEY": "s" * 40, "MLFLOW_TRACKING_PASSWORD": "p" * 20,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "f" * 32, "AIRFLOW_ADMIN_PASSWORD": "a" * 20,
           "AIRFLOW_JWT_SECRET": "j" * 64, "AIRFLOW_API_SECRET_KEY": "x" * 32}


def settings(tmp_path: Path, **extra: str) -> StackSettings:
    return StackSettings(_env_file=None, MLSTACK_VAR_DIR=tmp_path, **SECRETS, **extra)


def test_without_a_webhook_a_local_slack_sink_runs_and_airflow_and_alertmanager_post_to_it(tmp_path):
    stack = Stack(settings(tmp_path, SLACK_SINK_PORT="8125"))
    programs = {p.name: p for p in stack.programs()}
    assert programs["slack-sink"].command.endswith("-m mlstack.slack_sink")
    assert programs["slack-sink"].environment["SLACK_SINK_PORT"] == "8125"
    assert stack.airflow_env()["SLACK_WEBHOOK_URL"] == "http://127.0.0.1:8125/hooks/local"
    assert programs["alertmanager"].environment["SLACK_WEBHOOK_URL"] == "http://127.0.0.1:8125/hooks/local"
    assert stack.ports()["SLACK_SINK_PORT"] == 8125


def test_with_a_webhook_messages_go_there_and_no_sink_runs(tmp_path):
    stack = Stack(settings(tmp_path, SLACK_WEBHOOK_URL="https://hooks.example.test/T0/B0/x"))
    programs = {p.name: p for p in stack.programs()}
    assert "slack-sink" not in programs and "SLACK_SINK_PORT" not in stack.ports()
    assert stack.airflow_env()["SLACK_WEBHOOK_URL"] == "https://hooks.example.test/T0/B0/x"
    assert programs["alertmanager"].environment["SLACK_WEBHOOK_URL"] == "https://hooks.example.test/T0/B0/x"


def test_editing_env_changes_what_the_services_that_read_it_are_started_with(tmp_path, monkeypatch):
    """supervisord restarts a program whose configuration changed: the .env digest makes an edit count."""
    env = tmp_path / ".env"
    env.write_text("MODEL_NAME=house-price\nAB_WEIGHT_B=10\n")
    monkeypatch.setenv("MLSTACK_ENV_FILE", str(env))
    stack = Stack(settings(tmp_path))

    def digests() -> dict[str, str]:
        return {p.name: p.environment.get("MLSTACK_ENV_DIGEST", "") for p in stack.programs()}

    first = digests()
    assert first["backend-a"] and first["frontend"] and first["airflow-scheduler"]
    env.write_text("MODEL_NAME=house-price\nAB_WEIGHT_B=50\n")  # the split: nginx reloads, nothing restarts
    assert digests() == first
    env.write_text("MODEL_NAME=diabetes-progression\nAB_WEIGHT_B=50\n")
    changed = digests()
    assert changed["backend-a"] != first["backend-a"] and changed["frontend"] != first["frontend"]
