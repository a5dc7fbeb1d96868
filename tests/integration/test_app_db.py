"""The app database on real PostgreSQL (and SQLite): migrations, concurrent appends, the chain."""

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlstack.db.engine import create_engine, ensure_database
from mlstack.db.events import EventStore, ModelEvent
from mlstack.db.migrate import current, head, upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, pg_database, tmp_path):
    url = pg_database("mlstack_events") if request.param == "postgresql" else f"sqlite:///{tmp_path}/app.db"
    assert ensure_database(url) == (request.param == "postgresql")
    engine = create_engine(url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current(engine) == head() == "0008"
    yield EventStore(engine)
    engine.dispose()


def test_concurrent_appends_keep_one_valid_chain(store):
    def worker(n: int) -> None:
        for i in range(10):
            store.append(ModelEvent(f"worker-{n}", "set_alias", "m", f"move {i}", alias="champion",
                                    version_after=str(i), metrics={"rmse": float(i)}))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = store.verify()
    assert check.ok and check.rows == 40


def test_tampering_is_detected(store):
    for i in range(3):
        store.append(ModelEvent("t", "set_alias", "m", f"r{i}", alias="champion", version_after=str(i)))
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_events SET version_after = '9' WHERE id = 2"))
    check = store.verify()
    assert not check.ok and check.broken_id == 2


def test_deleted_row_is_detected(store):
    for i in range(3):
        store.append(ModelEvent("t", "set_alias", "m", f"r{i}", alias="champion", version_after=str(i)))
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_events WHERE id = 2"))
    assert store.verify().broken_id == 3


def _events(store, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.append(ModelEvent("t", "judge_guard", "m", f"tick {i}", metrics={"i": i}))


def test_verification_starts_at_the_last_signed_checkpoint(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 50)
    first = signed.verify(checkpoint=True)
    assert first.ok and (first.rows, first.checked, first.since_checkpoint) == (50, 50, None)
    _events(signed, 3, start=50)
    again = signed.verify(checkpoint=True)
    assert again.ok and (again.rows, again.checked, again.since_checkpoint) == (53, 3, 50)
    assert signed.verify().checked == 0  # nothing new since the checkpoint at #53
    assert signed.verify(full=True).checked == 53


def test_a_checkpoint_does_not_hide_tampering_after_it_or_with_it(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 10)
    assert signed.verify(checkpoint=True).ok
    _events(signed, 5, start=10)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_events SET reason = 'edited' WHERE id = 12"))
    assert signed.verify().broken_id == 12  # after the checkpoint: found reading 5 rows
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_events SET reason = 'tick 11' WHERE id = 12"))
        conn.execute(sa.text("UPDATE model_events SET reason = 'edited' WHERE id = 10"))  # the checkpointed row
    check = signed.verify()
    assert not check.ok and check.broken_id == 10 and check.since_checkpoint is None  # the checkpoint no longer holds


def test_a_forged_checkpoint_is_not_trusted(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 10)
    assert EventStore(store.engine, b"another key, 32 characters long!").verify(checkpoint=True).ok
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_events SET reason = 'edited' WHERE id = 3"))
    check = signed.verify()  # the only checkpoint is signed with another key: read from the first row
    assert not check.ok and check.broken_id == 3 and check.checked == 3
    assert not EventStore(store.engine).verify(checkpoint=True).ok  # no key: never a checkpoint, always from the first


def test_postgres_init_script_is_idempotent(pg_database):
    """postgres/init/01-create-databases.sh, as the postgres image runs it, against the real server."""
    suffix = uuid.uuid4().hex[:8]
    names = {f"{k}_DB_NAME": f"t_{k.lower()}_{suffix}" for k in ("MLFLOW", "MLFLOW_AUTH", "APP", "AIRFLOW")}
    users = {f"{k}_DB_USER": f"u_{k.lower()}_{suffix}" for k in ("MLFLOW", "APP", "AIRFLOW")}
    env = {"PATH": "/usr/bin:/bin", "PGHOST": "127.0.0.1", "POSTGRES_USER": "postgres", **names, **users,
           "MLFLOW_DB_PASSWORD": "p1", "APP_DB_PASSWORD": "p2", "AIRFLOW_DB_PASSWORD": "p3"}
    script = ROOT / "postgres" / "init" / "01-create-databases.sh"
    admin = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):
            result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
        with admin.connect() as conn:
            owners = dict(conn.execute(sa.text(
                "SELECT d.datname, r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                "WHERE d.datname LIKE :p"), {"p": f"%_{suffix}"}).all())
        owner = {**users, "MLFLOW_AUTH_DB_USER": users["MLFLOW_DB_USER"]}  # MLflow's users: MLflow's login
        assert owners == {names[f"{k}_DB_NAME"]: owner[f"{k}_DB_USER"] for k in ("MLFLOW", "MLFLOW_AUTH", "APP", "AIRFLOW")}
    finally:
        with admin.connect() as conn:
            for db in names.values():
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}"')
            for user in users.values():
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{user}"')
        admin.dispose()


def test_archived_stretches_leave_signed_gaps_the_chain_steps_over(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 20)
    assert signed.verify(checkpoint=True).ok  # a checkpoint at #20, the newest
    assert signed.remove([*range(3, 8), 10, 11, 12], "s3://b/archive/a.parquet") == 8
    check = signed.verify(full=True)
    assert check.ok and (check.rows, check.checked, check.archived) == (20, 12, 8)
    assert signed.archived_in(5) == "s3://b/archive/a.parquet" and signed.archived_in(9) is None
    # a later stretch that swallows earlier gaps: the rows of both are counted once
    assert signed.remove([2, 8, 9, 13], "s3://b/archive/b.parquet") == 4
    check = signed.verify(full=True)
    assert check.ok and (check.rows, check.checked, check.archived) == (20, 8, 12)
    assert signed.archived_in(5) == "s3://b/archive/a.parquet" and signed.archived_in(9) == "s3://b/archive/b.parquet"
    _events(signed, 2, start=20)
    assert signed.verify(checkpoint=True).ok and signed.verify(checkpoint=True).rows == 22


def test_the_newest_event_is_never_removed_and_removing_needs_the_key(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 3)
    assert signed.remove([1, 2, 3], "s3://b/x") == 2
    with store.engine.connect() as conn:
        assert [r.id for r in conn.execute(sa.text("SELECT id FROM model_events"))] == [3]
    _events(signed, 1, start=3)  # chains onto #3
    assert signed.verify(full=True).ok
    with pytest.raises(ValueError, match="AUDIT_SIGNING_KEY"):
        EventStore(store.engine).remove([3], "s3://b/x")


def test_a_deletion_with_a_forged_or_foreign_gap_is_detected(store):
    signed = EventStore(store.engine, b"k" * 32)
    _events(signed, 10)
    EventStore(store.engine, b"another key, 32 characters long!").remove([4, 5], "s3://b/x")
    check = signed.verify(full=True)  # the gap is signed with another key: a deletion
    assert not check.ok and check.broken_id == 6
    with store.engine.begin() as conn:  # a gap row written by hand with a made-up signature
        conn.execute(sa.text("UPDATE audit_gaps SET signature = :s"), {"s": "0" * 64})
    assert not signed.verify(full=True).ok
    assert not EventStore(store.engine).verify().ok  # without the key no gap is trusted


def test_the_migrations_create_every_index_the_schema_declares(store):
    """schema.py and the migrations must not drift: an index only one of them names is a missing index."""
    from mlstack.db.schema import metadata

    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        declared = {ix.name for ix in table.indexes}
        built = {ix["name"] for ix in inspector.get_indexes(table.name)}
        assert declared <= built, (table.name, declared - built)


def test_recent_but_the_frequent_kinds_matches_the_plain_filter(store):
    """`recent(exclude=…)` reads each other kind's newest rows from the index; the answer is the filter's."""
    for i in range(60):
        action = ("set_alias", "judge_guard", "judge_ab", "notify", "delete_alias")[i % 5 if i % 7 else 1]
        store.append(ModelEvent("t", action, "m" if i % 3 else "other", f"event {i}"))
    judged = ("judge_ab", "judge_guard", "notify")
    assert store.actions("m") == sorted({e["action"] for e in store.recent("m", limit=1000)})
    for limit in (1, 5, 100):
        expected = [e for e in store.recent("m", limit=1000) if e["action"] not in judged][:limit]
        assert store.recent("m", limit=limit, exclude=judged) == expected
    assert store.recent("m", exclude=("set_alias", "judge_guard", "judge_ab", "notify", "delete_alias")) == []
    assert store.recent("nobody", exclude=judged) == []
