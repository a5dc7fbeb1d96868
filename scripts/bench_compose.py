#!/usr/bin/env python3
"""Measure the Compose stack: from nothing to the first prediction, a rebuild after a code change,
image sizes and the idle memory of every service.

    scripts/bench_compose.py                  # writes reports/bench-compose.md (make bench-compose)

1. Cold: removes this project's images, the base image it made and the engine's build cache, then
   times `python -m mlstack.compose up` (make the base, build every image, start, wait until healthy)
   until nginx answers a first prediction. With --keep-base the base image stays.
2. A one-line change: appends a comment to mlstack/deployment.py, times `up` again (the layer cache
   rebuilds the package layer only) to the first prediction answered by the recreated slots, and
   takes the line out again.
3. Sizes of the images, then the memory of every container after --idle seconds without traffic
   (`docker stats`, summed).
4. If reports/test-parts.tsv exists (written by `make test`), each part's share of the test run.

Runs its own Compose project on free ports, torn down at the end (volumes included).
Targets (issue 13): cold ≤ 10 min; after a change ≤ 2 min; the Python image ≤ 1.2 GB;
idle memory ≤ 3.5 GB; make test ≤ 45 min.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
from bench_stack import first_prediction  # noqa: E402

MB = 1000 ** 2


def image_id(name: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                          text=True).stdout.strip()


def timed_up(stack, port: int, body: bytes) -> dict:
    out: dict = {}
    stop = threading.Event()
    started = time.monotonic()
    poller = threading.Thread(target=first_prediction, args=(port, body, started, stop, out), daemon=True)
    poller.start()
    stack.up()
    out["healthy"] = time.monotonic() - started
    poller.join(timeout=120)
    stop.set()
    return out


def memory(project: str) -> dict[str, float]:
    names = subprocess.run(["docker", "ps", "--filter", f"label=com.docker.compose.project={project}", "--format",
                            "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", *names], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    out = {}
    for line in stats:
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number, unit = float(used.rstrip("KMGiBk")), used.lstrip("0123456789.")
        out[row["Name"].removeprefix(f"{project}-").rsplit("-", 1)[0]] = number * {
            "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "kB": 1000, "MB": MB, "GB": 1000 ** 3, "B": 1}[unit] / MB
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=120, help="seconds without traffic before reading memory")
    parser.add_argument("--keep-base", action="store_true", help="keep the base image (time only the build)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "bench-compose.md")
    args = parser.parse_args()

    from rich.console import Console

    from mlstack.compose.stack import ComposeStack
    from mlstack.contracts import get_contract
    from mlstack.settings import StackSettings, load
    from tests.conftest import free_ports
    from tests.e2e.conftest import PORTS, write_env

    home = Path(tempfile.mkdtemp(prefix="bench-compose-"))
    env_path = home / ".env"
    project = f"mlstack-bench-{os.getpid()}"
    write_env(env_path, {**dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True)),
                         "COMPOSE_PROJECT_NAME": project, "COMPOSE_PROFILES": "", "MLSTACK_VAR_DIR": str(home / "var")})
    os.environ["MLSTACK_ENV_FILE"] = str(env_path)
    stack = ComposeStack(load(StackSettings), Console(), env_path=env_path)
    port = stack.settings.WEB_PORT
    body = json.dumps(get_contract("california_housing").example()).encode()
    results: dict = {"when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "cores": os.cpu_count()}
    touched = ROOT / "mlstack" / "deployment.py"
    original = touched.read_text()
    try:
        images = [i for i in subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                                            capture_output=True, text=True).stdout.split() if i.startswith("mlstack/")]
        if not args.keep_base:
            images.append("debian:bookworm-slim")
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True)
        subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
        print(f"cold: removed {len(images)} images and the build cache; make compose-up from nothing", flush=True)
        results["cold"] = timed_up(stack, port, body)
        print(f"cold: first prediction after {results['cold'].get('first_prediction', 0):.0f} s", flush=True)

        touched.write_text(original + "# bench_compose: a one-line change\n")
        before = image_id("mlstack/python:local")
        stack.down()  # the old containers go: the first prediction comes from the rebuilt image
        results["change"] = timed_up(stack, port, body)
        results["change"]["rebuilt"] = image_id("mlstack/python:local") != before
        touched.write_text(original)
        print(f"after a one-line change: first prediction after {results['change'].get('first_prediction', 0):.0f} s",
              flush=True)

        results["images"] = {}
        for line in subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
                                   capture_output=True, text=True).stdout.splitlines():
            name, _, size = line.partition(" ")
            if name.startswith(("mlstack/", "debian:")):
                results["images"][name] = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", name],
                                                             capture_output=True, text=True).stdout) / MB
        print(f"idle for {args.idle:.0f} s, then docker stats", flush=True)
        time.sleep(args.idle)
        results["memory"] = memory(project)
    finally:
        touched.write_text(original)
        stack.down(volumes=True)
    parts = ROOT / "reports" / "test-parts.tsv"
    if parts.exists():
        results["test_parts"] = [line.split("\t") for line in parts.read_text().splitlines() if line]
    write_report(args.report, results)
    print(args.report.read_text())
    return 0


def write_report(path: Path, r: dict) -> None:
    mem = r["memory"]
    total = sum(mem.values())
    lines = [
        "# Compose benchmark", "",
        f"Measured {r['when']} on {r['cores']} cores by `scripts/bench_compose.py` (make bench-compose).", "",
        "| what | measured | target |", "|---|---|---|",
        f"| from nothing (base image made, every image built) to the first prediction | "
        f"{r['cold'].get('first_prediction', float('nan')):.0f} s (all healthy {r['cold']['healthy']:.0f} s) | ≤ 600 s |",
        f"| after a one-line code change (rebuild + recreate) to the first prediction | "
        f"{r['change'].get('first_prediction', float('nan')):.0f} s (all healthy {r['change']['healthy']:.0f} s; "
        f"python image rebuilt: {'yes' if r['change']['rebuilt'] else 'no'}) | ≤ 120 s |",
        f"| the Python image | {r['images'].get('mlstack/python:local', 0):,.0f} MB | ≤ 1,200 MB |",
        f"| idle memory of the whole stack (docker stats, sum) | {total:,.0f} MB | ≤ 3,500 MB |", "",
        "## Images", "", "| image | size (MB) |", "|---|---|",
        *[f"| {name} | {size:,.0f} |" for name, size in sorted(r["images"].items())], "",
        "## Idle memory by service", "", "| service | MB |", "|---|---|",
        *[f"| {name} | {value:,.0f} |" for name, value in sorted(mem.items(), key=lambda kv: -kv[1])],
        f"| **total** | **{total:,.0f}** |", "",
    ]
    if r.get("test_parts"):
        whole = sum(float(p[1]) for p in r["test_parts"])
        lines += ["## make test, by part", "", "| part | seconds | share |", "|---|---|---|",
                  *[f"| {name} | {float(sec):,.0f} | {float(sec) / whole:.0%} |" for name, sec in r["test_parts"]],
                  f"| **total** | **{whole:,.0f}** ({whole / 60:.1f} min) | |", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
