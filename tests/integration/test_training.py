"""Training runs against the real stack: alias policy, audit trail, and failures that change nothing."""

import socket

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.helpers import registry, state, train_json


def test_better_model_becomes_challenger_and_champion_stays(stack):
    champion = registry(stack).alias_version("champion")
    out = train_json(stack, TRAIN_FAMILIES="linear,random_forest,hist_gradient_boosting", SEARCH_ITERATIONS="2")
    assert out["alias"] == "challenger", out
    assert out["rmse"] <= 48_000, out
    reg = registry(stack)
    assert reg.alias_version("champion") == champion and reg.alias_version("challenger") == out["version"]
    events = reg.events.recent("house-price", limit=2)
    assert [(e["action"], e["alias"], e["version_after"]) for e in reversed(events)] == [
        ("register", None, out["version"]), ("set_alias", "challenger", out["version"])]
    assert reg.events.verify().ok
    tags = MlflowClient(stack.tracking_uri).get_model_version("house-price", out["version"]).tags
    assert tags["model_family"] == "hist_gradient_boosting"
    assert len(tags["data_sha256"]) == 64 and len(tags["git_commit"]) >= 7
    assert float(tags["holdout_rmse"]) == pytest.approx(out["rmse"], rel=1e-6)


def test_worse_model_is_registered_without_alias(stack):
    versions, aliases, n_events = state(stack)
    out = train_json(stack, TRAIN_FAMILIES="linear")
    assert out["alias"] is None and "does not beat champion" in out["reason"]
    after_versions, after_aliases, after_events = state(stack)
    assert after_versions == [*versions, out["version"]]
    assert after_aliases == aliases and after_events == n_events + 1
    (event,) = registry(stack).events.recent("house-price", limit=1)
    assert (event["action"], event["alias"], event["version_after"]) == ("register", None, out["version"])
    assert event["reason"] == out["reason"] and event["details"]["decision"] == "none"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda df: df.drop(columns=["median_income"]), "median_income [missing_column]"),
        (lambda df: df.assign(colour="red"), "colour [unexpected_column]"),
        (lambda df: df.astype({"population": object}).assign(population="many"), "population [dtype]"),
        (lambda df: df.assign(latitude=99.0), "latitude [maximum]"),
        (lambda df: df.iloc[0:0], "[no_rows]"),
    ],
    ids=["missing-column", "extra-column", "wrong-dtype", "out-of-range", "no-rows"],
)
def test_bad_data_is_rejected_and_changes_nothing(stack, sample, tmp_path, mutate, expected):
    before = state(stack)
    path = tmp_path / "bad.csv"
    mutate(sample).to_csv(path, index=False)
    result = stack.run("train", "--quiet", "--data", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert expected in output and "Nothing was registered" in output
    assert state(stack) == before


def test_unreachable_mlflow_names_the_url_and_exits_nonzero(stack):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = stack.run("train", "--quiet", extra_env={"MLFLOW_TRACKING_URI": url})
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 4, output
    assert f"MLflow tracking server at {url} is unreachable after 3 attempt(s)" in output


@pytest.fixture()
def native(stack):
    """The stack's supervisor; S3 is running again (and healthy) after the test."""
    from mlstack.native.stack import Stack
    from mlstack.settings import StackSettings

    handle = Stack(stack.settings(StackSettings))
    yield handle
    handle.ctl("start", "s3")
    handle.wait_healthy(next(p for p in handle.programs() if p.name == "s3"), 60)


def test_s3_down_before_the_run_fails_fast_and_changes_nothing(stack, native):
    before = state(stack)
    native.ctl("stop", "s3")
    result = stack.run("train", "--quiet", extra_env={"TRAIN_FAMILIES": "linear"})
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 4, output
    assert f"MLflow at {stack.tracking_uri} is up but its artifact store does not answer" in output
    assert state(stack) == before


class StopS3At:
    """A progress sink that stops S3 when the pipeline reaches `step`."""

    def __init__(self, native, step: str) -> None:
        self.native, self.step, self.stopped = native, step, False

    def start(self, step, description, total=None):
        if step == self.step:
            self.native.ctl("stop", "s3")
            self.stopped = True

    def advance(self, step, note=""):
        pass

    def finish(self, step, note=""):
        pass


@pytest.mark.parametrize("step", ["log", "register"])
def test_s3_dying_mid_run_changes_nothing(stack, native, step):
    """S3 dies while artifacts are logged, or just before the alias move: no version, alias or event remains."""
    from mlstack.settings import TrainingSettings
    from mlstack.training.pipeline import train

    before = state(stack)
    settings = stack.settings(TrainingSettings, TRAIN_FAMILIES="linear", SEARCH_ITERATIONS=0)
    progress = StopS3At(native, step)
    with pytest.raises(Exception):  # noqa: B017 - MlflowException or MissingArtifacts, depending on the step
        train(settings, actor="test", progress=progress)
    assert progress.stopped
    versions, aliases, n_events = state(stack)
    assert (versions, aliases) == before[:2]
    # A version created and then removed leaves one delete_version event explaining the gap.
    new = registry(stack).events.recent("house-price", limit=n_events - before[2]) if n_events > before[2] else []
    assert [e["action"] for e in new] == (["delete_version"] if step == "register" else [])


def test_failure_after_registering_deletes_the_version(stack, pg_database):
    """The alias move's audit write fails (a trigger refuses it): the version is deleted, and the
    trail says so — register, then delete_version — with the chain intact."""
    import sqlalchemy as sa

    from mlstack.db.engine import create_engine, ensure_database
    from mlstack.db.events import EventStore
    from mlstack.db.migrate import upgrade

    url = pg_database("mlstack_broken")
    ensure_database(url)
    engine = create_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                             "IF NEW.action = 'set_alias' THEN RAISE EXCEPTION 'audit down'; END IF; "
                             "RETURN NEW; END $$ LANGUAGE plpgsql"))
        conn.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON model_events FOR EACH ROW EXECUTE FUNCTION refuse()"))
    result = stack.run("train", "--quiet", extra_env={"TRAIN_FAMILIES": "linear", "MODEL_NAME": "broken-audit",
                                                      "APP_DATABASE_URL": url})
    assert result.returncode != 0
    assert "audit down" in result.stdout + result.stderr
    client = MlflowClient(stack.tracking_uri)
    assert client.search_model_versions("name='broken-audit'") == []
    store = EventStore(engine)
    events = store.recent("broken-audit")
    assert [(e["action"], e["version_before"], e["version_after"]) for e in reversed(events)] == [
        ("register", None, "1"), ("delete_version", "1", None)]
    assert "audit down" in events[0]["reason"] and store.verify().ok
    engine.dispose()
