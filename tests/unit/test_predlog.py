"""The prediction log's journal: spill while the database is down, replay by any process, lose nothing."""

from __future__ import annotations

import fcntl
import os
import time

import sqlalchemy as sa

from mlstack.db.engine import create_engine
from mlstack.db.schema import feedback, metadata, predictions
from mlstack.serving.predlog import SUFFIX, PredictionLog


def _row(i: int) -> dict:
    return {"prediction_id": f"p{i:05d}", "created_at": time.time(), "variant": "A", "model_name": "m",
            "model_version": "1", "model_alias": "champion", "user_hash": None, "request_id": f"r{i}",
            "features": {"x": i}, "prediction": float(i), "latency_ms": 0.1}


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _db(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)
    return engine


def test_rows_spill_while_the_database_is_down_and_another_process_replays_them(tmp_path):
    journal = tmp_path / "journal"
    down = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'app.db'}")  # cannot connect
    spilling = PredictionLog(journal, down)
    for i in range(30):
        spilling.record("prediction", _row(i))
    spilling.record_many("prediction", [_row(i) for i in range(30, 40)])  # a batch is one journal line
    spilling.record("feedback", {"prediction_id": "p00003", "actual": 1.0, "received_at": time.time()})
    assert spilling.flush() is False
    assert spilling.spilled_rows == 41 and len(list(journal.glob(f"*{SUFFIX}"))) == 1

    engine = _db(tmp_path)
    other = PredictionLog(journal, engine)
    other.record("prediction", _row(99))
    assert other.flush() is True
    assert _count(engine, predictions) == 41 and _count(engine, feedback) == 1
    assert list(journal.iterdir()) == []
    assert other.replay() is True and _count(engine, predictions) == 41  # a second replay changes nothing


def test_replay_skips_segments_a_live_process_holds_and_segments_being_opened(tmp_path):
    journal = tmp_path / "journal"
    engine = _db(tmp_path)
    owner = PredictionLog(journal, engine)
    owner.record("prediction", _row(1))  # owner's current segment: locked
    opening = journal / f"{os.getpid()}-1.opening"
    opening.write_text('["prediction", {}]\n')  # a segment in the instant before its lock is taken

    replayer = PredictionLog(journal, engine)
    assert replayer.replay() is True
    assert _count(engine, predictions) == 0 and opening.exists()
    assert len(list(journal.glob(f"*{SUFFIX}"))) == 1
    owner.flush()
    assert _count(engine, predictions) == 1


def test_a_new_segment_is_locked_before_replay_can_see_it(tmp_path, monkeypatch):
    """Replay must never take a segment between its creation and its owner's lock (it would delete it)."""
    import mlstack.serving.predlog as predlog

    journal = tmp_path / "journal"
    visible_when_locked = []
    real_flock = fcntl.flock

    def flock(fd, op):  # noqa: ANN001, ANN202
        if op == fcntl.LOCK_EX:  # the owner's blocking lock in _open_segment
            visible_when_locked.append(sorted(p.name for p in journal.glob(f"*{SUFFIX}")))
        return real_flock(fd, op)

    monkeypatch.setattr(predlog.fcntl, "flock", flock)
    log = PredictionLog(journal, _db(tmp_path))
    log.record("prediction", _row(1))
    assert visible_when_locked == [[]]
    assert len(list(journal.glob(f"*{SUFFIX}"))) == 1


def test_a_full_spill_refuses_new_records_and_keeps_every_accepted_one(tmp_path, caplog):
    from mlstack.serving import predlog as module

    journal = tmp_path / "journal"
    down = sa.create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'app.db'}")
    log = PredictionLog(journal, down, max_spill_bytes=20_000)
    log.record("prediction", _row(0))
    assert log.flush() is False and 0 < log.spill_bytes < 20_000  # the database is down: spilling
    accepted, refused = [0], 0
    for i in range(1, 400):
        try:
            log.record("prediction", _row(i))
            accepted.append(i)
        except module.SpillFull as exc:
            refused += 1
            assert "PREDICTION_SPILL_MAX_BYTES" in str(exc) and exc.budget == 20_000
        if i % 50 == 0:
            log.flush()  # re-measures the directory: all processes' segments count
    assert refused > 0 and 50 < len(accepted) < 400
    assert module.journal_bytes(journal) <= 20_000
    assert sum(1 for r in caplog.records if "spill budget full" in r.message) == 1  # said once, not per request
    engine = _db(tmp_path)  # the database is back: every accepted row arrives, no refused one
    log.engine = engine
    assert log.flush() is True and log.spill_bytes == 0
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(sa.select(predictions.c.prediction_id))}
    assert ids == {f"p{i:05d}" for i in accepted}
    log.record("prediction", _row(1000))  # and records are accepted again


def test_replay_is_oldest_first_across_processes(tmp_path, monkeypatch):
    from mlstack.serving import predlog as module

    journal = tmp_path / "journal"
    journal.mkdir()
    for name, i in (("900-300", 3), ("1000-100", 1), ("20-200", 2)):  # pid-time_ns: pids do not sort by age
        (journal / f"{name}{SUFFIX}").write_bytes(module._dumps(["prediction", _row(i)]))
    order = []
    monkeypatch.setattr(module, "write_rows", lambda engine, records: order.extend(r["prediction_id"] for _, r in records))
    assert PredictionLog(journal, _db(tmp_path)).replay() is True
    assert order == ["p00001", "p00002", "p00003"]
