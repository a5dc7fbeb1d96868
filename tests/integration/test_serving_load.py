"""Serving under continuous load: an alias move fails nothing (PostgreSQL killed under load: test_faults.py)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid


from mlstack.registry.aliases import move_alias
from tests.integration.helpers import registry, tiny_version


class Load:
    """Background threads posting predictions through nginx, recording every answer.

    Paced below nginx's per-client rate limit (NGINX_RATE_LIMIT, 1,000/s): these tests are about
    swaps and restarts, not about the limiter (a 429 would read as a failed request).
    """

    def __init__(self, port: int, record: dict, threads: int = 4, rate_per_thread: float = 150.0) -> None:
        self.port, self.record = port, record
        self.interval = 1.0 / rate_per_thread
        self.stop = threading.Event()
        self.answers: list[tuple[int, dict]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += self.interval
            if (pause := next_at - time.monotonic()) > 0:
                time.sleep(pause)
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("POST", "/api/predict", body=json.dumps(self.record),
                             headers={"Content-Type": "application/json", "X-User-Id": uuid.uuid4().hex,
                                      "Connection": "close"})
                resp = conn.getresponse()
                answer = (resp.status, json.loads(resp.read() or b"{}"))
            except OSError as exc:
                answer = (0, {"error": str(exc)})
            finally:
                conn.close()
            with self.lock:
                self.answers.append(answer)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)

    def failures(self) -> list[tuple[int, dict]]:
        with self.lock:
            return [a for a in self.answers if a[0] != 200]


def test_alias_move_reaches_both_slots_within_10s_without_failing_a_request(stack, native, contract, housing):
    reg = registry(stack)
    old = reg.alias_version("champion")
    _, new = tiny_version(stack, contract, housing.head(5000), "house-price")
    native.set_ab_weight(50)
    try:
        with Load(native.settings.WEB_PORT, contract.example()) as load:
            time.sleep(1.0)
            moved_at = time.time()
            assert move_alias(reg, "champion", new, actor="test", reason="alias move under load", metrics={})
            seen: dict[str, float] = {}
            while time.time() - moved_at < 15 and len(seen) < 2:
                with load.lock:
                    recent = load.answers[-50:]
                for status, body in recent:
                    if status == 200 and body["model"]["version"] == new:
                        seen.setdefault(body["variant"], time.time() - moved_at)
                time.sleep(0.1)
            time.sleep(1.0)
        print(f"alias move: slots switched after {seen} s; {len(load.answers)} requests, "
              f"{len(load.failures())} failed")
        assert set(seen) == {"A", "B"}, seen
        assert max(seen.values()) <= 10.0, seen
        assert load.failures() == [] and len(load.answers) > 100
    finally:
        move_alias(reg, "champion", old, actor="test", reason="restore after load test", metrics={})
        native.set_ab_weight(10)
