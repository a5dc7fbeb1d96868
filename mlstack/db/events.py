"""Append model events to the hash-chained audit trail, read them back and verify the chain.

Each row stores the sha256 of the previous row (`prev_hash`) and its own (`row_hash`, over its
content and `prev_hash`), so an edited, deleted or reordered row breaks `verify()`.

Verifying from the first row costs the whole history. With a signing key (AUDIT_SIGNING_KEY),
`verify(checkpoint=True)` records a signed checkpoint (the last row verified and its hash) and
later verifications start from the newest checkpoint whose signature holds and whose row still
has that hash: the status page and `audit verify` cost the events since, not the history.
`verify(full=True)` still checks everything from the first row.

Expired judge ticks are archived and then removed (`remove`, called by mlstack.lifecycle): each
stretch of removed rows leaves a signed `audit_gaps` row (the hash before it, the hash of its last
row, how many rows, where the archive is), and verification steps over a gap whose signature holds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlstack.db.schema import audit_checkpoints, audit_gaps, model_events

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


def _stored(result_row: Any) -> dict[str, Any]:
    """A model_events row as hashed: its event time in UTC (SQLite returns naive UTC)."""
    row = dict(result_row._mapping)
    if row["event_time"].tzinfo is None:
        row["event_time"] = row["event_time"].replace(tzinfo=UTC)
    return row


@dataclass(frozen=True)
class ChainCheck:
    """The result of verifying the chain: ok, rows checked, and the first broken row if any."""

    ok: bool
    rows: int
    broken_id: int | None = None
    problem: str = ""
    checked: int = 0  # rows read this time (the rest was vouched for by a signed checkpoint)
    since_checkpoint: int | None = None  # the event id verification started after, if any
    archived: int = 0  # rows stepped over: archived to the bucket, vouched for by a signed gap


class EventStore:
    """The `model_events` table of one app database."""

    def __init__(self, engine: Engine, signing_key: bytes | None = None) -> None:
        self.engine = engine
        self.signing_key = signing_key

    def _sign(self, event_id: int, row_hash_: str, rows: int) -> str:
        assert self.signing_key is not None
        return hmac.new(self.signing_key, f"{event_id}:{row_hash_}:{rows}".encode(), "sha256").hexdigest()

    def _sign_gap(self, first_id: int, last_id: int, rows: int, prev_hash: str, last_hash: str, archive: str) -> str:
        assert self.signing_key is not None
        text = f"gap:{first_id}:{last_id}:{rows}:{prev_hash}:{last_hash}:{archive}"
        return hmac.new(self.signing_key, text.encode(), "sha256").hexdigest()

    def _gaps(self, conn: Connection) -> dict[str, tuple[str, int]]:
        """{hash before a gap: (hash of its last row, rows in it)} for every gap whose signature holds."""
        if self.signing_key is None:
            return {}
        return {g.prev_hash: (g.last_hash, g.rows) for g in conn.execute(sa.select(audit_gaps))
                if hmac.compare_digest(g.signature, self._sign_gap(g.first_id, g.last_id, g.rows, g.prev_hash,
                                                                   g.last_hash, g.archive))}

    def _start(self, conn: Connection) -> tuple[int, str, int]:
        """(event id, its hash, rows up to it) of the newest checkpoint that holds; (0, GENESIS, 0) if none."""
        if self.signing_key is None:
            return 0, GENESIS, 0
        c, e = audit_checkpoints.c, model_events.c
        for cp in conn.execute(sa.select(audit_checkpoints).order_by(c.id.desc()).limit(20)):
            if not hmac.compare_digest(cp.signature, self._sign(cp.event_id, cp.row_hash, cp.rows)):
                continue  # forged or signed with another key: not trusted
            found = conn.execute(sa.select(model_events).where(e.id == cp.event_id)).first()
            if found is None:
                continue
            row = _stored(found)
            if row["row_hash"] == cp.row_hash == row_hash(row["prev_hash"], row):  # the row itself is intact
                return cp.event_id, cp.row_hash, cp.rows
        return 0, GENESIS, 0

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

    def actions(self, model_name: str) -> list[str]:
        """The distinct actions recorded for a model, read off ix_model_events_model_action_id one step per
        action (a loose index scan): what it costs does not grow with the rows of each."""
        query = sa.text("""
            WITH RECURSIVE acts(action) AS (
              SELECT MIN(action) FROM model_events WHERE model_name = :m
              UNION ALL
              SELECT (SELECT MIN(e.action) FROM model_events e WHERE e.model_name = :m AND e.action > acts.action)
              FROM acts WHERE acts.action IS NOT NULL
            )
            SELECT action FROM acts WHERE action IS NOT NULL""")
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query, {"m": model_name})]

    def recent(self, model_name: str | None = None, limit: int = 20, *, actions: tuple[str, ...] = (),
               exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Return the newest events first (only `actions`, or all but `exclude`, when given)."""
        if model_name and exclude and not actions:
            # All but the frequent kinds (judge ticks): each other kind's newest rows from the index, merged,
            # rather than walking back over every excluded row to find a few others.
            kinds = tuple(a for a in self.actions(model_name) if a not in exclude)
            if not kinds:
                return []
            rows = [row for kind in kinds for row in self.recent(model_name, limit, actions=(kind,))]
            return sorted(rows, key=lambda row: row["id"], reverse=True)[:limit]
        query = sa.select(model_events).order_by(model_events.c.id.desc()).limit(limit)
        if model_name:
            query = query.where(model_events.c.model_name == model_name)
        if actions:
            query = query.where(model_events.c.action.in_(actions))
        if exclude:
            query = query.where(model_events.c.action.not_in(exclude))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def verify(self, *, full: bool = False, checkpoint: bool = False) -> ChainCheck:
        """Recompute each row's hash in id order, from the newest valid checkpoint (or the first row).

        `checkpoint=True` records a signed checkpoint at the last row when the chain holds (needs
        the signing key); `full=True` ignores checkpoints.
        """
        with self.engine.connect() as conn:
            start, prev, count = (0, GENESIS, 0) if full else self._start(conn)
            gaps = self._gaps(conn)
            checked = archived = 0
            last_id = start
            query = sa.select(model_events).where(model_events.c.id > start).order_by(model_events.c.id)
            for r in conn.execute(query.execution_options(yield_per=1000)):
                row = _stored(r)
                while row["prev_hash"] != prev and prev in gaps:  # archived rows between the two: step over
                    prev, rows = gaps[prev]
                    count += rows
                    archived += rows
                count += 1
                checked += 1
                if row["prev_hash"] != prev:
                    return ChainCheck(False, count, row["id"], "prev_hash does not match the previous row", checked,
                                      start or None, archived)
                if row_hash(prev, row) != row["row_hash"]:
                    return ChainCheck(False, count, row["id"], "row content does not match its hash", checked,
                                      start or None, archived)
                prev, last_id = row["row_hash"], row["id"]
        if checkpoint and self.signing_key is not None and last_id > start:
            with self.engine.begin() as conn:
                conn.execute(audit_checkpoints.insert().values(
                    event_id=last_id, row_hash=prev, rows=count, created_at=datetime.now(UTC),
                    signature=self._sign(last_id, prev, count)))
        return ChainCheck(True, count, checked=checked, since_checkpoint=start or None, archived=archived)

    def remove(self, ids: Iterable[int], archive: str) -> int:
        """Delete these events (already archived at `archive`) and record a signed gap per stretch removed.

        The newest event is never removed (the next append chains onto it). Needs the signing key:
        without it a gap could not be told from a deletion. Returns the rows removed."""
        if self.signing_key is None:
            raise ValueError("removing audit events needs AUDIT_SIGNING_KEY (set it in .env): without a signed "
                             "record of what was archived, verification could not tell archiving from tampering")
        wanted = set(ids)
        e = model_events.c
        with self.engine.begin() as conn:
            self._lock(conn)
            wanted.discard(conn.execute(sa.select(sa.func.max(e.id))).scalar())
            if not wanted:
                return 0
            gaps = {g.prev_hash: g.rows for g in conn.execute(sa.select(audit_gaps.c.prev_hash, audit_gaps.c.rows))}
            runs: list[dict[str, Any]] = []
            run: dict[str, Any] | None = None
            last_hash = None
            for r in conn.execute(sa.select(e.id, e.prev_hash, e.row_hash)
                                  .where(e.id >= min(wanted), e.id <= max(wanted)).order_by(e.id)):
                if r.id not in wanted:
                    run = None
                elif run is None:
                    run = {"first_id": r.id, "last_id": r.id, "rows": 1, "prev_hash": r.prev_hash,
                           "last_hash": r.row_hash}
                    runs.append(run)
                else:
                    if r.prev_hash != last_hash:  # an earlier gap lies inside this stretch: it counts too
                        run["rows"] += gaps.get(last_hash, 0)
                    run.update(last_id=r.id, last_hash=r.row_hash, rows=run["rows"] + 1)
                last_hash = r.row_hash
            now = datetime.now(UTC)
            conn.execute(audit_gaps.insert(), [
                {**g, "archive": archive, "created_at": now,
                 "signature": self._sign_gap(g["first_id"], g["last_id"], g["rows"], g["prev_hash"], g["last_hash"],
                                             archive)} for g in runs])
            ordered, removed = sorted(wanted), 0
            for at in range(0, len(ordered), 1000):
                chunk = ordered[at:at + 1000]
                conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.event_id.in_(chunk)))
                removed += conn.execute(model_events.delete().where(e.id.in_(chunk))).rowcount
        return removed

    def archived_in(self, event_id: int) -> str | None:
        """Where an event removed by `remove` was archived (None if it was never removed this way)."""
        g = audit_gaps.c
        with self.engine.connect() as conn:
            return conn.execute(sa.select(g.archive).where(g.first_id <= event_id, g.last_id >= event_id)
                                .order_by(g.id).limit(1)).scalar()
