#!/usr/bin/env python3
"""Measure what monitoring costs: CPU of Prometheus, Alertmanager, the Pushgateway and the exporters
against the rest of the native stack, under simulated users at --rate requests/s.

    scripts/bench_monitoring.py --rate 100 --seconds 60     # writes reports/bench-monitoring.md

Needs `make up`. CPU is read from /proc for every process of every supervisord program (children
included: gunicorn workers, Airflow's task processes); the load generator is not counted.
Target (issue 5): monitoring adds less than 5% CPU to the stack at 100 requests/s.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONITORING = {"prometheus", "alertmanager", "pushgateway", "nginx-exporter", "postgres-exporter", "blackbox-exporter"}
TARGET = 0.05


def program_pids(stack) -> dict[str, int]:  # noqa: ANN001
    out = {}
    for line in stack.ctl("status", check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            out[parts[0]] = int(parts[3].rstrip(","))
    return out


def process_tree(pid: int) -> list:
    """A process and all its descendants alive now (psutil.Process objects); [] if it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (those alive now)."""
    import psutil

    procs = process_tree(pid)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "bench-monitoring.md")
    args = parser.parse_args(argv)

    from mlstack.contracts import get_contract
    from mlstack.native.stack import Stack
    from mlstack.settings import StackSettings, TrainingSettings, load
    from mlstack.simulator import Simulator, holdout_rows

    stack = Stack(load(StackSettings))
    training = load(TrainingSettings)
    contract = get_contract(training.DATA_CONTRACT)
    rows = holdout_rows(training.DATA_PATH, contract, training.SPLIT_SEED, training.HOLDOUT_FRACTION)
    pids = program_pids(stack)
    missing = MONITORING - set(pids) - ({"postgres-exporter"} if not stack.settings.uses_postgres else set())
    if missing:
        print(f"not running: {', '.join(sorted(missing))} (make up, with MONITORING_ENABLED=true)", file=sys.stderr)
        return 2
    sim = Simulator(stack.settings.WEB_PORT, rows, contract, rate=args.rate, threads=8, feedback_delay=1.0)
    runner = threading.Thread(target=sim.run, args=(args.seconds + 15,), daemon=True)
    runner.start()
    time.sleep(10)  # warm up: connections, caches, the first scrapes
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(args.seconds)
    elapsed = time.monotonic() - started
    after = {name: cpu_seconds(pid) for name, pid in program_pids(stack).items()}
    sim.stop()
    runner.join(timeout=30)
    used = {name: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name in pids}
    monitoring = sum(v for k, v in used.items() if k in MONITORING)
    rest = sum(v for k, v in used.items() if k not in MONITORING)
    ratio = monitoring / rest if rest else float("nan")
    served = sim.report.answered.get(200, 0)
    lines = [
        "# Monitoring overhead", "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `scripts/bench_monitoring.py` on the native stack: "
        f"simulated users at {args.rate:g} requests/s (with feedback) for {elapsed:.0f} s; "
        f"{served:,} predictions answered ({served / (elapsed + 15):.0f}/s over the run).", "",
        f"**Monitoring used {monitoring:.2f} CPU-seconds against {rest:.2f} for the rest of the stack: "
        f"+{ratio:.1%} (target < {TARGET:.0%}: {'met' if ratio < TARGET else 'missed'}).** "
        f"In cores: {monitoring / elapsed:.3f} for monitoring, {rest / elapsed:.3f} for the stack.", "",
        "| program | CPU-seconds | cores | monitoring |", "|---|---:|---:|---|"]
    for name, value in sorted(used.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {value:.2f} | {value / elapsed:.3f} | {'yes' if name in MONITORING else ''} |")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
