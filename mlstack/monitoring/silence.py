"""Silence the alerts a deliberate restart would raise, in Alertmanager, for the minutes it takes.

A restart run through the stack's own commands (`Deployment.restart`) is an operator's decision,
not an outage: it gets an Alertmanager silence (API v2) that matches only the alerts that service
can raise, with a comment saying who restarted what. An outage of anything else still pages.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

# service (the same name natively and in Compose) → label matchers of the alerts its restart raises
MATCHERS: dict[str, list[dict[str, str]]] = {
    "backend-a": [{"slot": "A"}, {"variant": "A"}],
    "backend-b": [{"slot": "B"}, {"variant": "B"}],
    "frontend": [{"service": "frontend"}],
    "mlflow": [{"service": "mlflow"}],
    "s3": [{"service": "s3"}],
    "nginx": [{"alertname": "MlstackNginxDown"}, {"alertname": "MlstackSlotDown"}],
    "postgres": [{"alertname": "MlstackPostgresDown"}],
    **{f"airflow-{part}": [{"service": "airflow"}, {"alertname": "MlstackDagNotSucceeding"}]
       for part in ("api-server", "scheduler", "dag-processor", "triggerer")},
}


def silence_restart(alertmanager_url: str, service: str, minutes: float = 5.0, author: str = "mlstack restart") -> list[str]:
    """Create the silences for restarting `service`; return their ids (none for a service that raises no alert)."""
    now = datetime.now(UTC)
    ids = []
    for labels in MATCHERS.get(service, []):
        body = {"matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in labels.items()],
                "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
                "createdBy": author, "comment": f"deliberate restart of {service}"}
        request = urllib.request.Request(f"{alertmanager_url.rstrip('/')}/api/v2/silences", method="POST",
                                         data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                ids.append(json.loads(resp.read())["silenceID"])
        except OSError as exc:  # no Alertmanager (monitoring off): the restart goes on, unsilenced
            log.warning("could not silence alerts for the restart of %s: %s", service, exc)
            break
    return ids
