"""Command line: `python -m mlstack train | registry show | validate | db upgrade | storage ensure-bucket | backup`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlstack import settings as settings_mod

log = logging.getLogger("mlstack")

# Exit codes: 1 unexpected, 2 usage, 3 bad data, 4 a service unreachable, 5 refused by policy.
EXIT_DATA, EXIT_UNAVAILABLE, EXIT_REFUSED = 3, 4, 5


class RichProgress:
    """Draw pipeline progress as rich progress bars (one line per step)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, step: str, description: str, total: int | None = None) -> None:
        self.tasks[step] = self.bar.add_task(description, total=total or 1)

    def advance(self, step: str, note: str = "") -> None:
        self.bar.advance(self.tasks[step])
        if note:
            self.bar.console.print(f"    [dim]{note}[/dim]")

    def finish(self, step: str, note: str = "") -> None:
        task = self.tasks[step]
        self.bar.update(task, completed=self.bar.tasks[task].total)
        if note:
            self.bar.console.print(f"    [green]✓[/green] {note}")


def _summary(result: Any, console: Console) -> None:
    from mlstack.training.pipeline import TrainResult

    assert isinstance(result, TrainResult)
    table = Table(title=f"Candidates (validation split) — winner: {result.family}")
    for col in ("family", "stage", "validation RMSE", "fit s", "parameters"):
        table.add_column(col, justify="right" if col in ("validation RMSE", "fit s") else "left",
                         overflow="fold", max_width=None if col == "parameters" else 24)
    best = min(result.candidates, key=lambda c: c.validation_rmse)
    for c in result.candidates:
        style = "bold green" if c is best else None
        table.add_row(c.family, c.stage, f"{c.validation_rmse:,.0f}", f"{c.seconds:.1f}",
                      " ".join(f"{k}={v}" for k, v in c.params.items()), style=style)
    console.print(table)
    out = Table(title=f"Registered {result.model_name} v{result.version}", show_header=False)
    out.add_column("what")
    out.add_column("value")
    m = result.metrics
    out.add_row("holdout RMSE / MAE / R²", f"{m.rmse:,.0f} / {m.mae:,.0f} / {m.r2:.4f}  ({m.n:,} rows)")
    out.add_row("RMSE by segment", "; ".join(f"{s} {r:,.0f} (n={n})" for s, (n, r) in m.segments.items()))
    for alias, inc in result.incumbents.items():
        out.add_row(f"{alias} v{inc['version']} on this holdout", f"RMSE {inc['rmse']:,.0f}")
    out.add_row("family / parameters", f"{result.family}: " + ", ".join(f"{k}={v}" for k, v in result.params.items()))
    out.add_row("alias", f"[bold]{result.alias or 'none'}[/bold] — {escape(result.reason)}")
    out.add_row("MLflow run", result.run_id)
    out.add_row("data sha256", result.data_sha256)
    out.add_row("time", f"{result.seconds:.1f} s")
    console.print(out)


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    from mlstack.training.pipeline import train

    settings = settings_mod.load(settings_mod.TrainingSettings)
    if args.if_no_champion and _champion_exists(settings):
        console.print(f"{settings.MODEL_NAME} already has a champion: nothing to train")
        return 0
    if console.is_terminal and not args.quiet:
        with RichProgress(console) as progress:
            result = train(settings, data_path=args.data, actor=args.actor, progress=progress)
    else:
        result = train(settings, data_path=args.data, actor=args.actor)
    if args.json:
        print(json.dumps({"version": result.version, "alias": result.alias, "reason": result.reason,
                          "run_id": result.run_id, "rmse": result.metrics.rmse, "family": result.family,
                          "seconds": result.seconds}))
    else:
        _summary(result, console)
    return 0


def _champion_exists(settings: settings_mod.TrainingSettings) -> bool:
    from mlstack.registry.aliases import CHAMPION, read_aliases
    from mlstack.registry.connection import connect

    return CHAMPION in read_aliases(connect(settings), settings.MODEL_NAME)


