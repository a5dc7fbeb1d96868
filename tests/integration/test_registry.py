"""The one alias-move path: artifact checks, previous_champion, dry runs, the audit trail."""

import pytest
from mlflow.exceptions import MlflowException

from mlstack.registry.aliases import MissingArtifacts, move_alias
from mlstack.registry.policy import set_champion
from mlstack.settings import StackSettings
from mlstack.storage import client as s3_client
from tests.integration.helpers import registry, tiny_version


def test_set_champion_keeps_previous_champion_and_clears_promoted_challenger(stack, contract, sample):
    name, v1 = tiny_version(stack, contract, sample)
    _, v2 = tiny_version(stack, contract, sample, name)
    reg = registry(stack, name)
    set_champion(reg, v1, actor="test", reason="first", metrics={})
    move_alias(reg, "challenger", v2, actor="test", reason="better", metrics={"rmse": 1.0})
    rows = set_champion(reg, v2, actor="test", reason="won the A/B test", metrics={"rmse": 1.0})
    assert reg.aliases() == {"champion": v2, "previous_champion": v1}
    assert [(r["alias"], r["version_before"], r["version_after"]) for r in rows] == [
        ("champion", v1, v2), ("previous_champion", None, v1), ("challenger", v2, None)]
    assert set_champion(reg, v2, actor="test", reason="again", metrics={}) == []  # idempotent
    assert reg.events.verify().ok


def test_alias_to_version_with_missing_artifacts_is_refused(stack, contract, sample):
    name, v1 = tiny_version(stack, contract, sample)
    reg = registry(stack, name)
    uri = reg.client.get_model_version_download_uri(name, v1)  # mlflow-artifacts:/<exp>/models/m-.../artifacts
    prefix = "mlflow/" + uri.split(":/", 1)[1].strip("/")
    settings = stack.settings(StackSettings)
    s3 = s3_client(settings)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.S3_BUCKET, Prefix=prefix).get("Contents", [])]
    assert keys, prefix
    for key in keys:
        s3.delete_object(Bucket=settings.S3_BUCKET, Key=key)
    events_before = len(reg.events.recent(name))
    with pytest.raises(MissingArtifacts, match="artifacts are missing"):
        move_alias(reg, "champion", v1, actor="test", reason="should fail", metrics={})
    assert reg.aliases() == {}
    assert len(reg.events.recent(name)) == events_before


def test_dry_run_records_but_moves_nothing(stack, contract, sample):
    name, v1 = tiny_version(stack, contract, sample)
    reg = registry(stack, name)
    row = move_alias(reg, "champion", v1, actor="test", reason="what if", metrics={}, dry_run=True)
    assert row["dry_run"] is True and reg.aliases() == {}


def test_unknown_version_moves_nothing_and_records_nothing(stack, contract, sample):
    name, _ = tiny_version(stack, contract, sample)
    reg = registry(stack, name)
    with pytest.raises((MlflowException, MissingArtifacts)):
        move_alias(reg, "champion", "999", actor="test", reason="no such version", metrics={})
    assert reg.aliases() == {} and reg.events.recent(name) == []
