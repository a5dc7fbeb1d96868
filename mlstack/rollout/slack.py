"""Tell people what the stack decided: one Slack message (Block Kit) per transition.

`send` posts to an incoming webhook with bounded retries and a short timeout, and never raises:
it returns what happened, which the caller records in the audit trail. Without a webhook URL the
message goes to the log instead.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlstack.rollout.judge import Check, Decision

log = logging.getLogger(__name__)

TITLES = {
    "PROMOTE": ":rocket: Challenger promoted",
    "RETIRE": ":wastebasket: Challenger retired",
    "ROLLBACK": ":rewind: Champion rolled back",
    "HOLD": ":hourglass: A/B test undecided for too long",
    "FAILED": ":x: Pipeline run failed",
}


@dataclass(frozen=True)
class Delivery:
    status: str  # "delivered", "logged" (no webhook) or "failed"
    attempts: int
    detail: str = ""


@dataclass(frozen=True)
class Links:
    airflow: str | None = None
    mlflow: str | None = None
    status_page: str | None = None


def _value(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _check_line(c: Check) -> str:
    if c.test == "gate":
        return f"`{c.metric}` n {c.n_a}/{c.n_b} (need {_value(c.threshold)}) {'✓' if c.passed else '✗'} {c.note}"
    bound = f"[{_value(c.lower)}, {_value(c.upper)}]"
    return (f"`{c.metric}` {c.test}: A {_value(c.estimate_a)} · B {_value(c.estimate_b)} · diff {_value(c.difference)} "
            f"{bound} vs {_value(c.threshold)} (n {c.n_a}/{c.n_b}) {'✓' if c.passed else '✗'}")


def message(kind: str, model_name: str, headline: str, reason: str, checks: tuple[Check, ...] = (),
            links: Links | None = None, event_id: int | None = None) -> dict[str, Any]:
    """Return the webhook payload: `text` for notifications, `blocks` for the message itself."""
    title = f"{TITLES.get(kind, kind)}: {model_name}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{reason}"[:3000]}},
    ]
    shown = [c for c in checks if c.test != "gate" or not c.passed][:10]
    if shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": "\n".join(_check_line(c) for c in shown)[:3000]}})
    buttons = [(label, url) for label, url in (("Airflow", links and links.airflow), ("MLflow", links and links.mlflow),
                                                ("Status page", links and links.status_page)) if url]
    if buttons:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url} for label, url in buttons]})
    if event_id is not None:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"audit event #{event_id} · `python -m mlstack audit explain {event_id}`"}]})
    return {"text": f"{title} — {headline}", "blocks": blocks}


def from_decision(decision: Decision, model_name: str, links: Links | None, event_id: int | None,
                  headline: str) -> dict[str, Any]:
    return message(decision.action, model_name, headline, decision.reason, decision.checks, links, event_id)


def send(webhook_url: str | None, payload: dict[str, Any], attempts: int = 3, timeout: float = 5.0,
         backoff: float = 1.0) -> Delivery:
    """Post the payload; retry on network errors and 429/5xx; never raise."""
    if not webhook_url:
        log.warning("slack (no SLACK_WEBHOOK_URL, logged only): %s", payload["text"])
        return Delivery("logged", 0)
    body = json.dumps(payload).encode()
    detail = ""
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(webhook_url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Delivery("delivered", attempt, f"HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # a 4xx other than 429 will not get better by retrying
        except OSError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    log.error("slack: message not delivered after %d attempt(s): %s", attempt, detail)
    return Delivery("failed", attempt, detail)