def cmd_registry_show(args: argparse.Namespace, console: Console) -> int:
    from mlstack.db.engine import create_engine
    from mlstack.db.events import EventStore
    from mlstack.db.migrate import upgrade
    from mlstack.registry.connection import connect
    from mlstack.registry.overview import versions as list_versions

    settings = settings_mod.load(settings_mod.TrainingSettings)
    versions = list_versions(connect(settings), settings.MODEL_NAME)
    table = Table(title=f"{settings.MODEL_NAME} at {settings.MLFLOW_TRACKING_URI}")
    for col in ("version", "aliases", "created (UTC)", "family", "holdout RMSE", "MAE", "R²", "run"):
        table.add_column(col, justify="right" if col in ("holdout RMSE", "MAE", "R²", "version") else "left")

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for v in versions:
        table.add_row(v.version, ", ".join(v.aliases) or "-", v.created.strftime("%Y-%m-%d %H:%M:%S"),
                      v.family or "-", num(v.rmse, ",.0f"), num(v.mae, ",.0f"), num(v.r2, ".4f"),
                      (v.run_id or "-")[:8])
    console.print(table if versions else f"no versions of {settings.MODEL_NAME} registered yet")

    engine = create_engine(settings.APP_DATABASE_URL)
    upgrade(engine)
    store = EventStore(engine, settings.audit_key())
    events = store.recent(settings.MODEL_NAME, limit=args.events)
    ev = Table(title=f"Recent model events (app database; chain {'verified' if store.verify().ok else 'BROKEN'})")
    for col in ("id", "time (UTC)", "actor", "action", "alias", "before → after", "reason"):
        ev.add_column(col)
    for e in events:
        ev.add_row(str(e["id"]), e["event_time"].strftime("%Y-%m-%d %H:%M:%S"), e["actor"], e["action"],
                   e["alias"] or "-", f"{e['version_before'] or '-'} → {e['version_after'] or '-'}", e["reason"])
    console.print(ev)
    engine.dispose()
    return 0


def _app_engine():  # noqa: ANN202
    from mlstack.db.engine import create_engine
    from mlstack.db.migrate import upgrade

    engine = create_engine(settings_mod.load(settings_mod.TrainingSettings).APP_DATABASE_URL)
    upgrade(engine)
    return engine


def cmd_audit_verify(args: argparse.Namespace, console: Console) -> int:
    from mlstack.db.events import EventStore

    key = settings_mod.load(settings_mod.TrainingSettings).audit_key()
    check = EventStore(_app_engine(), key).verify(full=args.full, checkpoint=True)
    if check.ok:
        since = (f"; {check.checked} read after the signed checkpoint at event #{check.since_checkpoint}"
                 if check.since_checkpoint else "")
        archived = f"; {check.archived} archived under signed gaps" if check.archived else ""
        console.print(f"[green]audit chain verified[/green]: {check.rows} event(s), each holding the sha256 of the one "
                      f"before{since}{archived}")
        return 0
    console.print(f"[red]audit chain BROKEN[/red] at event #{check.broken_id} ({check.rows} checked): {check.problem}")
    return 1


def cmd_audit_explain(args: argparse.Namespace, console: Console) -> int:
    from mlstack.rollout.audit import explain

    try:
        ex = explain(_app_engine(), args.event_id)
    except LookupError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 1
    e = ex.event
    console.print(f"event #{e['id']} {e['event_time']:%Y-%m-%d %H:%M:%S} UTC by {e['actor']}: {e['action']}"
                  f"{' (dry run)' if e['dry_run'] else ''}; policy sha256 {e['details'].get('policy_sha256', '?')[:12]}")
    console.print(f"stored:     {ex.stored['action']} — {escape(ex.stored['reason'])}")
    console.print(f"recomputed: {ex.recomputed.action} — {escape(ex.recomputed.reason)}")
    table = Table(title="checks (recomputed from the stored evidence)")
    for col in ("metric", "test", "n A/B", "A", "B", "B−A", "interval", "threshold", "passed"):
        table.add_column(col)

    def num(v: float | None) -> str:
        return "–" if v is None else (f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}")

    for c in ex.recomputed.checks:
        table.add_row(c.metric, c.test, f"{c.n_a}/{c.n_b}", num(c.estimate_a), num(c.estimate_b), num(c.difference),
                      "–" if c.lower is None else f"[{num(c.lower)}, {num(c.upper)}]", num(c.threshold),
                      "yes" if c.passed else "no")
    console.print(table)
    if ex.reproduced:
        console.print("[green]reproduced[/green]: the same evidence and policy give the same decision")
        return 0
    console.print("[red]NOT reproduced[/red]: the stored decision differs from what the judge decides now")
    return 1


