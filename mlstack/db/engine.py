"""Create engines for the app database and make sure a PostgreSQL database exists."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from mlstack.settings import normalize_database_url

log = logging.getLogger(__name__)


def create_engine(url: str) -> Engine:
    """Return an engine; SQLite gets a busy timeout and BEGIN IMMEDIATE (one writer at a time)."""
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
            # WAL: readers (status page, judge) never block the slots' writers, and a commit
            # needs no fsync of the main file; NORMAL loses nothing on a process crash.
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def redact(url: str) -> str:
    """Return the URL with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def libpq_url(url: str) -> str:
    """The URL as libpq tools take it (pg_dump, the exporter): postgresql+psycopg2://... → postgresql://..."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(parsed: sa.URL, connect_timeout: int) -> Engine:
    """An engine on the server's `postgres` database, where databases are listed and created."""
    return sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT",
                            connect_args={"connect_timeout": connect_timeout})


def _exists(conn: sa.Connection, name: str | None) -> bool:
    return bool(conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar())


def database_exists(url: str, connect_timeout: int = 10) -> bool:
    """Whether the PostgreSQL database named in `url` exists (raises when the server cannot be reached)."""
    parsed = make_url(normalize_database_url(url))
    admin = _admin(parsed, connect_timeout)
    try:
        with admin.connect() as conn:
            return _exists(conn, parsed.database)
    finally:
        admin.dispose()


def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if it is missing; return True if created.

    SQLite files are created on first connection, so nothing is done for them.
    """
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() != "postgresql":
        return False
    name = parsed.database
    admin = _admin(parsed, 10)
    try:
        with admin.connect() as conn:
            if _exists(conn, name):
                return False
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            log.info("created database %s", redact(str(parsed)))
            return True
    finally:
        admin.dispose()
