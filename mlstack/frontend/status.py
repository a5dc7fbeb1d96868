"""Gather what the status page shows; each part degrades on its own when its source is down."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from mlstack.db.engine import create_engine
from mlstack.db.events import EventStore
from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, transition_events
from mlstack.registry.overview import VersionInfo, by_alias, versions
from mlstack.settings import FrontendSettings, export_mlflow_client_env

log = logging.getLogger(__name__)

ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)


@dataclass
class Status:
    """Everything on the status page; `errors` names each source that could not be read."""

    model_name: str
    weight_b: int | None = None
    aliases: dict[str, VersionInfo] = field(default_factory=dict)
    versions: list[VersionInfo] = field(default_factory=list)
    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)  # promotions, retirements, rollbacks
    drift: dict[str, Any] | None = None  # the latest drift_check event (monitor_drift)
    chain_ok: bool | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        def info(v: VersionInfo) -> dict[str, Any]:
            return {"version": v.version, "aliases": list(v.aliases), "family": v.family,
                    "created": v.created.isoformat(), "metrics": v.metrics}

        return {
            "model_name": self.model_name, "weight_b": self.weight_b,
            "aliases": {a: info(v) for a, v in self.aliases.items()},
            "versions": [info(v) for v in self.versions], "slots": self.slots,
            "events": [{**e, "event_time": e["event_time"].isoformat()} for e in self.events],
            "decisions": [{**e, "event_time": e["event_time"].isoformat()} for e in self.decisions],
            "transitions": [{**e, "event_time": e["event_time"].isoformat()} for e in self.transitions],
            "drift": {**self.drift, "event_time": self.drift["event_time"].isoformat()} if self.drift else None,
            "chain_ok": self.chain_ok, "errors": self.errors,
        }


class StatusReader:
    """Reads the registry (MLflow), the split (nginx), each slot and the audit trail (app DB)."""

    def __init__(self, settings: FrontendSettings, api_split: Any) -> None:
        self.settings = settings
        self.api_split = api_split  # () -> int: B's share, read through nginx
        self._engine = None
        self._client = None
        self._lock = threading.Lock()
        self._registry_cache: tuple[float, list[VersionInfo]] | None = None

    def _mlflow(self):  # noqa: ANN202
        with self._lock:
            if self._client is None:
                import mlflow
                from mlflow.tracking import MlflowClient

                export_mlflow_client_env(self.settings)
                mlflow.set_tracking_uri(self.settings.MLFLOW_TRACKING_URI)
                self._client = MlflowClient(self.settings.MLFLOW_TRACKING_URI)
            return self._client

    def registry(self, max_age: float = 10.0) -> list[VersionInfo]:
        """Return the model's versions, cached for `max_age` seconds (the result page asks often)."""
        cached = self._registry_cache
        if cached and time.monotonic() - cached[0] < max_age:
            return cached[1]
        infos = versions(self._mlflow(), self.settings.MODEL_NAME)
        self._registry_cache = (time.monotonic(), infos)
        return infos

    def version(self, version: str) -> VersionInfo | None:
        """Return one version's description, or None when the registry cannot say."""
        try:
            return next((v for v in self.registry() if v.version == str(version)), None)
        except Exception as exc:  # noqa: BLE001 - the result page works without it
            log.warning("registry unreachable for the result page: %s", exc)
            return None

    def _events(self) -> EventStore:
        if self._engine is None:
            self._engine = create_engine(self.settings.APP_DATABASE_URL)
        return EventStore(self._engine, self.settings.audit_key())

    def read(self, events: int = 15) -> Status:
        s = self.settings
        status = Status(model_name=s.MODEL_NAME)
        try:
            status.weight_b = self.api_split()
        except Exception as exc:  # noqa: BLE001
            status.errors["split"] = f"nginx did not say the split: {exc}"
        try:
            status.versions = self.registry(max_age=0)
            status.aliases = {a: v for a, v in by_alias(status.versions).items() if a in ALIASES}
        except Exception as exc:  # noqa: BLE001
            status.errors["registry"] = f"MLflow at {s.MLFLOW_TRACKING_URI} is unreachable: {type(exc).__name__}"
        for slot, url in (("A", s.SLOT_A_URL), ("B", s.SLOT_B_URL)):
            try:
                resp = requests.get(f"{url}/model-info", timeout=3)
                status.slots[slot] = resp.json()
            except Exception as exc:  # noqa: BLE001
                status.slots[slot] = {"slot": slot, "model": None, "last_error": f"not answering ({type(exc).__name__})"}
        try:
            store = self._events()
            judged = ("judge_ab", "judge_guard", "notify", "drift_check")
            status.events = store.recent(s.MODEL_NAME, limit=events, exclude=judged)
            status.decisions = store.recent(s.MODEL_NAME, limit=10, actions=("judge_ab", "judge_guard"))
            status.transitions = transition_events(store.engine, s.MODEL_NAME, limit=10)
            status.drift = next(iter(store.recent(s.MODEL_NAME, limit=1, actions=("drift_check",))), None)
            status.chain_ok = store.verify(checkpoint=True).ok  # from the last signed checkpoint: O(new events)
        except Exception as exc:  # noqa: BLE001
            status.errors["events"] = f"the app database is unreachable: {type(exc).__name__}"
        return status
