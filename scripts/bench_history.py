#!/usr/bin/env python3
"""What a long history costs: a judge tick, the status page and `audit verify`, with a day of history
and with months of it, before and after archive_history; and the disk archiving gives back.

    scripts/bench_history.py                                  # 10 M predictions, 1 M labels, 1 M events
    scripts/bench_history.py --predictions 1000000 --events 100000   # quicker

Two private PostgreSQL databases on the machine's server (dropped at the end) hold synthetic traffic
spread evenly over `--days` days up to now: "a day" holds one day of it, "history" all of it.
A private SeaweedFS (the stack's S3 server, s3/start.sh) takes the archive. Timed, as the stack runs
them (median of --repeat runs):
- judge tick: the evidence queries of evaluate_ab and guard_champion over the policy's windows
  (mlstack.rollout.evidence: labels that count, both arms' counts and users, the paired shadow sums;
  the registry and nginx parts cost the same whatever the history);
- status page: the audit reads of the status page (mlstack.frontend.status: recent events, decisions,
  transitions, the last drift check, the chain verified from its checkpoint);
- audit verify: the whole chain once (what the first verification costs), then from the checkpoint
  after 10 new events (what every later one costs).
Then archive_history runs (mlstack.lifecycle.Archiver) and the three are timed again. Writes
reports/bench-history.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlstack.db.engine import create_engine  # noqa: E402
from mlstack.db.events import GENESIS, EventStore, ModelEvent, row_hash  # noqa: E402
from mlstack.db.migrate import upgrade  # noqa: E402
from mlstack.registry.aliases import transition_events  # noqa: E402
from mlstack.rollout import evidence  # noqa: E402
from mlstack.rollout.policy import load_policy  # noqa: E402

PG = os.environ.get("BENCH_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
KEY = uuid.uuid4().hex + uuid.uuid4().hex  # AUDIT_SIGNING_KEY of the bench databases
MODEL = "house-price"
FEATURES = json.dumps({"median_income": 3.5, "housing_median_age": 20, "total_rooms": 2000, "total_bedrooms": 400,
                       "population": 1000, "households": 380, "latitude": 37.7, "longitude": -122.2,
                       "ocean_proximity": "NEAR BAY"})


def log(text: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {text}", flush=True)


# -- the databases -------------------------------------------------------------------------------------

def _admin(*statements: str) -> None:
    """Run statements on the server's `postgres` database, outside a transaction (CREATE/DROP DATABASE)."""
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    admin.dispose()


def fresh_database(name: str) -> str:
    _admin(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
           f'DROP DATABASE IF EXISTS "{name}"')


def fill(engine: sa.Engine, *, predictions: int, labels: int, stats: int, events: int, days: float,
         now: datetime) -> None:
    """Synthetic traffic, evenly spread over `days` up to `now`: two versions (A: 1, B: 2, each scored by the
    other in the shadow), every k-th prediction labelled, stats rows of 10 s periods, a judge tick stream."""
    span = days * 86400.0
    every = max(1, predictions // max(labels, 1))
    started = time.monotonic()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"""
            INSERT INTO predictions (prediction_id, created_at, variant, model_name, model_version, model_alias,
                                     user_hash, request_id, features, prediction, latency_ms, shadow_version,
                                     shadow_prediction)
            SELECT 'h' || g, %(now)s - (g * %(step)s) * interval '1 second',
                   CASE WHEN g %% 10 = 0 THEN 'B' ELSE 'A' END, '{MODEL}',
                   CASE WHEN g %% 10 = 0 THEN '2' ELSE '1' END,
                   CASE WHEN g %% 10 = 0 THEN 'challenger' ELSE 'champion' END,
                   'u' || (g %% 5000), NULL, %(features)s::json, 200000 + (g %% 997) * 100, 2.5,
                   CASE WHEN g %% 10 = 0 THEN '1' ELSE '2' END, 201000 + (g %% 991) * 100
            FROM generate_series(1, %(n)s) g""",
            {"now": now, "step": span / predictions, "features": FEATURES, "n": predictions})
        log(f"  predictions: {predictions:,} in {time.monotonic() - started:.0f} s")
        conn.exec_driver_sql("""
            INSERT INTO feedback (prediction_id, actual, received_at, sender_hash, address_hash)
            SELECT prediction_id, prediction * 1.05, created_at + interval '30 seconds',
                   'u' || (substr(prediction_id, 2)::bigint %% 5000), 'a' || (substr(prediction_id, 2)::bigint %% 300)
            FROM predictions WHERE substr(prediction_id, 2)::bigint %% %(every)s = 0""", {"every": every})
        log(f"  labels: every {every}th prediction, {time.monotonic() - started:.0f} s")
        conn.exec_driver_sql("""
            INSERT INTO request_stats (id, period_start, period_end, variant, model_version, requests, errors,
                                       over_50_ms, over_100_ms, over_250_ms, over_500_ms, over_1000_ms, latency_ms_sum)
            SELECT 's' || g, %(now)s - (g * %(step)s + 10) * interval '1 second',
                   %(now)s - (g * %(step)s) * interval '1 second', CASE WHEN g %% 2 = 0 THEN 'B' ELSE 'A' END,
                   CASE WHEN g %% 2 = 0 THEN '2' ELSE '1' END, 25, 0, 0, 0, 0, 0, 0, 62.5
            FROM generate_series(1, %(n)s) g""", {"now": now, "step": span / stats, "n": stats})
        log(f"  request stats: {stats:,} in {time.monotonic() - started:.0f} s")
    write_events(engine, events, span, now)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    log(f"  events: {events:,}; filled in {time.monotonic() - started:.0f} s")


