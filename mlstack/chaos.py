"""Chaos soak: kill -9 a random service at a steady pace under simulated users, then count what was kept.

    python -m mlstack.chaos                                   # 30 min, a kill every 2 min, the native stack
    python -m mlstack.chaos --mode compose --minutes 5 --every 30 --seed 3

Each round picks a service (seeded: every service once, in a shuffled order, before any twice), kills
its whole process group (natively) or its container's first process (Compose) with SIGKILL, and
waits for the supervisor or the engine to bring it back, timing it. Meanwhile the simulator sends
predictions and their labels through nginx. Afterwards every prediction answered 200 and every label
answered 202 must be in the app database, the audit chain must verify, and no alias may have moved
(healthy traffic calls for no promotion and no rollback). The report goes to `reports/chaos.md`.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlstack.deployment import StackError

# What a crash may hit, in both modes; PostgreSQL only where the stack runs its own (Compose).
SERVICES = ("backend-a", "backend-b", "nginx", "frontend", "mlflow", "s3", "postgres", "airflow-api-server",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "prometheus", "alertmanager")


def plan(services: Sequence[str], rounds: int, seed: int) -> list[str]:
    """The services to kill, one per round: each once in a shuffled order before any twice."""
    rng, out = random.Random(seed), []
    while len(out) < rounds:
        order = list(services)
        rng.shuffle(order)
        if out and order[0] == out[-1] and len(order) > 1:  # never the same service twice in a row
            order[0], order[-1] = order[-1], order[0]
        out.extend(order)
    return out[:rounds]


@dataclass
class Kill:
    service: str
    at: float  # seconds since the soak started
    pid: int
    recovered: float | None = None  # seconds until healthy again with a new process, None if not in time


@dataclass
class Result:
    kills: list[Kill] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)
    predictions_accepted: int = 0
    predictions_lost: list[str] = field(default_factory=list)
    labels_accepted: int = 0
    labels_lost: list[str] = field(default_factory=list)
    chain_verified: bool = False
    chain_output: str = ""
    alias_moves: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.predictions_lost and not self.labels_lost and self.chain_verified and not self.alias_moves
                and all(k.recovered is not None for k in self.kills))


def wait_recovered(deployment: Any, service: str, old_pid: int, timeout: float,
                   since: datetime | None = None) -> float | None:
    """Seconds until `service` runs as a new process and passes its health check (after `since`), or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if deployment.main_pid(service) != old_pid and deployment.healthy(service, since):
                return time.monotonic() - started
        except (StackError, OSError, subprocess.SubprocessError, ValueError):
            pass  # not back yet: no process, no container
        time.sleep(0.5)
    return None


def missing(engine: sa.Engine, table: str, ids: list[str], timeout: float = 120) -> list[str]:
    """The ids not in `table` once the slots' journals had `timeout` seconds to reach the database."""
    deadline, left = time.monotonic() + timeout, list(dict.fromkeys(ids))
    while True:
        found: set[str] = set()
        try:
            with engine.connect() as conn:
                for i in range(0, len(left), 1000):
                    chunk = left[i:i + 1000]
                    rows = conn.execute(sa.text(f"SELECT prediction_id FROM {table} WHERE prediction_id IN :ids")
                                        .bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk})
                    found |= {r[0] for r in rows}
        except sa.exc.OperationalError:
            pass  # the database is still coming back
        left = [i for i in left if i not in found]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(2)


def alias_moves(engine: sa.Engine, since: datetime) -> list[dict[str, Any]]:
    query = sa.text("SELECT id, action, alias, version_before, version_after, reason FROM model_events "
                    "WHERE action IN ('set_alias', 'remove_alias') AND NOT dry_run AND event_time >= :since")
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query, {"since": since})]


