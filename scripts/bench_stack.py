#!/usr/bin/env python3
"""Measure the native stack as a whole: `make up` to the first prediction, and steady-state memory.

    scripts/bench_stack.py                    # writes reports/bench-stack.md

1. Stops the stack, then times `python -m mlstack.native up` (what `make up` runs once installed)
   until nginx answers a first prediction, and until every service is healthy. Warm: the existing
   state (a champion is registered). Cold: a fresh var dir (empty stores, a first training run).
2. Under simulated users (--rate requests/s, with feedback) for --seconds, samples the memory of
   every process of every supervisord program (children included: gunicorn workers, Airflow's
   task processes): RSS, and PSS, which splits shared pages fairly (RSS counts them in each).

Targets (issue 6): first prediction ≤ 90 s once installed; whole native stack ≤ 3 GB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_monitoring import process_tree, program_pids  # noqa: E402

GB = 1024 ** 3


def first_prediction(port: int, body: bytes, started: float, stop: threading.Event, out: dict) -> None:
    """Poll /api/predict through nginx; record seconds from `started` to the first 200."""
    while not stop.is_set():
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/predict", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    out["first_prediction"] = time.monotonic() - started
                    return
        except OSError:
            pass
        time.sleep(0.25)


def timed_up(env: dict[str, str], port: int, body: bytes) -> dict:
    out: dict = {}
    stop = threading.Event()
    started = time.monotonic()
    poller = threading.Thread(target=first_prediction, args=(port, body, started, stop, out), daemon=True)
    poller.start()
    proc = subprocess.run([sys.executable, "-m", "mlstack.native", "up"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    out["all_healthy"] = time.monotonic() - started
    stop.set()
    poller.join(timeout=5)
    if proc.returncode != 0:
        raise SystemExit(f"mlstack.native up failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return out


def memory(pids: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """program → (RSS bytes, PSS bytes, processes), children included."""
    import psutil

    out = {}
    for name, pid in pids.items():
        procs = process_tree(pid)
        if not procs:
            continue
        rss = pss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
                rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        out[name] = (rss, pss, len(procs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--skip-cold", action="store_true", help="only the warm start (no fresh var dir)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "bench-stack.md")
    args = parser.parse_args(argv)

    from mlstack.contracts import get_contract
    from mlstack.native.stack import Stack
    from mlstack.settings import StackSettings, TrainingSettings, load
    from mlstack.simulator import Simulator, holdout_rows

    settings = load(StackSettings)
    training = load(TrainingSettings)
    contract = get_contract(training.DATA_CONTRACT)
    body = json.dumps(contract.example()).encode()
    env = {**os.environ}
    starts = {}
    down = [sys.executable, "-m", "mlstack.native", "down"]
    if not args.skip_cold:
        subprocess.run(down, cwd=ROOT, env=env, capture_output=True, check=True)
        cold_var = Path(tempfile.mkdtemp(prefix="mlstack-bench-"))
        # fresh stores: SQLite and a local bucket in a new var dir (a PostgreSQL URL would reuse its data)
        cold_env = {**env, "MLSTACK_VAR_DIR": str(cold_var), "MLFLOW_DATABASE_URL": "", "APP_DATABASE_URL": "",
                    "AIRFLOW_DATABASE_URL": ""}
        print("cold start (fresh var dir, first training) ...", flush=True)
        try:
            starts["cold"] = timed_up(cold_env, settings.WEB_PORT, body)
        finally:
            subprocess.run(down, cwd=ROOT, env=cold_env, capture_output=True)
            shutil.rmtree(cold_var, ignore_errors=True)
    subprocess.run(down, cwd=ROOT, env=env, capture_output=True, check=True)
    print("warm start (existing state) ...", flush=True)
    starts["warm"] = timed_up(env, settings.WEB_PORT, body)
    for kind, t in starts.items():
        print(f"  {kind}: first prediction after {t.get('first_prediction', float('nan')):.1f} s; "
              f"every service healthy after {t['all_healthy']:.1f} s", flush=True)

    stack = Stack(settings)
    rows = holdout_rows(training.DATA_PATH, contract, training.SPLIT_SEED, training.HOLDOUT_FRACTION)
    sim = Simulator(settings.WEB_PORT, rows, contract, rate=args.rate, threads=4, feedback_delay=1.0)
    runner = threading.Thread(target=sim.run, args=(args.seconds + 20,), daemon=True)
    runner.start()
    time.sleep(20)  # steady state: workers warm, first scrapes and DAG runs done
    samples = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        samples.append(memory(program_pids(stack)))
        time.sleep(5)
    sim.stop()
    runner.join(timeout=30)
    peak = max(samples, key=lambda m: sum(v[0] for v in m.values()))
    rss = sum(v[0] for v in peak.values())
    pss = sum(v[1] for v in peak.values())
    warm = starts["warm"].get("first_prediction", float("inf"))
    lines = ["# Whole-stack benchmark", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores; native stack "
             f"({'PostgreSQL' if settings.uses_postgres else 'SQLite'} stores, Airflow "
             f"{'on' if settings.AIRFLOW_ENABLED else 'off'}, monitoring {'on' if settings.MONITORING_ENABLED else 'off'}).",
             "", "| start | first prediction through nginx | every service healthy |", "|---|---:|---:|"]
    for kind, t in starts.items():
        label = {"warm": "`make up` once installed (state kept)", "cold": "fresh var dir (first training)"}[kind]
        lines.append(f"| {label} | {t.get('first_prediction', float('nan')):.1f} s | {t['all_healthy']:.1f} s |")
    lines += ["", f"Memory at its peak over {len(samples)} samples ({args.seconds:.0f} s at {args.rate:g} requests/s "
              f"with feedback; {sim.report.answered.get(200, 0):,} predictions answered): **{rss / GB:.2f} GB RSS**, "
              f"{pss / GB:.2f} GB PSS (shared pages counted once).", "",
              "| program | processes | RSS MB | PSS MB |", "|---|---:|---:|---:|"]
    for name, (r, p, n) in sorted(peak.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {name} | {n} | {r / 2**20:,.0f} | {p / 2**20:,.0f} |")
    checks = [("first prediction ≤ 90 s once installed", warm <= 90, f"{warm:.1f} s"),
              ("whole native stack ≤ 3 GB RSS", rss <= 3 * GB, f"{rss / GB:.2f} GB")]
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'met' if ok else 'MISSED'} |" for t, ok, m in checks]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
