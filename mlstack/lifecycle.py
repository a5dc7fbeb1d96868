"""Archive what expired from the app database to the bucket as Parquet, then delete it (the archive_history DAG).

What expires (LifecycleSettings, .env): predictions with their feedback after RETAIN_PREDICTIONS_DAYS,
request stats after RETAIN_REQUEST_STATS_DAYS, judge ticks that changed nothing (A/B HOLD, guard KEEP,
drift checks that found none) after RETAIN_JUDGE_TICKS_DAYS, Airflow task logs and drift files after
RETAIN_LOGS_DAYS. Promotions, retirements, rollbacks, manual moves, Slack deliveries and the
decisions behind moves stay in the audit trail for good.

Never what a reader still needs: the longest window in the policy file (the judge's windows, the
hold timeout, the drift window and `drift.retrain_days`) is a floor under every retention setting.

The bucket's layout, readable by pandas (`pd.read_parquet("s3://…/archive/predictions/")`) and DuckDB
(`read_parquet('…/archive/predictions/*/*.parquet', hive_partitioning = true)`):

    <ARCHIVE_PREFIX>/<table>/day=YYYY-MM-DD/<HH>-<digest>.parquet

one file per hour of rows (per day for model_events). Feedback lies in its prediction's day (in the day it
arrived when its prediction was archived before it came). JSON columns (features, metrics, details) are
JSON text; times are UTC.

Each window is written, uploaded and then deleted inside one database transaction that reads a snapshot:
rows a slot replays meanwhile with old times are not deleted unseen (the next run takes them), a failed
upload deletes nothing, and the file's name is a digest of the rows' keys, so a run repeated after a
crash between upload and delete overwrites its own file instead of doubling it. Audit events are removed
through the event store, which leaves a signed gap the chain verification steps over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlstack.db.schema import feedback, model_events, predictions, request_stats
from mlstack.settings import LifecycleSettings

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
# Ticks that changed nothing: the decision's action (judge_ab, judge_guard) or no drift found (drift_check).
QUIET = {"judge_ab": {"HOLD"}, "judge_guard": {"KEEP"}}


@dataclass
class TableReport:
    table: str
    cutoff: str  # rows older than this expired (ISO time, UTC)
    retention_days: float
    raised_to_floor: bool = False  # the setting was shorter than what a reader needs
    rows: int = 0
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    skipped_windows: int = 0  # left for the next run (a concurrent update, or the bucket refused)


@dataclass
class Report:
    dry_run: bool
    floor_days: float
    tables: dict[str, TableReport] = field(default_factory=dict)
    log_files_deleted: int = 0
    log_bytes_deleted: int = 0
    chain_ok: bool | None = None
    seconds: float = 0.0
    error: str = ""  # the bucket refused an upload: what was left stays in the database for the next run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def floor_days(policy: Any, drift: Any) -> float:
    """The longest look-back of any reader of these tables, in days (the judge, the guard, the drift monitor)."""
    minutes = max(policy.window_minutes, policy.hold_timeout_minutes,
                  policy.guard.window_minutes + policy.guard.watch_window_minutes, drift.window_minutes,
                  drift.retrain_days * 1440)
    return minutes / 1440


def _cutoff(now: datetime, days: float, floor: float) -> tuple[datetime, bool]:
    return now - timedelta(days=max(days, floor)), days < floor


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _arrow_schema(table: sa.Table) -> Any:
    import pyarrow as pa

    def kind(col: sa.Column) -> Any:
        t = col.type
        if isinstance(t, sa.DateTime):
            return pa.timestamp("us", tz="UTC")
        if isinstance(t, sa.Boolean):
            return pa.bool_()
        if isinstance(t, sa.Integer):
            return pa.int64()
        if isinstance(t, sa.Float):
            return pa.float64()
        return pa.string()  # String, Text, and JSON as JSON text

    return pa.schema([pa.field(c.name, kind(c)) for c in table.columns])


def _columns(table: sa.Table, rows: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for col in table.columns:
        values = [r._mapping[col.name] for r in rows]
        if isinstance(col.type, sa.JSON):
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        elif isinstance(col.type, sa.DateTime):
            values = [None if v is None else _utc(v) for v in values]
        out[col.name] = values
    return out


@dataclass
class _Window:
    """One file's worth of expired rows: how to read them, and how to delete them afterwards."""

    table: sa.Table
    start: datetime
    end: datetime
    select: Any  # a SELECT of `table`'s columns, ordered (None when the caller hands the rows over)
    key: Callable[[Any], str]  # a row's primary key, for the file's digest
    delete: list[Any]  # statements run after the upload, in order, in the same transaction

    def path(self, prefix: str, digest: str) -> str:
        daily = self.end - self.start >= timedelta(days=1)
        name = f"{digest}.parquet" if daily else f"{self.start:%H}-{digest}.parquet"
        return f"{prefix}/{self.table.name}/day={self.start:%Y-%m-%d}/{name}"