def cmd_archive(args: argparse.Namespace, console: Console) -> int:
    from mlstack.lifecycle import ArchiveError, archive_history

    try:
        report = archive_history(dry_run=args.dry_run)
    except ArchiveError as exc:
        console.print(f"[red]archive incomplete[/red]: {escape(str(exc))}")
        return 1
    table = Table(title=("would archive (dry run)" if args.dry_run else "archived") + " to the bucket, then deleted")
    for col in ("table", "older than (UTC)", "rows", "files", "bytes", "note"):
        table.add_column(col)
    for t in report["tables"].values():
        note = "retention raised to the policy's longest window" if t["raised_to_floor"] else ""
        table.add_row(t["table"], t["cutoff"][:16].replace("T", " "), f"{t['rows']:,}", str(len(t["files"])),
                      f"{t['bytes']:,}", note)
    console.print(table)
    console.print(f"log files deleted: {report['log_files_deleted']} ({report['log_bytes_deleted']:,} bytes); "
                  f"floor {report['floor_days']:g} days; {report['seconds']} s")
    return 0


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from mlstack.contracts import get_contract
    from mlstack.data import load_dataset
    from mlstack.validation import ValidationError

    settings = settings_mod.load(settings_mod.TrainingSettings)
    try:
        dataset = load_dataset(args.path, get_contract(settings.DATA_CONTRACT))
    except ValidationError as exc:
        console.print(exc.report.summary(), markup=False)
        return EXIT_DATA
    console.print(dataset.report.summary(), markup=False)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, console: Console) -> int:
    from mlstack.db.engine import create_engine, ensure_database, redact
    from mlstack.db.migrate import current, upgrade

    settings = settings_mod.load(settings_mod.TrainingSettings)
    url = settings.APP_DATABASE_URL
    if ensure_database(url):
        console.print(f"created database {redact(url)}")
    engine = create_engine(url)
    upgrade(engine)
    console.print(f"app database {redact(url)} at revision {current(engine)}")
    engine.dispose()
    return 0


def cmd_storage_ensure_bucket(args: argparse.Namespace, console: Console) -> int:
    from mlstack.storage import ensure_bucket

    settings = settings_mod.load(settings_mod.StorageSettings)
    created = ensure_bucket(settings)
    console.print(f"bucket s3://{settings.S3_BUCKET} at {settings.S3_ENDPOINT_URL}: {'created' if created else 'exists'}")
    return 0


def cmd_storage_export(args: argparse.Namespace, console: Console) -> int:
    from mlstack.backup import backup_bucket

    settings = settings_mod.load(settings_mod.StorageSettings)
    done = backup_bucket(settings, args.folder)
    console.print(f"s3://{settings.S3_BUCKET} → {args.folder}: {done['objects']} objects ({done['bytes']:,} bytes)")
    return 0


def cmd_storage_import(args: argparse.Namespace, console: Console) -> int:
    from mlstack.backup import restore_bucket

    settings = settings_mod.load(settings_mod.StorageSettings)
    done = restore_bucket(settings, args.folder, args.bucket)
    console.print(f"{args.folder} → s3://{args.bucket or settings.S3_BUCKET}: {done['objects']} objects "
                  f"({done['bytes']:,} bytes)")
    return 0


def cmd_backup_create(args: argparse.Namespace, console: Console) -> int:
    from mlstack.backup import create

    folder = args.folder or Path("backups") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    manifest = create(settings_mod.load(settings_mod.StackSettings), folder)
    for name, entry in manifest["databases"].items():
        console.print(f"  database {name}: {entry['file']} ({entry['bytes']:,} bytes)")
    bucket = manifest["bucket"]
    console.print(f"  bucket s3://{bucket['name']}: {bucket['objects']} objects ({bucket['bytes']:,} bytes)")
    console.print(f"backup written to {folder}")
    return 0