def write_events(engine: sa.Engine, n: int, span: float, now: datetime) -> None:
    """A chained tick stream as the judges write it (mostly HOLD/KEEP, an hourly drift check, a rare alias
    move), hashed as EventStore does and loaded with COPY; the champion/challenger moves are the newest."""
    prev, buf = GENESIS, io.StringIO()
    out = csv.writer(buf)
    step = span / max(n, 1)
    for i in range(n):
        at = now - timedelta(seconds=(n - i) * step)
        if i % 120 == 0:
            action, details = "drift_check", {"detected": False, "drift_share": 0.1}
        elif i % 2 == 0:
            action, details = "judge_ab", {"decision": {"action": "HOLD", "reasons": ["not enough labels"]}}
        else:
            action, details = "judge_guard", {"decision": {"action": "KEEP"}}
        row = {"event_time": at, "actor": "airflow:bench", "action": action, "model_name": MODEL, "alias": None,
               "version_before": None, "version_after": None, "reason": "tick", "metrics": {}, "details": details,
               "dry_run": False}
        if i in (n - 2, n - 1):  # the moves the windows start from: champion v1, challenger v2
            alias, version = ("champion", "1") if i == n - 2 else ("challenger", "2")
            row |= {"action": "set_alias", "alias": alias, "version_after": version, "reason": "bench",
                    "details": {}, "event_time": now - timedelta(days=2) + timedelta(seconds=i - n)}
        h = row_hash(prev, row)
        out.writerow([row["event_time"].isoformat(), row["actor"], row["action"], row["model_name"], row["alias"] or "",
                      row["version_before"] or "", row["version_after"] or "", row["reason"],
                      json.dumps(row["metrics"]), json.dumps(row["details"]), "f", prev, h])
        prev = h
    buf.seek(0)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.copy_expert("COPY model_events (event_time, actor, action, model_name, alias, version_before, "
                            "version_after, reason, metrics, details, dry_run, prev_hash, row_hash) "
                            "FROM STDIN WITH (FORMAT csv, NULL '')", buf)
        raw.commit()
    finally:
        raw.close()


def sizes(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        out = {t: conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar()
               for t in ("predictions", "feedback", "request_stats", "model_events")}
        out["database"] = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
        return out


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("predictions", "feedback", "request_stats", "model_events")}


# -- what is timed ---------------------------------------------------------------------------------------

class Registry:  # the evidence queries need only the model's name from the registry
    model_name = MODEL