class ArchiveError(RuntimeError):
    """The bucket refused an upload; what was not archived stays in the database for the next run."""


class Archiver:
    def __init__(self, settings: LifecycleSettings, engine: Engine, s3: Any = None, *, dry_run: bool = False,
                 now: datetime | None = None, progress: Callable[[str], None] | None = None) -> None:
        from mlstack.monitoring.drift import load_drift_policy
        from mlstack.rollout.policy import load_policy

        self.settings, self.engine, self.dry_run = settings, engine, dry_run
        self.now = now or datetime.now(UTC)
        self.progress = progress or (lambda text: log.info("%s", text))
        self._s3 = s3
        policy, _ = load_policy(settings.JUDGE_POLICY_FILE)
        drift, _ = load_drift_policy(settings.JUDGE_POLICY_FILE)
        self.report = Report(dry_run, floor_days(policy, drift))
        self.pg = engine.dialect.name == "postgresql"

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from mlstack.storage import client

            self._s3 = client(self.settings)
        return self._s3

    def _table(self, name: str, days: float) -> tuple[TableReport, datetime]:
        cutoff, raised = _cutoff(self.now, days, self.report.floor_days)
        if raised:
            log.warning("%s: retention %.3g days is shorter than the policy's longest window (%.3g days); keeping that",
                        name, days, self.report.floor_days)
        rep = TableReport(name, cutoff.isoformat(), max(days, self.report.floor_days), raised)
        self.report.tables[name] = rep
        return rep, cutoff

    # -- the windows of each table -----------------------------------------------------------------

    def _hours(self, column: sa.Column, where: Any, cutoff: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The hours (UTC) before the cutoff that hold rows, oldest first (empty hours are skipped)."""
        after = None
        while True:
            bounds = [where, column < self._bound(cutoff)]
            if after is not None:
                bounds.append(column >= self._bound(after))
            with self.engine.connect() as conn:
                oldest = conn.execute(sa.select(sa.func.min(column)).where(*bounds)).scalar()
            if oldest is None:
                return
            if isinstance(oldest, str):  # SQLite text
                oldest = datetime.fromisoformat(oldest)
            start = _utc(oldest).replace(minute=0, second=0, microsecond=0)
            after = min(start + timedelta(hours=1), cutoff)
            yield start, after

    def _bound(self, value: datetime) -> datetime:
        """A time as the database compares it (SQLite stores naive UTC text)."""
        return value if self.pg else value.replace(tzinfo=None)

    def predictions(self) -> None:
        rep, cutoff = self._table("predictions", self.settings.RETAIN_PREDICTIONS_DAYS)
        fb_rep = TableReport("feedback", rep.cutoff, rep.retention_days, rep.raised_to_floor)
        self.report.tables["feedback"] = fb_rep
        p, f = predictions.c, feedback.c
        for start, end in self._hours(p.created_at, sa.true(), cutoff):
            lo, hi = self._bound(start), self._bound(end)
            in_window = sa.and_(p.created_at >= lo, p.created_at < hi)
            ids = sa.select(p.prediction_id).where(in_window)
            labels = _Window(feedback, start, end,
                             sa.select(*feedback.columns).where(f.prediction_id.in_(ids)).order_by(f.prediction_id),
                             lambda r: r.prediction_id, [feedback.delete().where(f.prediction_id.in_(ids))])
            preds = _Window(predictions, start, end,
                            sa.select(*predictions.columns).where(in_window).order_by(p.created_at, p.prediction_id),
                            lambda r: r.prediction_id, [predictions.delete().where(in_window)])
            self._archive([(labels, fb_rep), (preds, rep)])
        # Labels whose prediction was archived before they came go by the day they arrived.
        orphan = ~sa.exists().where(p.prediction_id == f.prediction_id)
        for start, end in self._hours(f.received_at, orphan, cutoff):
            in_window = sa.and_(f.received_at >= self._bound(start), f.received_at < self._bound(end), orphan)
            self._archive([(_Window(feedback, start, end,
                                    sa.select(*feedback.columns).where(in_window).order_by(f.received_at,
                                                                                           f.prediction_id),
                                    lambda r: r.prediction_id, [feedback.delete().where(in_window)]), fb_rep)])

    def request_stats(self) -> None:
        rep, cutoff = self._table("request_stats", self.settings.RETAIN_REQUEST_STATS_DAYS)
        r = request_stats.c
        for start, end in self._hours(r.period_end, sa.true(), cutoff):
            in_window = sa.and_(r.period_end >= self._bound(start), r.period_end < self._bound(end))
            self._archive([(_Window(request_stats, start, end,
                                    sa.select(*request_stats.columns).where(in_window).order_by(r.period_end, r.id),
                                    lambda row: row.id, [request_stats.delete().where(in_window)]), rep)])

    def judge_ticks(self) -> None:
        """Archive the quiet ticks older than the cutoff (a day per file); the event store removes them."""
        from mlstack.db.events import EventStore

        rep, cutoff = self._table("model_events", self.settings.RETAIN_JUDGE_TICKS_DAYS)
        store = EventStore(self.engine, self.settings.audit_key())
        e = model_events.c
        query = (sa.select(*model_events.columns)
                 .where(e.action.in_([*QUIET, "drift_check"]), e.event_time < self._bound(cutoff)).order_by(e.id))
        days: dict[str, list[Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=5000)):
                if _quiet(row):
                    days.setdefault(f"{_utc(row.event_time):%Y-%m-%d}", []).append(row)
        if days and store.signing_key is None:
            raise ValueError("archiving judge ticks needs AUDIT_SIGNING_KEY in .env (the chain records what was "
                             "removed with a signed gap); set it, or leave RETAIN_JUDGE_TICKS_DAYS long")
        for day, rows in sorted(days.items()):
            if self.report.error:
                rep.skipped_windows += 1
                continue
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            window = _Window(model_events, start, start + timedelta(days=1), None, lambda r: str(r.id), [])
            key, _ = self._write(window, rows)
            if key is None:
                rep.skipped_windows += 1
                continue
            rep.files.append(key)
            rep.rows += len(rows) if self.dry_run else store.remove([r.id for r in rows], f"s3://{self.settings.S3_BUCKET}/{key}")
            self.progress(f"model_events {day}: {len(rows):,} quiet ticks → {key}")
        if not self.dry_run:
            self.report.chain_ok = store.verify(checkpoint=True).ok

    # -- one window: read, write, upload, delete ---------------------------------------------------

    def _archive(self, windows: list[tuple[_Window, TableReport]]) -> None:
        """Archive these windows (read from one snapshot) and delete their rows in one transaction."""
        if self.report.error:  # the bucket refused already: leave the rest for the next run
            for _, rep in windows:
                rep.skipped_windows += 1
            return
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    if self.pg:
                        conn = conn.execution_options(isolation_level="REPEATABLE READ")
                    with conn.begin():
                        done = []
                        for window, rep in windows:
                            key, rows = self._write(window, conn.execute(
                                window.select.execution_options(yield_per=CHUNK_ROWS)))
                            if key is None and rows:
                                for _, skipped in windows:
                                    skipped.skipped_windows += 1
                                raise _Skip
                            done.append((window, rep, key, rows))
                        if not self.dry_run:
                            for window, _, _, rows in done:
                                for statement in window.delete if rows else ():
                                    conn.execute(statement)
                for window, rep, key, rows in done:
                    if rows:
                        rep.rows += rows
                        rep.files.append(key)
                        self.progress(f"{window.table.name} {window.start:%Y-%m-%d %H}:00: {rows:,} rows → {key}")
                return
            except _Skip:
                return
            except sa.exc.OperationalError as exc:  # e.g. a label updated under the snapshot: read again
                if attempt == 2:
                    log.warning("archiving %s from %s: %s; left for the next run", windows[-1][0].table.name,
                                windows[-1][0].start, exc)
                    windows[-1][1].skipped_windows += 1

    def _write(self, window: _Window, rows: Iterable[Any]) -> tuple[str | None, int]:
        """Stream the rows into a Parquet file and upload it; (its key, rows), or (None, rows) on failure."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _arrow_schema(window.table)
        digest = hashlib.sha256()
        count = 0
        with tempfile.TemporaryDirectory(prefix="mlstack-archive-") as tmp:
            path = Path(tmp) / "part.parquet"
            writer = None
            chunk: list[Any] = []

            def flush() -> None:
                nonlocal writer
                if not chunk:
                    return
                if writer is None:
                    writer = pq.ParquetWriter(path, schema, compression="zstd")
                writer.write_table(pa.Table.from_pydict(_columns(window.table, chunk), schema=schema))
                chunk.clear()

            for row in rows:
                digest.update(window.key(row).encode() + b"\n")
                chunk.append(row)
                count += 1
                if len(chunk) >= CHUNK_ROWS:
                    flush()
            flush()
            if writer is None:
                return None, 0
            writer.close()
            key = window.path(self.settings.ARCHIVE_PREFIX.strip("/"), digest.hexdigest()[:16])
            return (key if self._put(path, key, window) else None), count

    def _put(self, path: Path, key: str, window: _Window) -> bool:
        size = path.stat().st_size
        self.report.tables[window.table.name].bytes += size
        if self.dry_run:
            return True
        try:
            self.s3.upload_file(str(path), self.settings.S3_BUCKET, key)
            return True
        except Exception as exc:  # noqa: BLE001 - the bucket is down or refuses: delete nothing, retry next run
            self.report.error = f"could not upload {key} to s3://{self.settings.S3_BUCKET}: {exc}"
            log.error("%s; it and what is left stay in the database for the next run", self.report.error)
            return False

    # -- files ----------------------------------------------------------------------------------

    def files(self) -> None:
        """Delete Airflow task logs and drift reports/retraining files older than RETAIN_LOGS_DAYS."""
        limit = time.time() - self.settings.RETAIN_LOGS_DAYS * 86400
        for folder in filter(None, (airflow_log_dir(), self.settings.DRIFT_WORK_DIR)):
            for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
                for name in filenames:
                    path = Path(dirpath) / name
                    try:
                        info = path.stat()
                        if info.st_mtime < limit:
                            if not self.dry_run:
                                path.unlink()
                            self.report.log_files_deleted += 1
                            self.report.log_bytes_deleted += info.st_size
                    except FileNotFoundError:
                        continue
                for name in dirnames:
                    if not self.dry_run:
                        try:
                            (Path(dirpath) / name).rmdir()  # only when empty
                        except OSError:
                            pass

    def run(self) -> Report:
        started = time.monotonic()
        self.predictions()
        self.request_stats()
        self.judge_ticks()
        self.files()
        self.report.seconds = round(time.monotonic() - started, 2)
        return self.report

    def run_or_raise(self) -> Report:
        """Run; raise ArchiveError (after deleting old files) when the bucket refused: the DAG run fails visibly."""
        report = self.run()
        if report.error:
            raise ArchiveError(f"{report.error}; nothing unarchived was deleted, the next run retries")
        return report


class _Skip(Exception):
    """A window could not be uploaded: nothing of it is deleted."""


def _quiet(row: Any) -> bool:
    details = row.details or {}
    if row.action == "drift_check":
        return not (details.get("result") or {}).get("detected", False)
    return (details.get("decision") or {}).get("action") in QUIET[row.action]


def airflow_log_dir() -> Path | None:
    """Where Airflow writes task logs: its [logging] base_log_folder, by default AIRFLOW_HOME/logs."""
    configured = os.environ.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME")
    return Path(home) / "logs" if home else None


def archive_history(settings: LifecycleSettings | None = None, *, dry_run: bool = False,
                    now: datetime | None = None) -> dict[str, Any]:
    """The archive_history DAG's task: archive and delete what expired; return the report."""
    from mlstack.db.engine import create_engine
    from mlstack.db.migrate import upgrade
    from mlstack.settings import load

    settings = settings or load(LifecycleSettings)
    engine = create_engine(settings.APP_DATABASE_URL)
    try:
        upgrade(engine)
        report = Archiver(settings, engine, dry_run=dry_run, now=now).run_or_raise()
    finally:
        engine.dispose()
    for name, t in report.tables.items():
        log.info("%s: %s rows older than %s %s (%s files, %s bytes)", name, f"{t.rows:,}", t.cutoff,
                 "would be archived" if dry_run else "archived", len(t.files), f"{t.bytes:,}")
    return report.as_dict()
