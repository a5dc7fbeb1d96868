"""Connect to the MLflow tracking server with bounded retries and clear errors."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlstack.settings import TrainingSettings

log = logging.getLogger(__name__)


class RegistryUnavailable(RuntimeError):
    """The MLflow tracking server (or the store behind it) cannot be reached."""


def auth_headers() -> dict[str, str]:
    """The basic-auth header MLflow's own client would send (from MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    import base64
    import os

    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not (user and password):
        return {}
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def check_health(tracking_uri: str, timeout: float = 5.0) -> None:
    """Raise OSError/URLError unless `GET {tracking_uri}/health` answers 200."""
    with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout) as resp:
        if resp.status != 200:
            raise urllib.error.URLError(f"/health answered {resp.status}")


class ArtifactStoreDown(OSError):
    """The MLflow server answers, but the artifact store behind it does not."""


def check_artifact_store(tracking_uri: str, timeout: float = 10.0) -> None:
    """List the root of the server's artifact store (no side effects); raise if it fails.

    A server that does not proxy artifacts answers 404 here: there is nothing to check then.
    """
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth_headers()), timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return
        if exc.code in (401, 403):
            raise RegistryUnavailable(
                f"MLflow at {tracking_uri} refused the login (HTTP {exc.code}): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD in .env to the server's (make env generates them)") from exc
        raise ArtifactStoreDown(
            f"MLflow at {tracking_uri} is up but its artifact store does not answer "
            f"(listing artifacts gave HTTP {exc.code}): is the S3 service running and are the MLflow "
            "server's S3_ENDPOINT_URL and credentials right?") from exc


def wait_for_server(tracking_uri: str, attempts: int, backoff_seconds: float, *, artifacts: bool = True) -> None:
    """Poll the server's health (and its artifact store); raise RegistryUnavailable after `attempts`."""
    if not tracking_uri.startswith(("http://", "https://")):
        return  # a local file or database store has no server to wait for
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            check_health(tracking_uri)
            if artifacts:
                check_artifact_store(tracking_uri)
            return
        except ArtifactStoreDown as exc:
            last = exc
        except (OSError, urllib.error.URLError) as exc:
            last = exc
            if attempt < attempts:
                delay = backoff_seconds * 2 ** (attempt - 1)
                log.warning("MLflow at %s not reachable (attempt %d/%d): %s; retrying in %.1fs",
                            tracking_uri, attempt, attempts, exc, delay)
                time.sleep(delay)
    if isinstance(last, ArtifactStoreDown):
        raise RegistryUnavailable(f"{last} (after {attempts} attempt(s); native mode: `make status`)")
    raise RegistryUnavailable(
        f"MLflow tracking server at {tracking_uri} is unreachable after {attempts} attempt(s): {last}. "
        "Is it running? (native mode: `make status`; Compose: `docker compose ps mlflow`)"
    )


def connect(settings: TrainingSettings) -> MlflowClient:
    """Wait (bounded) for the tracking server and its artifact store; return a client bound to it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlstack.settings import export_mlflow_client_env

    export_mlflow_client_env(settings)
    wait_for_server(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_CONNECT_ATTEMPTS,
                    settings.MLFLOW_CONNECT_BACKOFF_SECONDS)
    mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
    return MlflowClient(settings.MLFLOW_TRACKING_URI)