def judge_tick(engine: sa.Engine, policy: Any, now: datetime) -> None:
    """evaluate_ab's and guard_champion's database reads (ab_evidence, guard_evidence without the registry)."""
    since = now - timedelta(minutes=policy.window_minutes)
    for alias, version in (("champion", "1"), ("challenger", "2")):
        set_at = evidence.alias_set_at(engine, MODEL, alias, version)
        since = max(since, set_at) if set_at else since
    mse = 1.0e9
    labels = evidence.label_sums(engine, ["1", "2"], since, None, policy.labels, mse)
    for version, variant in (("1", "A"), ("2", "B")):
        evidence.arm(engine, version, since, None, policy.latency_slo_ms, variant=variant, labels=labels)
    evidence.paired(engine, "1", "2", since, policy.labels, mse)
    g = policy.guard
    since = now - timedelta(minutes=g.window_minutes)
    labels = evidence.label_sums(engine, ["1"], since, None, policy.labels, mse, by_variant=False)
    evidence.arm(engine, "1", since, None, policy.latency_slo_ms, labels=labels)


def status_page(store: EventStore) -> bool:
    """The status page's reads of the app database (StatusReader.read)."""
    judged = ("judge_ab", "judge_guard", "notify", "drift_check")
    store.recent(MODEL, limit=15, exclude=judged)
    store.recent(MODEL, limit=10, actions=("judge_ab", "judge_guard"))
    transition_events(store.engine, MODEL, limit=10)
    store.recent(MODEL, limit=1, actions=("drift_check",))
    return store.verify(checkpoint=True).ok


