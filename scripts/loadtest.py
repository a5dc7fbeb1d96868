#!/usr/bin/env python3
"""Run the Locust scenarios (tests/load/locustfile.py) headless against nginx and summarise them.

    scripts/loadtest.py --users 50 --spawn-rate 10 --duration 60s
    make loadtest USERS=50 SPAWN_RATE=10 DURATION=60s

Writes Locust's HTML report and CSV files to reports/ (loadtest.html, loadtest_stats.csv,
loadtest_stats_history.csv, loadtest_failures.csv), prints a table per request type, and exits 1
when any request failed or the failure ratio is above --max-failure-ratio. Needs the stack up
(make up). Locust runs in its own process (it monkey-patches the standard library).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def summarise(prefix: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    with (prefix.parent / f"{prefix.name}_stats.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return [r for r in rows if r["Name"] != "Aggregated"], total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="concurrent simulated people")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="people started per second")
    parser.add_argument("--duration", default="30s", help="run time (Locust syntax: 30s, 2m, 1h)")
    parser.add_argument("--host", help="nginx base URL; default http://127.0.0.1:${WEB_PORT}")
    parser.add_argument("--reports", type=Path, default=ROOT / "reports")
    parser.add_argument("--max-failure-ratio", type=float, default=0.0)
    args = parser.parse_args(argv)

    from mlstack.settings import StackSettings, load

    host = args.host or f"http://127.0.0.1:{load(StackSettings).WEB_PORT}"
    args.reports.mkdir(parents=True, exist_ok=True)
    prefix = args.reports / "loadtest"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "load" / "locustfile.py"), "--headless",
           "--host", host, "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.duration,
           "--html", str(prefix.with_suffix(".html")), "--csv", str(prefix), "--csv-full-history",
           "--only-summary", "--stop-timeout", "10", "--exit-code-on-error", "0"]
    print(f"loadtest: {args.users} users (+{args.spawn_rate}/s) for {args.duration} against {host}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not (args.reports / "loadtest_stats.csv").exists():
        print(proc.stdout[-4000:], file=sys.stderr)
        print(f"loadtest: locust exited {proc.returncode}", file=sys.stderr)
        return 2
    rows, total = summarise(prefix)
    head = f"{'request':44} {'count':>7} {'fail':>5} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6} ms"
    print(head)
    print("-" * len(head))
    for r in [*rows, total]:
        print(f"{r['Type'] + ' ' + r['Name'] if r['Name'] != 'Aggregated' else 'all':44.44} "
              f"{int(r['Request Count']):7d} {int(r['Failure Count']):5d} {float(r['Requests/s']):7.1f} "
              f"{r['50%']:>6} {r['95%']:>6} {r['99%']:>6}")
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    ratio = failures / requests if requests else 1.0
    print(f"\nloadtest: {requests} requests, {failures} failed ({ratio:.2%}); "
          f"reports: {prefix.with_suffix('.html')}, {prefix}_stats.csv")
    if failures:
        with (args.reports / "loadtest_failures.csv").open() as fh:
            for r in list(csv.DictReader(fh))[:10]:
                print(f"  {r['Occurrences']:>5} × {r['Method']} {r['Name']}: {r['Error'][:160]}")
    if requests == 0:
        print("loadtest: no request was sent", file=sys.stderr)
        return 1
    return 0 if ratio <= args.max_failure_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
