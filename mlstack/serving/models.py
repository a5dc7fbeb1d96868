"""Keep a serving slot's model current: load by alias, cache on disk, poll, verify, hot-swap.

Slot A follows `champion`; slot B follows `challenger` and falls back to `champion` while no
challenger exists. A new version is downloaded into a versioned cache directory, loaded,
compiled (see fastpath), verified against sklearn and smoke-tested on the contract's example
before it replaces the current model in one reference assignment, so a swap never fails a
request. A version that fails any step is refused and the old one keeps serving. When MLflow
is down at start, the slot serves the last good model from its cache.

Shadow scoring: each slot also keeps the *other* alias's model (slot A the challenger, slot B
the champion while it serves a challenger) and scores every request with it too, without
serving that answer. Joined with feedback, the two models' errors on the same rows let the
judge compare them pairwise, which needs far fewer labels than comparing the two arms.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstack.contract import DataContract

log = logging.getLogger(__name__)

FOLLOW = {"A": ("champion",), "B": ("challenger", "champion")}
SHADOW = {"champion": "challenger", "challenger": "champion"}  # served alias → the alias scored alongside


class ModelRefused(RuntimeError):
    """A model version failed to download, load, compile-verify or answer the smoke test."""


@dataclass(frozen=True)
class LoadedModel:
    """One servable model version and how to call it."""

    name: str
    version: str
    alias: str
    pipeline: Any
    compiled: Any | None
    source: str
    loaded_at: float = field(default_factory=time.time)

    def predict_record(self, record: dict[str, Any], contract: DataContract) -> float:
        if self.compiled is not None:
            return self.compiled.predict_record(record)
        return float(self.predict_frame(pd.DataFrame([record]), contract)[0])

    def predict_frame(self, frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.predict(frame)
        from mlstack.features import model_input

        return np.asarray(self.pipeline.predict(model_input(frame, contract)), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "alias": self.alias}


def load_local(path: Path, name: str, version: str, alias: str, contract: DataContract, source: str,
               fast_path: bool = True) -> LoadedModel:
    """Load a downloaded MLflow model directory, compile it, and smoke-test it; raise ModelRefused."""
    import mlflow.sklearn

    from mlstack.features import model_input
    from mlstack.serving.fastpath import CompiledPipeline, NotCompilable, probe_frame, verify

    try:
        pipeline = mlflow.sklearn.load_model(str(path))
    except Exception as exc:  # noqa: BLE001 - any load failure refuses the version
        raise ModelRefused(f"{name} v{version}: cannot load: {exc}") from exc
    compiled = None
    if fast_path:
        try:
            compiled = CompiledPipeline(pipeline, contract)
            verify(compiled, pipeline, model_input(probe_frame(contract), contract))
        except NotCompilable as exc:
            log.warning("%s v%s: serving with sklearn (slower): %s", name, version, exc)
            compiled = None
        except Exception as exc:  # noqa: BLE001
            log.warning("%s v%s: compiled path failed verification (%s); serving with sklearn", name, version, exc)
            compiled = None
    model = LoadedModel(name, version, alias, pipeline, compiled, source)
    try:
        value = model.predict_record(contract.example(), contract)
    except Exception as exc:  # noqa: BLE001
        raise ModelRefused(f"{name} v{version}: smoke prediction failed: {exc}") from exc
    target = contract.target
    if not math.isfinite(value) or not target.minimum <= value <= target.maximum:
        raise ModelRefused(f"{name} v{version}: smoke prediction {value!r} is outside "
                           f"{target.minimum:g}..{target.maximum:g}")
    return model


class ModelManager:
    """The model a slot serves, kept current by a polling thread."""

    def __init__(self, *, slot: str, model_name: str, tracking_uri: str, contract: DataContract, cache_dir: Path,
                 poll_seconds: float, fast_path: bool = True,
                 on_event: Callable[[str, LoadedModel | None, str], None] | None = None) -> None:
        self.slot = slot
        self.follow = FOLLOW[slot]
        self.model_name = model_name
        self.tracking_uri = tracking_uri
        self.contract = contract
        self.cache_dir = cache_dir
        self.poll_seconds = poll_seconds
        self.fast_path = fast_path
        self.on_event = on_event or (lambda kind, model, detail: None)
        self.current: LoadedModel | None = None
        self.shadow: LoadedModel | None = None
        self._aliases: dict[str, str] | None = None
        self.refused: dict[str, str] = {}  # version -> reason; not retried until the alias moves on
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- registry -------------------------------------------------------------------------------

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri)

    def resolve(self) -> tuple[str, str] | None:
        """Return (alias, version) this slot should serve now, or None if no alias exists."""
        from mlstack.registry.aliases import read_aliases

        aliases = read_aliases(self._client(), self.model_name)
        self._aliases = aliases
        for alias in self.follow:
            if alias in aliases:
                return alias, aliases[alias]
        return None

    def _download(self, version: str) -> Path:
        """Return the version's local directory, downloading it once (versions are immutable)."""
        import mlflow.artifacts

        target = self.cache_dir / self.model_name / version
        if (target / "MLmodel").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            # Resolve with our own client: `models:/` URIs would use the process-global registry URI.
            uri = self._client().get_model_version_download_uri(self.model_name, version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                        tracking_uri=self.tracking_uri)
            try:
                os.rename(local, target)  # atomic; another worker may have won the race
            except OSError:
                if not (target / "MLmodel").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -- cache pointer --------------------------------------------------------------------------

    @property
    def _pointer(self) -> Path:
        return self.cache_dir / f"slot-{self.slot}.json"

    def _save_pointer(self, model: LoadedModel) -> None:
        data = {"name": model.name, "version": model.version, "alias": model.alias,
                "path": str(self.cache_dir / model.name / model.version)}
        tmp = self._pointer.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._pointer)

    def load_from_cache(self) -> LoadedModel | None:
        try:
            data = json.loads(self._pointer.read_text())
        except (OSError, ValueError):
            return None
        return load_local(Path(data["path"]), data["name"], data["version"], data["alias"], self.contract,
                          source="cache", fast_path=self.fast_path)

    # -- lifecycle ------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Check the registry once; swap if the alias moved. Return True if the served model changed."""
        self._aliases = None
        before = self.current
        changed = self._poll_served()
        if self._aliases is not None:
            try:
                self._update_shadow(self._aliases, before)
            except Exception as exc:  # noqa: BLE001 - the shadow never affects what is served
                log.warning("slot %s: shadow model not updated: %s", self.slot, exc)
        return changed

    def _update_shadow(self, aliases: dict[str, str], before: LoadedModel | None = None) -> None:
        """Keep the other alias's model loaded for shadow scoring (or drop it when there is none).

        `before` is what was served before this poll: when slot B moves from the champion to a new
        challenger, the champion it served becomes its shadow without loading anything.
        """
        current = self.current
        alias = SHADOW.get(current.alias) if current else None
        version = aliases.get(alias) if alias else None
        if version is None or version == current.version or version in self.refused:  # type: ignore[union-attr]
            if self.shadow is not None:
                log.info("slot %s: no shadow model now (was v%s)", self.slot, self.shadow.version)
            self.shadow = None
            return
        shadow = self.shadow
        if (shadow is None or shadow.version != version) and before is not None and before.version == version:
            shadow = self.shadow = before
        if shadow is not None and shadow.version == version:
            if shadow.alias != alias:
                self.shadow = LoadedModel(shadow.name, version, alias, shadow.pipeline, shadow.compiled,  # type: ignore[arg-type]
                                          shadow.source, shadow.loaded_at)
            return
        self.shadow = load_local(self._download(version), self.model_name, version, alias, self.contract,  # type: ignore[arg-type]
                                 source="registry", fast_path=self.fast_path)
        log.info("slot %s scores %s v%s (%s) in the shadow", self.slot, self.model_name, version, alias)

    def _poll_served(self) -> bool:
        try:
            target = self.resolve()
        except Exception as exc:  # noqa: BLE001 - registry down: keep serving what we have
            self._note_error(f"registry unreachable at {self.tracking_uri}: {exc}")
            if self.current is None:
                return self._try_cache()
            return False
        if target is None:
            self._note_error(f"no {' or '.join(self.follow)} alias on {self.model_name} yet")
            return False
        alias, version = target
        current = self.current
        if current is not None and current.version == version:
            if current.alias != alias:  # same version, reached through another alias
                self.current = LoadedModel(current.name, version, alias, current.pipeline, current.compiled,
                                           current.source, current.loaded_at)
                return True
            return False
        if version in self.refused:
            return False
        shadow = self.shadow
        try:
            if shadow is not None and shadow.version == version:  # a promotion: the shadow is already loaded
                model = LoadedModel(shadow.name, version, alias, shadow.pipeline, shadow.compiled, shadow.source)
            else:
                model = load_local(self._download(version), self.model_name, version, alias, self.contract,
                                   source="registry", fast_path=self.fast_path)
        except ModelRefused as exc:
            self.refused[version] = str(exc)
            log.error("slot %s refused %s: keeping %s", self.slot, exc,
                      f"v{current.version}" if current else "no model")
            self.on_event("refused", current, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. artifact download failed: try again next tick
            self._note_error(f"cannot fetch {self.model_name} v{version}: {exc}")
            if self.current is None:
                return self._try_cache()
            return False
        self.current = model  # the swap: one reference assignment
        self.last_error = None
        self._save_pointer(model)
        log.info("slot %s now serves %s v%s (%s)%s", self.slot, model.name, model.version, model.alias,
                 "" if model.compiled else " without the compiled path")
        self.on_event("swapped", model, f"v{current.version if current else '-'} -> v{model.version}")
        return True

    def _try_cache(self) -> bool:
        try:
            model = self.load_from_cache()
        except ModelRefused as exc:
            self._note_error(f"cached model refused: {exc}")
            return False
        if model is None:
            return False
        self.current = model
        log.warning("slot %s serves cached %s v%s (%s) until the registry answers", self.slot, model.name,
                    model.version, model.alias)
        self.on_event("cache", model, "registry unreachable")
        return True

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("slot %s: %s", self.slot, message)
        self.last_error = message

    def start(self) -> None:
        self.poll_once()
        self._thread = threading.Thread(target=self._run, name=f"model-poller-{self.slot}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must never die
                log.exception("slot %s: poll failed", self.slot)

    def stop(self) -> None:
        self._stop.set()