def cmd_backup_restore(args: argparse.Namespace, console: Console) -> int:
    from mlstack.backup import restore

    from mlstack.backup import DATABASES

    done = restore(settings_mod.load(settings_mod.StackSettings), args.folder,
                   databases=None if args.bucket_only else DATABASES, bucket=not args.databases_only)
    if done["databases"]:
        console.print(f"restored databases: {', '.join(done['databases'])}")
    if done["bucket"]:
        console.print(f"restored bucket: {done['bucket']['objects']} objects ({done['bucket']['bytes']:,} bytes)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlstack", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train, evaluate and register a model")
    train.add_argument("--data", type=Path, default=None, help="labelled CSV (default: DATA_PATH)")
    train.add_argument("--actor", default="cli", help="who started the run, for the audit trail")
    train.add_argument("--if-no-champion", action="store_true", help="do nothing if the model has a champion")
    train.add_argument("--json", action="store_true", help="print the result as one JSON line")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    registry = sub.add_parser("registry", help="inspect the model registry")
    rsub = registry.add_subparsers(dest="registry_command", required=True)
    show = rsub.add_parser("show", help="versions, aliases, holdout metrics and recent events")
    show.add_argument("--events", type=int, default=10, help="how many recent events to list")
    show.set_defaults(func=cmd_registry_show)

    validate = sub.add_parser("validate", help="validate a labelled CSV against the data contract")
    validate.add_argument("path", type=Path)
    validate.set_defaults(func=cmd_validate)

    db = sub.add_parser("db", help="app database")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="create the database if needed and apply migrations").set_defaults(
        func=cmd_db_upgrade)

    audit = sub.add_parser("audit", help="the audit trail of model decisions (model_events)")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="check the hash chain (from the last signed checkpoint; --full: from the first event)")
    verify.add_argument("--full", action="store_true", help="ignore checkpoints and check every event from the first")
    verify.set_defaults(func=cmd_audit_verify)
    explain = asub.add_parser("explain", help="re-run the judge on a decision's stored evidence")
    explain.add_argument("event_id", type=int)
    explain.set_defaults(func=cmd_audit_explain)

    archive = sub.add_parser("archive", help="archive what outlived its retention to the bucket as Parquet, then "
                                             "delete it (what the archive_history DAG runs daily)")
    archive.add_argument("--dry-run", action="store_true", help="report what would be archived; change nothing")
    archive.set_defaults(func=cmd_archive)

    storage = sub.add_parser("storage", help="object store")
    ssub = storage.add_subparsers(dest="storage_command", required=True)
    ssub.add_parser("ensure-bucket", help="create the S3 bucket if missing").set_defaults(func=cmd_storage_ensure_bucket)
    export = ssub.add_parser("export", help="download every object of the bucket into a folder")
    export.add_argument("folder", type=Path)
    export.set_defaults(func=cmd_storage_export)
    imp = ssub.add_parser("import", help="upload a folder made by export into the bucket (creating it)")
    imp.add_argument("folder", type=Path)
    imp.add_argument("--bucket", default=None, help="another bucket than S3_BUCKET")
    imp.set_defaults(func=cmd_storage_import)

    backup = sub.add_parser("backup", help="back up or restore the databases and the bucket (docs/operations.md)")
    bsub = backup.add_subparsers(dest="backup_command", required=True)
    create = bsub.add_parser("create", help="write every database and the bucket into a new folder")
    create.add_argument("folder", type=Path, nargs="?", default=None, help="default: backups/<UTC time>")
    create.set_defaults(func=cmd_backup_create)
    restore = bsub.add_parser("restore", help="restore a backup folder (overwrites: stop writers first)")
    restore.add_argument("folder", type=Path)
    only = restore.add_mutually_exclusive_group()
    only.add_argument("--databases-only", action="store_true", help="restore the databases, not the bucket")
    only.add_argument("--bucket-only", action="store_true", help="restore the bucket, not the databases")
    restore.set_defaults(func=cmd_backup_restore)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("urllib3", "botocore", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    console = Console(stderr=False)
    from pydantic import ValidationError as SettingsError

    from mlstack.data import DataError
    from mlstack.registry.aliases import MissingArtifacts
    from mlstack.registry.connection import RegistryUnavailable
    from mlstack.backup import BackupError
    from mlstack.storage import StorageUnavailable
    from mlstack.validation import ValidationError

    try:
        return args.func(args, console)
    except SettingsError as exc:
        console.print(f"[red]configuration error[/red] (check .env; see .env.example):\n{escape(str(exc))}")
        return 2
    except (ValidationError, DataError) as exc:
        console.print(f"[red]data rejected[/red]: {escape(str(exc))}\nNothing was registered.")
        return EXIT_DATA
    except (RegistryUnavailable, StorageUnavailable) as exc:
        console.print(f"[red]unavailable[/red]: {escape(str(exc))}")
        return EXIT_UNAVAILABLE
    except BackupError as exc:
        console.print(f"[red]backup failed[/red]: {escape(str(exc))}")
        return 1
    except MissingArtifacts as exc:
        console.print(f"[red]refused[/red]: {escape(str(exc))}")
        return EXIT_REFUSED
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException):
            settings = settings_mod.load(settings_mod.TrainingSettings)
            console.print(f"[red]MLflow error[/red] talking to {settings.MLFLOW_TRACKING_URI} "
                          f"(its artifact store may be down): {escape(str(exc.message))}\nNo alias was moved.")
            return EXIT_UNAVAILABLE
        raise
