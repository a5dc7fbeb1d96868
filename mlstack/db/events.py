"""Append model events to the hash-chained audit trail, read them back and verify the chain.

Each row stores the sha256 of the previous row (`prev_hash`) and its own (`row_hash`, over its
content and `prev_hash`), so an edited, deleted or reordered row breaks `verify()`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlstack.db.schema import model_events

GENESIS = "0" * 64


@dataclass(frozen=True)
class ModelEvent:
    """One decision about a model: what moved, from which version to which, and why."""

    actor: str
    action: str
    model_name: str
    reason: str
    alias: str | None = None
    version_before: str | None = None
    version_after: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    event_time: datetime | None = None


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so hashes are computed on what the database will return."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """Return the sha256 of a row's content chained to `prev_hash`."""
    payload = {
        "prev_hash": prev_hash,
        "event_time": _canonical_time(row["event_time"]),
        **{k: row[k] for k in ("actor", "action", "model_name", "alias", "version_before", "version_after",
                               "reason", "dry_run")},
        "metrics": _jsonable(row["metrics"]),
        "details": _jsonable(row["details"]),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain: ok, rows checked, and the first broken row if any."""

    ok: bool
    rows: int
    broken_id: int | None = None
    problem: str = ""


class EventStore:
    """The `model_events` table of one app database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _lock(self, conn: Connection) -> None:
        # Serialize appenders so two writers cannot both chain onto the same last row.
        # (SQLite is already serialized by BEGIN IMMEDIATE, see mlstack.db.engine.)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE model_events IN SHARE ROW EXCLUSIVE MODE")

    @contextmanager
    def appending(self, event: ModelEvent) -> Iterator[dict[str, Any]]:
        """Insert `event` in a transaction that commits only if the with-block succeeds.

        Callers do the real action (e.g. an alias move) inside the block, so an action that
        fails leaves no event, and an event that cannot be written is known before acting.
        """
        with self.engine.begin() as conn:
            self._lock(conn)
            last = conn.execute(
                sa.select(model_events.c.row_hash).order_by(model_events.c.id.desc()).limit(1)
            ).scalar()
            row = asdict(event)
            row["event_time"] = (event.event_time or datetime.now(UTC)).astimezone(UTC)
            row["metrics"] = _jsonable(event.metrics)
            row["details"] = _jsonable(event.details)
            row["prev_hash"] = last or GENESIS
            row["row_hash"] = row_hash(row["prev_hash"], row)
            row["id"] = conn.execute(model_events.insert().values(**row)).inserted_primary_key[0]
            yield row

    def append(self, event: ModelEvent) -> dict[str, Any]:
        """Insert `event` and return the stored row."""
        with self.appending(event) as row:
            return row

    def recent(self, model_name: str | None = None, limit: int = 20, *, actions: tuple[str, ...] = (),
               exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Return the newest events first (only `actions`, or all but `exclude`, when given)."""
        query = sa.select(model_events).order_by(model_events.c.id.desc()).limit(limit)
        if model_name:
            query = query.where(model_events.c.model_name == model_name)
        if actions:
            query = query.where(model_events.c.action.in_(actions))
        if exclude:
            query = query.where(model_events.c.action.not_in(exclude))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def verify(self) -> ChainCheck:
        """Recompute every row's hash in id order; report the first row that does not match."""
        prev = GENESIS
        count = 0
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(model_events).order_by(model_events.c.id)):
                row = dict(r._mapping)
                if row["event_time"].tzinfo is None:  # SQLite returns naive UTC
                    row["event_time"] = row["event_time"].replace(tzinfo=UTC)
                count += 1
                if row["prev_hash"] != prev:
                    return ChainCheck(False, count, row["id"], "prev_hash does not match the previous row")
                if row_hash(prev, row) != row["row_hash"]:
                    return ChainCheck(False, count, row["id"], "row content does not match its hash")
                prev = row["row_hash"]
        return ChainCheck(True, count)
