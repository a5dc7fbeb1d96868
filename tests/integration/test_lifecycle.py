"""Retention on real PostgreSQL (and SQLite) and the stack's S3 server: what expires is archived as
Parquet partitioned by day, readable by pandas, and deleted; what a reader still needs stays."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from mlstack.db.engine import create_engine, ensure_database
from mlstack.db.events import EventStore, ModelEvent
from mlstack.db.migrate import upgrade
from mlstack.db.schema import feedback, model_events, predictions, request_stats
from mlstack.lifecycle import ArchiveError, Archiver, floor_days
from mlstack.settings import LifecycleSettings
from mlstack.storage import client

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, pg_database, tmp_path):
    url = pg_database("mlstack_lifecycle") if request.param == "postgresql" else f"sqlite:///{tmp_path}/app.db"
    ensure_database(url)
    engine = create_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(stack, engine, request):
    prefix = f"test-archive/{request.node.name.replace('[', '-').rstrip(']')}-{datetime.now(UTC):%H%M%S%f}"
    return stack.settings(LifecycleSettings, APP_DATABASE_URL=str(engine.url), ARCHIVE_PREFIX=prefix,
                          RETAIN_PREDICTIONS_DAYS=30, RETAIN_REQUEST_STATS_DAYS=30, RETAIN_JUDGE_TICKS_DAYS=14,
                          AUDIT_SIGNING_KEY=KEY.decode())


def _prediction(pid: str, at: datetime, version: str = "1") -> dict:
    return {"prediction_id": pid, "created_at": at, "variant": "A", "model_name": "house-price",
            "model_version": version, "model_alias": "champion", "user_hash": "u", "request_id": None,
            "features": {"median_income": 3.5, "ocean_proximity": "NEAR BAY"}, "prediction": 200_000.0,
            "latency_ms": 1.5, "shadow_version": None, "shadow_prediction": None}


def _stats(sid: str, end: datetime) -> dict:
    return {"id": sid, "period_start": end - timedelta(seconds=10), "period_end": end, "variant": "A",
            "model_version": "1", "requests": 10, "errors": 0, "over_50_ms": 0, "over_100_ms": 0, "over_250_ms": 0,
            "over_500_ms": 0, "over_1000_ms": 0, "latency_ms_sum": 15.0}


def _fill(engine) -> EventStore:
    """45, 44 and 2 days of history: old predictions with labels, an orphan label, stats, ticks and a move."""
    rows, labels, stats = [], [], []
    for days in (45, 44, 2):
        for i in range(30):
            at = NOW - timedelta(days=days, minutes=3 * i)
            rows.append(_prediction(f"p{days}-{i:02d}", at))
            if i % 3 == 0:
                labels.append({"prediction_id": f"p{days}-{i:02d}", "actual": 150_000.0 + i,
                               "received_at": at + timedelta(minutes=5), "sender_hash": "s", "address_hash": None})
            stats.append(_stats(f"s{days}-{i:02d}", at))
    labels.append({"prediction_id": "gone", "actual": 1.0, "received_at": NOW - timedelta(days=40),
                   "sender_hash": "s", "address_hash": None})  # its prediction was never stored
    with engine.begin() as conn:
        conn.execute(predictions.insert(), rows)
        conn.execute(feedback.insert(), labels)
        conn.execute(request_stats.insert(), stats)
    store = EventStore(engine, KEY)
    for days, action, verdict in [(20, "judge_ab", "HOLD"), (20, "judge_guard", "KEEP"), (19, "judge_ab", "PROMOTE"),
                                  (19, "set_alias", None), (18, "judge_ab", "HOLD"), (1, "judge_ab", "HOLD")]:
        store.append(ModelEvent("t", action, "house-price", f"{action} {verdict}",
                                details={"decision": {"action": verdict}} if verdict else {"decision_event": 3},
                                event_time=NOW - timedelta(days=days)))
    return store


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def _read(settings, keys: list[str]) -> pd.DataFrame:
    s3 = client(settings)
    frames = [pd.read_parquet(io.BytesIO(s3.get_object(Bucket=settings.S3_BUCKET, Key=k)["Body"].read()))
              for k in keys]
    return pd.concat(frames, ignore_index=True)


def test_what_expired_is_archived_by_day_and_deleted_and_what_readers_need_stays(engine, settings):
    store = _fill(engine)
    report = Archiver(settings, engine, now=NOW).run()
    t = report.tables
    assert (t["predictions"].rows, t["feedback"].rows, t["request_stats"].rows, t["model_events"].rows) == (60, 21, 60, 3)
    # what is younger than the retention stays, and so does every move and the decision behind it
    assert _count(engine, predictions) == 30 and _count(engine, feedback) == 10 and _count(engine, request_stats) == 30
    with engine.connect() as conn:
        kept = [(r.action, r.reason) for r in conn.execute(sa.select(model_events).order_by(model_events.c.id))]
    assert kept == [("judge_ab", "judge_ab PROMOTE"), ("set_alias", "set_alias None"), ("judge_ab", "judge_ab HOLD")]
    assert report.chain_ok and store.verify(full=True).ok and store.verify(full=True).archived == 3

    keys = t["predictions"].files
    days = {k.split("/")[-2] for k in keys}
    assert days == {f"day={(NOW - timedelta(days=d)):%Y-%m-%d}" for d in (45, 44)}, keys
    assert all(k.startswith(f"{settings.ARCHIVE_PREFIX}/predictions/day=") for k in keys)
    archived = _read(settings, keys)
    assert len(archived) == 60 and archived["prediction_id"].is_unique
    assert str(archived["created_at"].dt.tz) == "UTC"
    assert archived["created_at"].min() == pd.Timestamp(NOW - timedelta(days=45, minutes=87))
    assert json.loads(archived["features"].iloc[0])["ocean_proximity"] == "NEAR BAY"
    labels = _read(settings, t["feedback"].files)
    assert len(labels) == 21 and "gone" in set(labels["prediction_id"])
    events = _read(settings, t["model_events"].files)
    assert sorted(events["reason"]) == ["judge_ab HOLD", "judge_ab HOLD", "judge_guard KEEP"]
    assert store.archived_in(1) == f"s3://{settings.S3_BUCKET}/{t['model_events'].files[0]}"

    again = Archiver(settings, engine, now=NOW).run()  # nothing left to archive
    assert all(r.rows == 0 for r in again.tables.values())


def test_a_retention_shorter_than_the_policys_windows_keeps_what_the_readers_need(engine, settings):
    _fill(engine)
    short = settings.model_copy(update={"RETAIN_PREDICTIONS_DAYS": 1.0, "RETAIN_JUDGE_TICKS_DAYS": 0.5})
    report = Archiver(short, engine, now=NOW, dry_run=True).run()
    floor = report.floor_days
    assert floor == 7  # the drift monitor's retraining reads 7 days of labelled rows (policy.yaml)
    assert report.tables["predictions"].raised_to_floor and report.tables["model_events"].raised_to_floor
    assert report.tables["predictions"].rows == 60  # the 2-day-old rows are within the floor
    assert _count(engine, predictions) == 90  # a dry run deletes nothing
    assert report.tables["model_events"].rows == 3


def test_nothing_is_deleted_when_the_bucket_refuses(engine, settings):
    _fill(engine)
    from pydantic import SecretStr

    refused = settings.model_copy(update={"S3_SECRET_ACCESS_KEY": SecretStr("wrong")})
    archiver = Archiver(refused, engine, now=NOW)
    with pytest.raises(ArchiveError, match="SignatureDoesNotMatch"):
        archiver.run_or_raise()
    report = archiver.report
    assert all(r.rows == 0 for r in report.tables.values())
    assert report.tables["predictions"].skipped_windows == 6  # 3 hours on each of 2 days; feedback adds the orphan's
    assert report.tables["feedback"].skipped_windows == 7
    assert (_count(engine, predictions), _count(engine, feedback), _count(engine, model_events)) == (90, 31, 6)


def test_the_floor_is_the_longest_window_of_the_policy():
    from mlstack.monitoring.drift import load_drift_policy
    from mlstack.rollout.policy import load_policy

    policy, _ = load_policy()
    drift, _ = load_drift_policy()
    assert floor_days(policy, drift) == max(drift.retrain_days, policy.window_minutes / 1440)
    assert floor_days(policy, drift.__class__(**{**drift.__dict__, "retrain_days": 0})) == pytest.approx(240 / 1440)
