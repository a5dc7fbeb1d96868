"""Put a slot into a fault mode for tests and the demo: added error rate, latency, prediction bias.

Off unless `FAULT_FILE` is set. The file is JSON, e.g. {"error_rate": 0.05, "latency_ms": 0,
"bias": 0}; every worker re-reads it when it changes (checked at most every half second), so a
test or `scripts/simulate.py` changes a running slot by writing one file. A missing file means no
fault.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0
    latency_ms: float = 0.0
    bias: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.latency_ms or self.bias)


NONE = Fault()


class FaultSwitch:
    """Reads the fault file lazily; `current()` costs a clock read when nothing changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fault = NONE
        self._checked = 0.0
        self._mtime: float | None = None
        self._random = random.Random()

    def current(self) -> Fault:
        if self.path is None:
            return NONE
        now = time.monotonic()
        if now - self._checked >= 0.5:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
            except FileNotFoundError:
                mtime = None
            if mtime != self._mtime:
                self._mtime = mtime
                self._fault = self._read()
        return self._fault

    def _read(self) -> Fault:
        try:
            data = json.loads(self.path.read_text())  # type: ignore[union-attr]
            fault = Fault(float(data.get("error_rate", 0)), float(data.get("latency_ms", 0)), float(data.get("bias", 0)))
        except FileNotFoundError:
            return NONE
        except (ValueError, TypeError, AttributeError) as exc:
            log.error("fault file %s is not valid (%s): no fault applied", self.path, exc)
            return NONE
        log.warning("fault mode %s: %s", "ON" if fault.active else "off", fault)
        return fault

    def fails(self, fault: Fault) -> bool:
        return fault.error_rate > 0 and self._random.random() < fault.error_rate


def write_fault(path: Path, error_rate: float = 0.0, latency_ms: float = 0.0, bias: float = 0.0) -> None:
    """Set a slot's fault mode (atomically: workers never read half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"error_rate": error_rate, "latency_ms": latency_ms, "bias": bias}))
    os.replace(tmp, path)
