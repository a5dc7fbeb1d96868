"""Record predictions and feedback without blocking requests, and never lose an accepted one.

Each accepted record is appended (one `write`) to this process's current journal segment and
kept in memory. A background thread swaps in a fresh segment every `flush_seconds`, inserts the
batch into the app database and deletes the old segment. If the database is down, the old
segment simply stays on disk: that is the spill. Any process replays spilled segments (its own,
or those of dead workers, found by `flock`) once the database answers; inserts are idempotent
(predictions by id; feedback upserted by prediction id), so a replay twice changes nothing.

Disk budget (`max_spill_bytes`): while the database is down, the spill grows by every accepted
record. Once the journal directory holds the budget, new records are *refused* (`SpillFull`, which
the API answers as a 503 naming the budget) instead of accepted and later dropped: every record a
client was told about stays on disk until the database takes it. Replay is oldest-first (by the
time a segment was opened, across processes), so the database sees records in the order they came.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.schema import feedback, predictions, request_stats

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


class SpillFull(Exception):
    """The database is down and the journal holds its disk budget: refuse, do not accept and drop."""

    def __init__(self, used: int, budget: int, directory: Path) -> None:
        super().__init__(f"the prediction log's spill at {directory} holds {used:,} bytes of its {budget:,}-byte "
                         "budget (PREDICTION_SPILL_MAX_BYTES) while the app database is unreachable")
        self.used, self.budget = used, budget


def _opened_at(path: Path) -> int:
    """A segment's opening time in ns (its name is <pid>-<time_ns>.jsonl); unknown names sort last."""
    try:
        return int(path.stem.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 1 << 63


def journal_bytes(directory: Path) -> int:
    """Bytes held by every segment in the journal directory (all processes)."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return 0
    return total


def _upsert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]], update: list[str]) -> None:
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        _pg_upsert(engine, table, rows, update)
        return
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table)
    key = [c.name for c in table.primary_key.columns]
    stmt = (stmt.on_conflict_do_update(index_elements=key, set_={c: stmt.excluded[c] for c in update})
            if update else stmt.on_conflict_do_nothing(index_elements=key))
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def _pg_upsert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]], update: list[str]) -> None:
    """Insert with psycopg2's execute_values (1,000 rows per statement): ~10x SQLAlchemy's executemany."""
    from psycopg2.extras import execute_values

    columns = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    key = ", ".join(c.name for c in table.primary_key.columns)
    action = ("DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in update)) if update else "DO NOTHING"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES %s ON CONFLICT ({key}) {action}"
    values = [tuple(orjson.dumps(r.get(c)).decode() if c in json_columns else r.get(c) for c in columns)
              for r in rows]
    with engine.begin() as conn:
        execute_values(conn.connection.dbapi_connection.cursor(), sql, values, page_size=1000)


def write_rows(engine: Engine, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Insert journal records [(kind, row)] idempotently, predictions before feedback."""
    columns = [c.name for c in predictions.columns]  # rows journaled before a column existed get None
    preds = [{c: row.get(c) for c in columns} for row in (_decode(r) for k, r in records if k == "prediction")]
    fb_columns = [c.name for c in feedback.columns]
    fbs: dict[str, dict[str, Any]] = {}
    for k, r in records:
        if k == "feedback":
            fbs[r["prediction_id"]] = {c: row.get(c) for row in [_decode(r)] for c in fb_columns}  # last write wins
    _upsert(engine, predictions, preds, update=[])
    _upsert(engine, feedback, list(fbs.values()), update=["actual", "received_at", "sender_hash", "address_hash"])
    _upsert(engine, request_stats, [_decode(r) for k, r in records if k == "request_stats"], update=[])


def joined_errors(engine: Engine, prediction_ids: list[str]) -> list[tuple[str, str, float]]:
    """Return (variant, model_version, prediction − actual) for those ids that have both rows."""
    if not prediction_ids:
        return []
    p, f = predictions.c, feedback.c
    query = (sa.select(p.variant, p.model_version, p.prediction - f.actual)
             .select_from(predictions.join(feedback, f.prediction_id == p.prediction_id))
             .where(p.prediction_id.in_(prediction_ids)))
    with engine.connect() as conn:
        return [(v, m, float(e)) for v, m, e in conn.execute(query)]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    out = dict(row)
    for key in ("created_at", "received_at", "period_start", "period_end"):
        if isinstance(out.get(key), (int, float)):
            out[key] = datetime.fromtimestamp(out[key], UTC)
    return out


class PredictionLog:
    """A journal-backed buffer in front of the app database (one per process)."""

    def __init__(self, directory: Path, engine: Engine, *, flush_seconds: float = 0.5, max_spill_bytes: int | None = None,
                 on_flush: Callable[[int, int, int], None] | None = None,
                 on_written: Callable[[Engine, list[tuple[str, dict[str, Any]]]], None] | None = None) -> None:
        self.directory = directory
        self.engine = engine
        self.flush_seconds = flush_seconds
        self.on_flush = on_flush  # (flushed rows, pending rows, spilled rows) for metrics
        self.on_written = on_written  # (engine, records) after a batch is in the database, for metrics
        self._lock = threading.Lock()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._fd: int | None = None
        self._path: Path | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.spilled_rows = 0
        self.max_spill_bytes = max_spill_bytes  # None: no budget
        self.refusing = False
        self.spill_bytes = 0  # journal size when the database last failed, plus what was written since
        self.db_ok = True
        self.sources: list[Callable[[bool], list[tuple[str, dict[str, Any]]]]] = []  # more records per flush

    # -- request path -------------------------------------------------------------------------

    def record(self, kind: str, row: dict[str, Any], *, budgeted: bool = True) -> None:
        """Journal one record and queue it for the database (a few microseconds).

        `budgeted=False` is for the service's own bookkeeping (request counts), which is never refused."""
        line = _dumps([kind, row])
        with self._lock:
            if budgeted:
                self._within_budget(len(line))
            if self._fd is None:
                self._open_segment()
            os.write(self._fd, line)  # type: ignore[arg-type]
            self._pending.append((kind, row))

    def record_many(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Journal many records as one line ([kind, [row, ...]]): one write, all or nothing."""
        data = _dumps([kind, rows])
        with self._lock:
            self._within_budget(len(data))
            if self._fd is None:
                self._open_segment()
            os.write(self._fd, data)  # type: ignore[arg-type]
            self._pending.extend((kind, r) for r in rows)

    def _within_budget(self, size: int) -> None:
        """Raise SpillFull when the database is down and `size` more bytes would pass the budget."""
        if self.db_ok or self.max_spill_bytes is None:
            return
        if self.spill_bytes + size > self.max_spill_bytes:
            if not self.refusing:
                self.refusing = True
                log.error("prediction log: spill budget full (%d of %d bytes): refusing new records until the "
                          "database answers", self.spill_bytes, self.max_spill_bytes)
            raise SpillFull(self.spill_bytes, self.max_spill_bytes, self.directory)
        self.spill_bytes += size

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- segments -------------------------------------------------------------------------------

    def _open_segment(self) -> None:
        # Created under a name replay ignores, locked, then renamed: a replaying process can never
        # take (and delete) a segment in the instant between its creation and its lock.
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{os.getpid()}-{time.time_ns()}"
        opening = self.directory / f"{stem}.opening"
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held while this process may still append
        self._path = self.directory / f"{stem}{SUFFIX}"
        os.rename(opening, self._path)
        self._fd = fd

    def _swap(self) -> tuple[int | None, Path | None, list[tuple[str, dict[str, Any]]]]:
        with self._lock:
            fd, path, rows = self._fd, self._path, self._pending
            self._fd, self._path, self._pending = None, None, []
        return fd, path, rows

    # -- background flushing --------------------------------------------------------------------

    def flush(self, final: bool = False) -> bool:
        """Write the current batch to the database; keep its segment on disk if that fails."""
        for source in self.sources:  # e.g. request counters whose period is over (all of them if final)
            for kind, row in source(final):
                self.record(kind, row, budgeted=False)
        fd, path, rows = self._swap()
        spilled = 0
        ok = True
        if rows:
            try:
                write_rows(self.engine, rows)
            except Exception as exc:  # noqa: BLE001 - any database failure means "spill"
                ok = False
                spilled = len(rows)
                self.spilled_rows += spilled
                if self.db_ok:
                    log.error("prediction log: database unavailable, %d rows spilled to %s: %s", len(rows), path, exc)
            else:
                os.unlink(path)  # type: ignore[arg-type]
                if self.on_written:
                    try:
                        self.on_written(self.engine, rows)
                    except Exception:  # noqa: BLE001 - metrics must never cost a record
                        log.warning("prediction log: after-write hook failed", exc_info=True)
            finally:
                if fd is not None:
                    os.close(fd)  # releases the lock: the segment is now replayable by anyone
        if ok:
            ok = self.replay()
        if ok and not self.db_ok:
            log.warning("prediction log: database back; spill replayed")
        self.spill_bytes = 0 if ok else journal_bytes(self.directory)  # every process's segments count
        if ok:
            self.refusing = False
        self.db_ok = ok
        if self.on_flush:
            self.on_flush(len(rows) if ok else 0, self.pending, spilled)
        return ok

    def replay(self) -> bool:
        """Insert every unlocked segment in the directory (spills, dead workers); True if all went in."""
        if not self.directory.exists():
            return True
        for path in sorted(self.directory.glob(f"*{SUFFIX}"), key=_opened_at):  # oldest first
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process still owns it
                try:
                    if os.stat(path).st_ino != os.fstat(fd).st_ino:
                        continue
                except FileNotFoundError:
                    continue  # replayed by someone else between listing and locking
                records = _read_segment(path)
                for start in range(0, len(records), 5000):
                    write_rows(self.engine, records[start:start + 5000])
                os.unlink(path)
                log.info("prediction log: replayed %d rows from %s", len(records), path.name)
            except Exception as exc:  # noqa: BLE001
                log.debug("prediction log: replay of %s failed: %s", path, exc)
                return False
            finally:
                os.close(fd)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the flusher must never die
                log.exception("prediction log: flush failed")

    def close(self) -> None:
        """Stop the thread and flush what is left (called on worker exit)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.flush(final=True)


def _dumps(obj: Any) -> bytes:
    """One journal line (numpy scalars as numbers, anything else unknown as text)."""
    return orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _read_segment(path: Path) -> list[tuple[str, dict[str, Any]]]:
    records = []
    with path.open("rb") as fh:
        for line in fh:
            try:
                kind, payload = orjson.loads(line)
            except (ValueError, TypeError):
                log.warning("prediction log: skipping a torn line in %s", path.name)
                continue
            if isinstance(payload, list):  # a batch: [kind, [row, ...]]
                records.extend((kind, row) for row in payload)
            else:
                records.append((kind, payload))
    return records