def soak(deployment: Any, rows: Any, contract: Any, *, minutes: float, every: float, seed: int,
         rate: float = 20.0, recover_timeout: float = 240.0,
         say: Callable[[str], None] = lambda line: print(line, flush=True)) -> Result:
    """Run the soak on a running deployment; return what was killed, how long each took, what was kept."""
    from mlstack.simulator import Simulator

    s = deployment.settings
    present = set(deployment.health())
    services = [name for name in SERVICES if name in present]
    rounds = max(1, int(minutes * 60 // every))
    targets = plan(services, rounds, seed)
    engine = sa.create_engine(deployment.client_env()["APP_DATABASE_URL"], pool_pre_ping=True)
    result, since, started = Result(), datetime.now(UTC), time.monotonic()
    sim = Simulator(s.WEB_PORT, rows, contract, rate=rate, threads=4, feedback_delay=1.0, seed=seed)
    runner = threading.Thread(target=sim.run, args=(minutes * 60 + 3600,), daemon=True)
    runner.start()
    say(f"chaos: {rounds} kills of {', '.join(sorted(set(targets)))} every {every:.0f} s under {rate:.0f} requests/s")
    try:
        for n, service in enumerate(targets, 1):
            due = started + n * every - every / 2  # the first kill half a period in, traffic warmed up
            time.sleep(max(0.0, due - time.monotonic()))
            at = datetime.now(UTC)
            pid = deployment.kill(service)
            kill = Kill(service, round(time.monotonic() - started, 1), pid)
            result.kills.append(kill)
            took = wait_recovered(deployment, service, pid, recover_timeout, since=at)
            kill.recovered = None if took is None else round(took, 1)
            say(f"chaos: [{n}/{rounds}] {service} (pid {pid}) killed at {kill.at:.0f} s, "
                + (f"back in {took:.1f} s" if took is not None else f"NOT back within {recover_timeout:.0f} s"))
        time.sleep(max(0.0, started + minutes * 60 - time.monotonic()))
    finally:
        sim.stop()
        runner.join(timeout=60)
    for name in services:  # everything back before counting
        wait_recovered(deployment, name, -1, recover_timeout)
    result.traffic = sim.report.as_dict()
    result.predictions_accepted, result.labels_accepted = len(sim.accepted), len(sim.labelled)
    result.predictions_lost = missing(engine, "predictions", sim.accepted)
    result.labels_lost = missing(engine, "feedback", sim.labelled)
    verify = subprocess.run([sys.executable, "-m", "mlstack", "audit", "verify"], capture_output=True, text=True,
                            env={**os.environ, **deployment.client_env()}, timeout=300)
    result.chain_verified = verify.returncode == 0 and "audit chain verified" in verify.stdout
    result.chain_output = (verify.stdout + verify.stderr).strip()[-500:]
    result.alias_moves = alias_moves(engine, since)
    result.seconds = round(time.monotonic() - started, 1)
    engine.dispose()
    return result


def markdown(result: Result, *, mode: str, minutes: float, every: float, seed: int) -> str:
    """The soak's report: the kills with their recovery times, then what was kept."""
    per: dict[str, list[float | None]] = {}
    for k in result.kills:
        per.setdefault(k.service, []).append(k.recovered)
    lines = [f"# Chaos soak ({mode})", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · `python -m mlstack.chaos --mode {mode} --minutes {minutes:g} "
             f"--every {every:g} --seed {seed}` · {result.seconds / 60:.1f} min · verdict: "
             f"**{'PASS' if result.ok else 'FAIL'}**", "",
             "| service | kills | back in (s) each time |", "|---|---|---|"]
    for name, times in sorted(per.items()):
        shown = ", ".join("not back" if t is None else f"{t:.1f}" for t in times)
        lines.append(f"| {name} | {len(times)} | {shown} |")
    t = result.traffic
    lines += ["", "| count | value |", "|---|---|",
              f"| predictions sent / answered 200 | {t.get('sent', 0)} / {result.predictions_accepted} |",
              f"| answers other than 200 (by status; 0 = no connection) | "
              f"{ {k: v for k, v in t.get('answered', {}).items() if k != 200} } |",
              f"| accepted predictions missing from the database | {len(result.predictions_lost)} |",
              f"| labels answered 202 / missing from the database | {result.labels_accepted} / "
              f"{len(result.labels_lost)} |",
              f"| requests sent again on a new connection (kept-alive one closed) | {t.get('retried', 0)} |",
              f"| audit chain | {'verified' if result.chain_verified else 'FAILED: ' + result.chain_output} |",
              f"| alias moves during the soak (none called for) | {len(result.alias_moves)} |", ""]
    if result.predictions_lost or result.labels_lost:
        lines += [f"Missing: {(result.predictions_lost + result.labels_lost)[:20]}", ""]
    lines += ["Requests answered other than 200 are requests that never got accepted (nginx or the frontend was",
              "down, or a slot was killed while answering): the client was told, nothing it was told about is lost.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from mlstack.contracts import get_contract
    from mlstack.deployment import open_deployment
    from mlstack.settings import TrainingSettings, load
    from mlstack.simulator import holdout_rows

    parser = argparse.ArgumentParser(prog="mlstack.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("native", "compose"), default="native")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=120, help="seconds between kills")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=20, help="predictions per second")
    parser.add_argument("--report", type=Path, default=Path("reports/chaos.md"))
    args = parser.parse_args(argv)
    console = Console()
    deployment = open_deployment(args.mode, console=console)
    deployment.up()  # the soak's own stack, in its mode: started, or updated and checked when it runs already
    data = load(TrainingSettings)  # the contract and the data the simulated users draw their rows from
    contract = get_contract(data.DATA_CONTRACT)
    rows = holdout_rows(data.DATA_PATH, contract)
    result = soak(deployment, rows, contract, minutes=args.minutes, every=args.every, seed=args.seed, rate=args.rate,
                  say=lambda line: console.print(line, highlight=False))
    text = markdown(result, mode=args.mode, minutes=args.minutes, every=args.every, seed=args.seed)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    console.print(text, highlight=False)
    console.print(f"report: {args.report}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
