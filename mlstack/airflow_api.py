"""Talk to a running Airflow 3 over its REST API: pause, trigger, wait for runs, read XComs.

Used by the integration tests, the rollout benchmark and the demo. Standard library only (no
`requests`: it must be importable next to Locust). Authenticates with `POST /auth/token`
(SimpleAuthManager) and fetches a new token when the old one expires.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

FINISHED = ("success", "failed")


class AirflowError(RuntimeError):
    """Airflow answered an error, or a run did not finish in time."""


class AirflowApi:
    """A small client of `/api/v2` for one user."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/")
        self.username, self._password = username, password
        self.timeout = timeout
        self._token: str | None = None

    @classmethod
    def from_stack(cls, settings: Any) -> AirflowApi:
        """Build from StackSettings (AIRFLOW_PORT, AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD)."""
        password = settings.AIRFLOW_ADMIN_PASSWORD.get_secret_value() if settings.AIRFLOW_ADMIN_PASSWORD else ""
        return cls(f"http://127.0.0.1:{settings.AIRFLOW_PORT}", settings.AIRFLOW_ADMIN_USER, password)

    def _login(self) -> str:
        body = json.dumps({"username": self.username, "password": self._password}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())["access_token"]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON body (raises AirflowError on 4xx/5xx)."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            req = urllib.request.Request(f"{self.base}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:  # expired token: log in again once
                    self._token = None
                    continue
                detail = exc.read()[:500].decode(errors="replace")
                raise AirflowError(f"{method} {path}: HTTP {exc.code} {detail}") from exc
        raise AirflowError(f"{method} {path}: not authorised")

    def health(self) -> dict[str, Any]:
        return self.call("GET", "/api/v2/monitor/health")

    def wait_parsed(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed `dag_id` (a trigger before that is refused)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.call("GET", f"/api/v2/dags/{dag_id}")
                return
            except (OSError, AirflowError):
                time.sleep(2)
        raise AirflowError(f"Airflow did not parse {dag_id} within {timeout:.0f}s")

    def is_paused(self, dag_id: str) -> bool:
        return bool(self.call("GET", f"/api/v2/dags/{dag_id}")["is_paused"])

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a manual run now; return its run id."""
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait for a run to finish; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get_run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            time.sleep(1)
        raise AirflowError(f"{dag_id} run {run_id} did not finish within {timeout:.0f}s")

    def run(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 180) -> dict[str, Any]:
        """Trigger a run and wait for it to finish; return the run."""
        return self.wait_run(dag_id, self.trigger(dag_id, conf), timeout)

    def runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs of `dag_id` (any state), newest first."""
        body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-start_date&limit={limit}")
        return body["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                f"/xcomEntries/{key}")
        return self.call("GET", path)["value"]