def timed(fn: Any, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def measure(url: str, repeat: int, now: datetime) -> dict[str, Any]:
    policy, _ = load_policy(ROOT / "mlstack" / "rollout" / "policy.yaml")
    engine = create_engine(url)
    store = EventStore(engine, KEY.encode())
    out: dict[str, Any] = {}
    started = time.perf_counter()
    check = store.verify(full=True, checkpoint=True)
    out["verify_full"] = time.perf_counter() - started
    assert check.ok, check
    for i in range(10):
        store.append(ModelEvent("bench", "judge_ab", MODEL, "tick", details={"decision": {"action": "HOLD"}}))
    out["verify_incremental"] = timed(lambda: store.verify(checkpoint=False), repeat)
    out["judge_tick"] = timed(lambda: judge_tick(engine, policy, now), repeat)
    out["status_page"] = timed(lambda: status_page(store), repeat)
    out["rows"], out["sizes"] = counts(engine), sizes(engine)
    engine.dispose()
    return out


# -- the archive ------------------------------------------------------------------------------------------

def start_s3(tmp: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    from tests.conftest import free_ports  # the suite's port finder: free at +10000 too (SeaweedFS's gRPC)

    s3, master, volume, filer = free_ports(4)
    env = {"S3_ACCESS_KEY_ID": "bench", "S3_SECRET_ACCESS_KEY": uuid.uuid4().hex, "S3_DATA_DIR": str(tmp / "s3"),
           "S3_PORT": str(s3), "SEAWEEDFS_MASTER_PORT": str(master), "SEAWEEDFS_VOLUME_PORT": str(volume),
           "SEAWEEDFS_FILER_PORT": str(filer), "WEED_BIN": str(Path(sys.executable).parent / "weed")}
    proc = subprocess.Popen(["sh", str(ROOT / "s3" / "start.sh")], env={**os.environ, **env},
                            stdout=open(tmp / "s3.log", "w"), stderr=subprocess.STDOUT)
    settings = {"S3_ENDPOINT_URL": f"http://127.0.0.1:{s3}", "S3_BUCKET": "bench", "S3_REGION": "us-east-1",
                "S3_ACCESS_KEY_ID": env["S3_ACCESS_KEY_ID"], "S3_SECRET_ACCESS_KEY": env["S3_SECRET_ACCESS_KEY"]}
    return proc, settings


def archive(url: str, s3: dict[str, str], now: datetime) -> dict[str, Any]:
    from mlstack.lifecycle import Archiver
    from mlstack.settings import LifecycleSettings
    from mlstack.storage import client

    settings = LifecycleSettings(APP_DATABASE_URL=url, AUDIT_SIGNING_KEY=KEY, **s3)
    s3_client = client(settings)
    deadline = time.monotonic() + 60
    while True:
        try:
            s3_client.create_bucket(Bucket=s3["S3_BUCKET"])
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    engine = create_engine(url)
    started = time.perf_counter()
    report = Archiver(settings, engine, s3_client, now=now, progress=log).run_or_raise()
    seconds = time.perf_counter() - started
    raw = engine.raw_connection()  # give the space back as an operator would after the first big archive
    try:
        raw.set_isolation_level(0)
        with raw.cursor() as cur:
            cur.execute("VACUUM FULL predictions, feedback, request_stats, model_events")
    finally:
        raw.close()
    engine.dispose()
    return {"seconds": seconds, "report": report.as_dict()}


# -- the report -------------------------------------------------------------------------------------------

def mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def markdown(args: argparse.Namespace, day: dict, full: dict, after: dict, arch: dict, filled: dict) -> str:
    ms = lambda s: f"{s * 1000:,.1f} ms"  # noqa: E731
    rows = [("judge tick (evidence queries of evaluate_ab + guard_champion)", "judge_tick"),
            ("status page (its audit reads, chain from the checkpoint)", "status_page"),
            ("audit verify from the checkpoint, 10 new events", "verify_incremental"),
            ("audit verify of the whole chain (the first time only)", "verify_full")]
    lines = ["# History benchmark", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · `scripts/bench_history.py --predictions {args.predictions} "
             f"--feedback {args.feedback} --events {args.events} --stats {args.stats} --days {args.days:g}` · "
             f"PostgreSQL on 127.0.0.1, {os.cpu_count()} cores · median of {args.repeat}", "",
             f"History: {args.days:g} days of traffic, filled in {filled['history']:.0f} s; a day: the same rate for "
             "one day. Retention as shipped: predictions and labels 30 days, request stats 30, quiet ticks 14.", "",
             "| | a day | history | history after archiving |", "|---|---|---|---|"]
    for title, key in rows:
        lines.append(f"| {title} | {ms(day[key])} | {ms(full[key])} | {ms(after[key])} |")
    lines += ["", "| rows / disk | a day | history | after archiving |", "|---|---|---|---|"]
    for t in ("predictions", "feedback", "request_stats", "model_events"):
        lines.append(f"| {t} | {day['rows'][t]:,} · {mb(day['sizes'][t])} | {full['rows'][t]:,} · "
                     f"{mb(full['sizes'][t])} | {after['rows'][t]:,} · {mb(after['sizes'][t])} |")
    lines.append(f"| whole database | {mb(day['sizes']['database'])} | {mb(full['sizes']['database'])} | "
                 f"{mb(after['sizes']['database'])} |")
    rep = arch["report"]
    archived = sum(t["rows"] for t in rep["tables"].values())
    files = sum(len(t["files"]) for t in rep["tables"].values())
    stored = sum(t["bytes"] for t in rep["tables"].values())
    lines += ["", f"archive_history on the history: {archived:,} rows to {files:,} Parquet files ({mb(stored)}) in "
              f"{arch['seconds']:.0f} s; chain after it: {'verified' if rep.get('chain_ok') else 'BROKEN'}. "
              "Disk after archiving holds the retention windows only (then `VACUUM FULL`, which an operator runs "
              "once after the first archive of a long history; routine daily archives reuse the freed pages).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=10_000_000)
    parser.add_argument("--feedback", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--stats", type=int, default=3_000_000, help="request_stats rows")
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "bench-history.md")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    names = {"day": f"bench_history_day_{uuid.uuid4().hex[:6]}", "history": f"bench_history_{uuid.uuid4().hex[:6]}"}
    filled: dict[str, float] = {}
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            proc, s3 = start_s3(Path(tmp))
            results = {}
            for label, scale in (("day", 1 / args.days), ("history", 1.0)):
                url = fresh_database(names[label])
                engine = create_engine(url)
                upgrade(engine)
                log(f"{label}: filling")
                started = time.monotonic()
                fill(engine, predictions=int(args.predictions * scale), labels=int(args.feedback * scale),
                     stats=int(args.stats * scale), events=int(args.events * scale), days=args.days * scale, now=now)
                filled[label] = time.monotonic() - started
                engine.dispose()
                results[label] = measure(url, args.repeat, now)
                log(f"{label}: { {k: v for k, v in results[label].items() if k not in ('rows', 'sizes')} }")
            log("history: archive_history")
            arch = archive(f"{PG}/{names['history']}", s3, now)
            after = measure(f"{PG}/{names['history']}", args.repeat, now)
            log(f"after archiving: { {k: v for k, v in after.items() if k not in ('rows', 'sizes')} }")
            text = markdown(args, results["day"], results["history"], after, arch, filled)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        for name in names.values():
            drop_database(name)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
