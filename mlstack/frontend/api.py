"""Talk to the inference API through nginx (so the A/B split and its stickiness apply to the form).

The person's user id (nginx passes it as `X-User-Id`, from its cookie) goes with every call, so
the form gets the same variant the same person gets from the API.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests


class ApiUnavailable(RuntimeError):
    """The API did not answer (or answered with a 5xx); the message says what happened."""


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("error") or f"HTTP {self.status}")

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.body.get("fields") or {})


class ApiClient:
    """A small, thread-safe client of `/api/*` with a cached schema."""

    def __init__(self, base_url: str, timeout: float, schema_ttl: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.schema_ttl = schema_ttl
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread
        self._schema: tuple[float, dict[str, Any]] | None = None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, *, user_id: str | None = None, request_id: str | None = None,
             json: Any = None, timeout: float | None = None) -> ApiResponse:
        headers = {"Accept": "application/json"}
        if user_id:
            headers["X-User-Id"] = user_id
        if request_id:
            headers["X-Request-Id"] = request_id
        url = f"{self.base_url}{path}"
        try:
            resp = self._session().request(method, url, json=json, headers=headers, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise ApiUnavailable(f"the prediction service at {self.base_url} did not answer ({type(exc).__name__})") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 500 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise ApiUnavailable(message or f"the prediction service answered HTTP {resp.status_code}")
        return ApiResponse(resp.status_code, body, dict(resp.headers))

    def schema(self) -> dict[str, Any]:
        """Return `/schema`, asked again at most every `schema_ttl` seconds."""
        cached = self._schema
        if cached and time.monotonic() - cached[0] < self.schema_ttl:
            return cached[1]
        resp = self.call("GET", "/schema")
        if not resp.ok:
            raise ApiUnavailable(f"the schema could not be read: {resp.message}")
        self._schema = (time.monotonic(), resp.body)
        return resp.body
