#!/usr/bin/env python3
"""Benchmark serving side by side in one run, on the same model and machine, and check the targets.

Contenders, each under wrk with the same threads, connections and duration:
  nginx    POST /api/predict through nginx (the product path)
  slot     POST /predict on slot A directly
  noop     a no-op Flask endpoint under the same gunicorn settings (the floor)
  mlflow   `mlflow models serve` on the same model version (/invocations)
Batch: POST /api/predict/batch with 10,000 rows vs in-process `model.predict` on the same rows.
Writes reports/bench-serving.md. Needs the native stack running (make up) and wrk.

Targets (issue 3): nginx ≥ 3× mlflow requests/s at ≤ ½ its p99; nginx ≥ 70% of noop;
nginx adds ≤ 1 ms p99 over the slot; batch ≥ 50% of in-process rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a free port below 32768 (ephemeral ports are refused by the settings)."""
    import random

    while True:
        port = random.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError as exc:
            if getattr(exc, "code", None) in (404, 405):  # up, just not a GET route
                return
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


def wrk(url: str, body: str, threads: int, connections: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(body)
    env = {**os.environ, "WRK_BODY_FILE": fh.name}
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(ROOT / "scripts" / "bench_wrk.lua"),
           url]
    subprocess.run([*cmd[:3], "-d2s", *cmd[4:]], env=env, capture_output=True)  # warm-up
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    os.unlink(fh.name)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the report gives median and range")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--report", type=Path, default=Path("reports/bench-serving.md"))
    args = parser.parse_args(argv)

    import mlflow
    import pandas as pd

    from mlstack.contracts import get_contract
    from mlstack.native.stack import Stack
    from mlstack.settings import BackendSettings, StackSettings, load

    stack = Stack(load(StackSettings))
    s = stack.settings
    contract = get_contract(load(BackendSettings).DATA_CONTRACT)
    record = contract.example()
    body = json.dumps(record)
    info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{s.BACKEND_A_PORT}/model-info").read())
    name, version = info["model"]["name"], info["model"]["version"]
    workers = load(BackendSettings).BACKEND_WORKERS
    print(f"model {name} v{version}; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s; "
          f"{workers} gunicorn workers per server", flush=True)

    # The rate limit protects the stack, not a benchmark from 127.0.0.1: lift it for the run.
    limits = s.NGINX_RATE_LIMIT, s.NGINX_RATE_BURST
    s.NGINX_RATE_LIMIT, s.NGINX_RATE_BURST = 1_000_000, 1_000_000
    stack.set_ab_weight(s.AB_WEIGHT_B)
    procs = []
    results: dict[str, dict] = {}
    rounds: dict[str, list[dict]] = {}
    try:
        noop_port, mlflow_port = free_port(), free_port()
        env = {**os.environ, "BACKEND_PORT": str(noop_port), "BACKEND_WORKERS": str(workers), "SLOT": "A",
               "PROMETHEUS_MULTIPROC_DIR": ""}
        procs.append(subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "inference/backend/gunicorn.conf.py"),
                                       "--chdir", str(ROOT / "scripts"), "bench_noop_app:app"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}/{version}",
                                       "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port),
                                       "-w", str(workers)],
                                      env={**os.environ, "MLFLOW_TRACKING_URI": s.tracking_uri, "OMP_NUM_THREADS": "1",
                                           # it execs `uvicorn`, which lives beside this interpreter
                                           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{noop_port}/predict")
        wait_http(f"http://127.0.0.1:{mlflow_port}/ping")
        contenders = {
            "nginx": (f"http://127.0.0.1:{s.WEB_PORT}/api/predict", body),
            "slot": (f"http://127.0.0.1:{s.BACKEND_A_PORT}/predict", body),
            "noop": (f"http://127.0.0.1:{noop_port}/predict", body),
            "mlflow": (f"http://127.0.0.1:{mlflow_port}/invocations", json.dumps({"dataframe_records": [
                {k: (float(v) if k in contract.numeric_features else v) for k, v in record.items()}]})),
        }
        # Rounds interleave the contenders, so a noisy minute on a shared machine hits all of them.
        for n in range(1, args.rounds + 1):
            for label, (url, payload) in contenders.items():
                r = wrk(url, payload, args.threads, args.connections, args.seconds)
                rounds.setdefault(label, []).append(r)
                print(f"  round {n}/{args.rounds} {label:7} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                      f"p95 {r['p95_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}", flush=True)
        results = {label: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
                   | {"errors": sum(r["errors"] for r in rs), "rps_min": min(r["rps"] for r in rs),
                      "rps_max": max(r["rps"] for r in rs)}
                   for label, rs in rounds.items()}

        # Batch: 10,000 real rows through nginx vs in-process predict of the same model.
        rows = pd.read_csv(ROOT / "data" / "housing.csv").head(10_000)[contract.feature_names]
        records = json.loads(rows.to_json(orient="records"))
        payload = json.dumps({"records": records}).encode()
        times = []
        for _ in range(max(3, args.rounds)):
            req = urllib.request.Request(f"http://127.0.0.1:{s.WEB_PORT}/api/predict/batch", data=payload,
                                         headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            answer = json.loads(urllib.request.urlopen(req, timeout=120).read())
            times.append(time.perf_counter() - started)
            assert answer["predicted"] == len(records), answer["rejected"]
        mlflow.set_tracking_uri(s.tracking_uri)
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        frame = rows.astype({n: "float64" for n in contract.numeric_features})
        local = []
        for _ in range(max(3, args.rounds)):
            started = time.perf_counter()
            model.predict(frame)
            local.append(time.perf_counter() - started)
        batch_rps, local_rps = len(records) / statistics.median(times), len(records) / statistics.median(local)
        print(f"  batch   {batch_rps:8.0f} rows/s through nginx; in-process predict {local_rps:8.0f} rows/s", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        s.NGINX_RATE_LIMIT, s.NGINX_RATE_BURST = limits
        stack.set_ab_weight(s.AB_WEIGHT_B)

    args.report.parent.mkdir(parents=True, exist_ok=True)
    chart = args.report.with_suffix(".png")
    n, sl, noop, ml = results["nginx"], results["slot"], results["noop"], results["mlflow"]
    per_round = [r["rps"] / q["rps"] for r, q in zip(rounds["nginx"], rounds["noop"], strict=True)]
    checks = [
        ("/predict through nginx ≥ 3× mlflow models serve req/s", n["rps"] / ml["rps"], 3.0, f"{n['rps'] / ml['rps']:.1f}×"),
        ("nginx p99 ≤ ½ mlflow p99", ml["p99_ms"] / max(n["p99_ms"], 1e-9), 2.0,
         f"{n['p99_ms']:.2f} vs {ml['p99_ms']:.2f} ms"),
        ("nginx ≥ 70% of the no-op Flask req/s", n["rps"] / noop["rps"], 0.70,
         f"{n['rps'] / noop['rps']:.0%} (rounds {min(per_round):.0%}–{max(per_round):.0%})"),
        ("nginx adds ≤ 1 ms at p99 over the slot", 1.0 / max(n["p99_ms"] - sl["p99_ms"], 1e-9), 1.0,
         f"{n['p99_ms'] - sl['p99_ms']:+.2f} ms"),
        ("batch ≥ 50% of in-process rows/s", batch_rps / local_rps, 0.50, f"{batch_rps / local_rps:.0%}"),
    ]
    lines = ["# Serving benchmark", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} cores; model {name} v{version}; "
             f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, load generator on the same machine; "
             f"{workers} gunicorn workers for slot, no-op and mlflow; {args.rounds} interleaved rounds, "
             "medians shown with the range of requests/s.", "",
             f"![requests/s and latency per contender]({chart.name})", "",
             "| contender | req/s (median) | range | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['rps']:,.0f} | {r['rps_min']:,.0f}–{r['rps_max']:,.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    lines += ["", f"Batch of 10,000 rows: {batch_rps:,.0f} rows/s through nginx (median of {len(times)}); in-process "
              f"`model.predict`: {local_rps:,.0f} rows/s.", "", "| target | measured | verdict |", "|---|---|---|"]
    ok = True
    for text, ratio, need, shown in checks:
        met = ratio >= need
        ok &= met
        lines.append(f"| {text} | {shown} | {'met' if met else 'MISSED'} |")
    report = "\n".join(lines) + "\n"
    _chart(rounds, chart)
    args.report.write_text(report)
    print()
    print(report)
    return 0 if ok else 1


def _chart(rounds: dict[str, list[dict]], path: Path) -> None:
    """Bars of requests/s (median, whiskers min–max) and grouped p50/p95/p99 per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rounds)
    med = [statistics.median(r["rps"] for r in rounds[k]) for k in labels]
    low = [m - min(r["rps"] for r in rounds[k]) for m, k in zip(med, labels, strict=True)]
    high = [max(r["rps"] for r in rounds[k]) - m for m, k in zip(med, labels, strict=True)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(labels, med, yerr=[low, high], capsize=4, color=["#0b5cad", "#4a90d9", "#999999", "#b35900"][:len(labels)])
    left.set_title("requests/s (median, range over rounds)")
    for i, v in enumerate(med):
        left.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    width = 0.25
    for j, (key, name) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))):
        values = [statistics.median(r[key] for r in rounds[k]) for k in labels]
        right.bar([i + (j - 1) * width for i in range(len(labels))], values, width, label=name)
    right.set_xticks(range(len(labels)), labels)
    right.set_yscale("log")
    right.set_title("latency, ms (median over rounds, log scale)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
