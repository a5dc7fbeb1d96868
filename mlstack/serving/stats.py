"""Count each slot's answers per model version (requests, errors, slow ones) for the judge.

The counts are aggregated in memory per process and journaled through the prediction log every
`period` seconds as one `request_stats` row per model version; the judge sums the rows of a window.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from mlstack.db.schema import SLOW_THRESHOLDS_MS


class RequestStats:
    """Thread-safe counters of one slot process, drained into rows by the prediction log's flusher."""

    def __init__(self, slot: str, period_seconds: float = 10.0) -> None:
        self.slot = slot
        self.period = period_seconds
        self._lock = threading.Lock()
        self._counts: dict[str, list[float]] = {}
        self._since = time.time()

    def observe(self, version: str, error: bool, latency_ms: float) -> None:
        with self._lock:
            c = self._counts.get(version)
            if c is None:
                c = self._counts[version] = [0.0] * (3 + len(SLOW_THRESHOLDS_MS))
            c[0] += 1
            c[1] += error
            c[2] += latency_ms
            for i, limit in enumerate(SLOW_THRESHOLDS_MS):
                if latency_ms > limit:
                    c[3 + i] += 1

    def drain(self, force: bool = False) -> list[dict[str, Any]]:
        """Return the period's rows (and start a new period) once it is over, or at once if `force`."""
        now = time.time()
        with self._lock:
            if not self._counts or (not force and now - self._since < self.period):
                return []
            counts, since = self._counts, self._since
            self._counts, self._since = {}, now
        rows = []
        for version, c in counts.items():
            row = {"id": uuid.uuid4().hex, "period_start": since, "period_end": now, "variant": self.slot,
                   "model_version": version, "requests": int(c[0]), "errors": int(c[1]), "latency_ms_sum": c[2]}
            row.update({f"over_{ms}_ms": int(c[3 + i]) for i, ms in enumerate(SLOW_THRESHOLDS_MS)})
            rows.append(row)
        return rows
