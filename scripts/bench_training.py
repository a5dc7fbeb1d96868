#!/usr/bin/env python3
"""Benchmark the training pipeline end to end and check it against the targets.

Runs `mlstack.training.pipeline.train` (load → validate → fit → search → evaluate → log →
register) on the full data set against the running native stack, registering under a separate
model name so the benchmark never touches the real champion. Prints per-step times, total time,
peak memory and holdout RMSE, and writes reports/bench-training.md.

Targets (issue 2): end to end at most 60 s on 2 cores; best holdout RMSE at most 48,000 USD.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_SECONDS = 60.0
TARGET_RMSE = 48_000.0


class TimingProgress:
    """Record how long each pipeline step takes, and echo progress."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def start(self, step: str, description: str, total: int | None = None) -> None:
        self.started[step] = time.perf_counter()
        print(f"  {step:<10} {description}", flush=True)

    def advance(self, step: str, note: str = "") -> None:
        pass

    def finish(self, step: str, note: str = "") -> None:
        self.seconds[step] = time.perf_counter() - self.started[step]
        print(f"  {step:<10} done in {self.seconds[step]:.1f}s  {note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="training runs to time (default 2)")
    parser.add_argument("--model-name", default="house-price-bench", help="registered model used by the benchmark")
    parser.add_argument("--report", type=Path, default=Path("reports/bench-training.md"))
    args = parser.parse_args(argv)

    from mlstack.settings import TrainingSettings, load
    from mlstack.training.pipeline import train

    settings = load(TrainingSettings, MODEL_NAME=args.model_name, MLFLOW_EXPERIMENT_NAME=args.model_name)
    rows = []
    for i in range(1, args.runs + 1):
        print(f"run {i}/{args.runs}: training {settings.DATA_PATH} into {settings.MODEL_NAME}", flush=True)
        progress = TimingProgress()
        started = time.perf_counter()
        result = train(settings, actor="benchmark", progress=progress)
        total = time.perf_counter() - started
        rows.append((i, total, result.metrics.rmse, result.family, result.version, progress.seconds))
        print(f"run {i}: {total:.1f}s, holdout RMSE {result.metrics.rmse:,.0f} ({result.family})", flush=True)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worst = max(r[1] for r in rows)
    best_rmse = min(r[2] for r in rows)
    ok_time, ok_rmse = worst <= TARGET_SECONDS, best_rmse <= TARGET_RMSE
    steps = list(rows[0][5])
    lines = [
        "# Training pipeline benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {platform.node()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; data {settings.DATA_PATH}; MLflow at {settings.MLFLOW_TRACKING_URI}.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| end to end ≤ {TARGET_SECONDS:.0f} s | {worst:.1f} s (slowest of {len(rows)} runs) | "
        f"{'met' if ok_time else 'MISSED by ' + format(worst - TARGET_SECONDS, '.1f') + ' s'} |",
        f"| best holdout RMSE ≤ {TARGET_RMSE:,.0f} USD | {best_rmse:,.0f} USD | "
        f"{'met' if ok_rmse else 'MISSED by ' + format(best_rmse - TARGET_RMSE, ',.0f') + ' USD'} |",
        "",
        "| run | total s | " + " | ".join(f"{s} s" for s in steps) + " | holdout RMSE | family | version |",
        "|---|---|" + "---|" * len(steps) + "---|---|---|",
    ]
    for i, total, rmse, family, version, secs in rows:
        lines.append(f"| {i} | {total:.1f} | " + " | ".join(f"{secs.get(s, 0):.1f}" for s in steps)
                     + f" | {rmse:,.0f} | {family} | {version} |")
    lines += ["", f"Peak RSS of the benchmark process: {peak_mb:,.0f} MB."]
    report = "\n".join(lines) + "\n"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print()
    print(report)
    print(f"report written to {args.report}")
    return 0 if ok_time and ok_rmse else 1


if __name__ == "__main__":
    sys.exit(main())
