"""Backups of the running stack (PostgreSQL databases and the bucket), restored somewhere else and compared."""

from __future__ import annotations

import sqlalchemy as sa

from mlstack.backup import create, restore
from mlstack.settings import StackSettings
from mlstack.storage import list_objects


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def test_a_backup_restores_into_fresh_databases_and_a_fresh_bucket_with_everything(stack, pg_database, tmp_path):
    settings = stack.settings(StackSettings)
    manifest = create(settings, tmp_path / "backup")
    files = {name: e["file"] for name, e in manifest["databases"].items()}
    # the test stack keeps MLflow's users in SQLite and everything else in PostgreSQL
    assert files == {"mlflow": "mlflow.dump", "app": "app.dump", "airflow": "airflow.dump",
                     "mlflow_auth": "mlflow_auth.sqlite"}
    assert manifest["bucket"]["objects"] > 0

    app, mlflow_db = pg_database("restored_app"), pg_database("restored_mlflow")
    done = restore(settings, tmp_path / "backup", databases=("app", "mlflow"),
                   overrides={"app": app, "mlflow": mlflow_db}, bucket_name="restored-bucket")
    assert done["databases"] == ["mlflow", "app"]
    # the events and the registry came back row for row (nothing writes them while the test runs)
    assert _count(app, "model_events") == _count(settings.APP_DATABASE_URL, "model_events") > 0
    assert _count(mlflow_db, "model_versions") == _count(settings.MLFLOW_DATABASE_URL, "model_versions") > 0
    restored = list_objects(settings.model_copy(update={"S3_BUCKET": "restored-bucket"}))
    assert sorted(restored) == sorted(list_objects(settings)) and done["bucket"]["objects"] == len(restored)


def test_a_backup_never_overwrites_an_earlier_one(stack, tmp_path):
    import pytest

    from mlstack.backup import BackupError

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text("{}")
    with pytest.raises(BackupError, match="not empty"):
        create(stack.settings(StackSettings), tmp_path / "old")
