"""Send realistic traffic through nginx: held-out rows, stable user ids, ground truth after a delay.

Used by `scripts/simulate.py`, the integration tests, the demo and load tests. Scenarios put the
slots into fault modes (mlstack.serving.faults) for as long as the simulation runs:

- `healthy`: no fault.
- `bad-challenger`: slot B answers 5% errors and biased prices.
- `degraded-champion`: slot A's prices are biased (its RMSE climbs).
- `drift`: the rows sent are shifted as the contract's `simulated_drift` says (for California
  housing: incomes ×1.6, houses 10 years older), within the contract's ranges.
- `slot-outage`: slot B stops answering (native mode stops its process; nginx sends its users to A).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlstack.contract import DataContract

log = logging.getLogger(__name__)

SCENARIOS = ("healthy", "bad-challenger", "degraded-champion", "drift", "slot-outage")


@dataclass
class Report:
    """What the simulation sent and got back."""

    sent: int = 0
    answered: Counter = field(default_factory=Counter)  # HTTP status → count
    variants: Counter = field(default_factory=Counter)  # variant → answered 200
    versions: Counter = field(default_factory=Counter)  # "variant:version" → answered 200
    feedback_sent: int = 0
    feedback_failed: int = 0
    retried: int = 0  # requests sent again because the server had closed an idle kept-alive connection
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "answered": dict(self.answered), "variants": dict(self.variants),
                "versions": dict(self.versions), "feedback_sent": self.feedback_sent,
                "feedback_failed": self.feedback_failed, "retried": self.retried, "errors": self.errors[:5]}


# The server closed a kept-alive connection before it read the request (nginx's old workers do that to idle
# connections when it reloads; any server may after its keep-alive timeout).
STALE_CONNECTION = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)


class Client:
    """One kept-alive HTTP connection, as a browser holds one: a request that finds its reused connection
    closed by the server before any answer is sent once more on a new connection (RFC 9112 §9.3.1)."""

    def __init__(self, host: str, port: int, report: Report, lock: threading.Lock) -> None:
        self.host, self.port, self.report, self.lock = host, port, report, lock
        self.conn = http.client.HTTPConnection(host, port, timeout=10)

    def post(self, path: str, body: dict[str, Any], user: str) -> tuple[int, dict]:
        reused = self.conn.sock is not None
        try:
            return self._send(path, body, user)
        except STALE_CONNECTION:
            self.reset()
            if not reused:
                raise
            with self.lock:
                self.report.retried += 1
            return self._send(path, body, user)
        except (OSError, http.client.HTTPException):
            self.reset()
            raise

    def _send(self, path: str, body: dict[str, Any], user: str) -> tuple[int, dict]:
        self.conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json",
                                                                         "X-User-Id": user})
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw or b"{}")
        except ValueError:
            return resp.status, {}

    def reset(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def close(self) -> None:
        self.conn.close()


def holdout_rows(path: Path, contract: DataContract, seed: int = 42, holdout_fraction: float = 0.2) -> pd.DataFrame:
    """The rows no model trained on (the same seeded hash split as training)."""
    from mlstack.data import load_dataset, split

    frame = load_dataset(path, contract).frame
    return split(frame, contract, seed=seed, holdout_fraction=holdout_fraction, validation_fraction=0.2).holdout


def drifted(rows: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Shift inputs as the contract's `simulated_drift` says, clipped to the contract's ranges."""
    out = rows.copy()
    for name, factor, shift in contract.simulated_drift:
        f = contract.feature(name)
        out[name] = (out[name] * factor + shift).clip(f.minimum, f.maximum)
        if f.dtype == "int":
            out[name] = out[name].round().astype("int64")
    return out


class Simulator:
    """Threads posting predictions at a steady total rate; feedback follows after `feedback_delay`."""

    def __init__(self, web_port: int, rows: pd.DataFrame, contract: DataContract, *, rate: float = 20.0,
                 users: int = 500, label_fraction: float = 1.0, feedback_delay: float = 1.0, threads: int = 4,
                 seed: int = 0, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, web_port
        self.contract = contract
        target = contract.target.name
        self.records = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                        for r in rows[contract.feature_names].astype(object).to_dict("records")]
        self.actuals = rows[target].astype(float).tolist()
        self.rate, self.users, self.label_fraction = rate, users, label_fraction
        self.feedback_delay, self.threads, self.seed = feedback_delay, threads, seed
        self.report = Report()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pending: list[tuple[float, str, float, str]] = []  # (due, prediction_id, actual, user)
        self.accepted: list[str] = []  # prediction ids answered 200: each must reach the database
        self.labelled: list[str] = []  # prediction ids whose feedback was answered 202

    def _worker(self, index: int, until: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        interval = self.threads / self.rate
        next_at = time.monotonic() + rng.random() * interval
        client = Client(self.host, self.port, self.report, self._lock)
        while not self._stop.is_set() and time.monotonic() < until:
            if (pause := next_at - time.monotonic()) > 0:
                time.sleep(pause)
            next_at += interval
            i = rng.randrange(len(self.records))
            user = f"sim-user-{rng.randrange(self.users)}"
            try:
                status, body = client.post("/api/predict", self.records[i], user)
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, {"error": str(exc)}
            with self._lock:
                self.report.sent += 1
                self.report.answered[status] += 1
                if status == 200:
                    self.accepted.append(body["prediction_id"])
                    self.report.variants[body["variant"]] += 1
                    self.report.versions[f"{body['variant']}:{body['model']['version']}"] += 1
                    if rng.random() < self.label_fraction:
                        self._pending.append((time.monotonic() + self.feedback_delay, body["prediction_id"],
                                              self.actuals[i], user))
                elif len(self.report.errors) < 20:
                    self.report.errors.append(f"{status}: {body.get('error', body)}")
        client.close()

    def _feedback(self, until: float) -> None:
        client = Client(self.host, self.port, self.report, self._lock)
        while True:
            now = time.monotonic()
            with self._lock:
                due = [p for p in self._pending if p[0] <= now]
                self._pending = [p for p in self._pending if p[0] > now]
                left = bool(self._pending)
            for _, pid, actual, user in due:  # the person who got the estimate reports its true value
                try:
                    status, body = client.post("/api/feedback", {"prediction_id": pid, "actual": actual}, user)
                except (OSError, http.client.HTTPException) as exc:
                    status, body = 0, repr(exc)
                with self._lock:
                    if status == 202:
                        self.report.feedback_sent += 1
                        self.labelled.append(pid)
                    else:
                        self.report.feedback_failed += 1
                        if len(self.report.errors) < 20:
                            self.report.errors.append(f"feedback {status or 'connection failed'}: {body}")
            if now > until and not left:
                break
            time.sleep(0.05)
        client.close()

    def run(self, seconds: float, progress: Callable[[Report], None] | None = None) -> Report:
        """Send traffic for `seconds`, then the feedback still due; return the report."""
        until = time.monotonic() + seconds
        workers = [threading.Thread(target=self._worker, args=(i, until), daemon=True) for i in range(self.threads)]
        fb = threading.Thread(target=self._feedback, args=(until,), daemon=True)
        for t in [*workers, fb]:
            t.start()
        while any(t.is_alive() for t in workers):
            time.sleep(1.0)
            if progress:
                progress(self.report)
        fb.join(timeout=self.feedback_delay + 30)
        return self.report

    def stop(self) -> None:
        self._stop.set()
