"""Back up and restore the stack's state: its databases and its bucket.

    python -m mlstack backup create backups/2026-12-02      # make backup
    python -m mlstack backup restore backups/2026-12-02     # see docs/operations.md for the order

A backup is a folder: one file per database (`<name>.dump` from `pg_dump -Fc` for PostgreSQL,
`<name>.sqlite` from SQLite's online backup), `bucket/` with every object of the S3 bucket, and
`manifest.json` (what is there, row-free sizes and object counts). Creating one needs no downtime;
restoring overwrites: stop the services that write first (docs/operations.md).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.db.engine import ensure_database, libpq_url
from mlstack.settings import StackSettings, StorageSettings

DATABASES = ("mlflow", "app", "mlflow_auth", "airflow")


class BackupError(RuntimeError):
    """A backup or restore step failed; the message names the database or object."""


def database_urls(settings: StackSettings) -> dict[str, str]:
    urls = {"mlflow": settings.MLFLOW_DATABASE_URL, "app": settings.APP_DATABASE_URL,
            "mlflow_auth": settings.MLFLOW_AUTH_DATABASE_URL}
    if settings.AIRFLOW_ENABLED:
        urls["airflow"] = settings.AIRFLOW_DATABASE_URL
    return urls


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _run(cmd: list[str], what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{what}: {cmd[0]} is not installed (Debian: apt-get install postgresql-client)")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{what}: {cmd[0]} failed: {result.stderr.strip()[-800:]}")


def backup_database(url: str, dest: Path, name: str) -> Path:
    """Write one database to `dest` (pg_dump custom format, or SQLite's online backup); return the file."""
    if url.startswith("sqlite:///"):
        out = dest / f"{name}.sqlite"
        source = _sqlite_path(url)
        if not source.exists():
            raise BackupError(f"{name}: {source} does not exist")
        with sqlite3.connect(source) as src, sqlite3.connect(out) as dst:
            src.backup(dst)  # consistent even while the stack writes
        return out
    if url.startswith("postgresql"):
        out = dest / f"{name}.dump"
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={out}", libpq_url(url)],
             f"backing up {name}")
        return out
    raise BackupError(f"{name}: cannot back up a {url.split(':')[0]} database")


def restore_database(path: Path, url: str, name: str) -> None:
    """Replace the database at `url` with the backup file `path`."""
    if path.suffix == ".sqlite":
        if not url.startswith("sqlite:///"):
            raise BackupError(f"{name}: a SQLite backup restores into SQLite, not {url.split(':')[0]}")
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
        return
    if not url.startswith("postgresql"):
        raise BackupError(f"{name}: a pg_dump backup restores into PostgreSQL, not {url.split(':')[0]}")
    ensure_database(url)
    _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          f"--dbname={libpq_url(url)}", str(path)], f"restoring {name}")


def backup_bucket(settings: StorageSettings, dest: Path) -> dict[str, int]:
    """Download every object of the bucket under `dest` (keys become paths)."""
    from mlstack.storage import client, list_objects

    s3 = client(settings)
    count = size = 0
    for key in list_objects(settings):
        out = dest / key
        out.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(settings.S3_BUCKET, key, str(out))
        count, size = count + 1, size + out.stat().st_size
    return {"objects": count, "bytes": size}


def restore_bucket(settings: StorageSettings, src: Path, bucket: str | None = None) -> dict[str, int]:
    """Upload every file under `src` into the bucket (or `bucket`), creating it if needed; existing keys are replaced."""
    from mlstack.storage import client, ensure_bucket

    target = bucket or settings.S3_BUCKET
    ensure_bucket(settings.model_copy(update={"S3_BUCKET": target}))
    s3 = client(settings)
    count = size = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        s3.upload_file(str(path), target, path.relative_to(src).as_posix())
        count, size = count + 1, size + path.stat().st_size
    return {"objects": count, "bytes": size}


def create(settings: StackSettings, dest: Path) -> dict[str, Any]:
    """Back up every database and the bucket into `dest` (which must not exist yet)."""
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"created": datetime.now(UTC).isoformat(timespec="seconds"), "databases": {}}
    for name, url in database_urls(settings).items():
        path = backup_database(url, dest, name)
        manifest["databases"][name] = {"file": path.name, "bytes": path.stat().st_size}
    manifest["bucket"] = {"name": settings.S3_BUCKET, **backup_bucket(settings, dest / "bucket")}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(settings: StackSettings, src: Path, *, databases: tuple[str, ...] | None = DATABASES,
            bucket: bool = True, overrides: dict[str, str] | None = None,
            bucket_name: str | None = None) -> dict[str, Any]:
    """Restore a backup made by `create`: the named `databases` (None: none), and the bucket.

    `overrides` restores a database somewhere else than the stack's own URL for it, and
    `bucket_name` into another bucket (a restore test, or a second stack).
    """
    manifest = json.loads((src / "manifest.json").read_text())
    urls = {**database_urls(settings), **(overrides or {})}
    done: dict[str, Any] = {"databases": [], "bucket": None}
    for name, entry in manifest["databases"].items():
        if databases and name in databases and name in urls:
            restore_database(src / entry["file"], urls[name], name)
            done["databases"].append(name)
    if bucket:
        done["bucket"] = restore_bucket(settings, src / "bucket", bucket_name)
    return done
