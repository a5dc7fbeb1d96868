"""Stand in for Slack when no webhook is set: record every post and show them on a small page.

`make up` (and Compose's `slack-sink` service) runs it when `SLACK_WEBHOOK_URL` is empty, and
points Airflow's rollout messages and Alertmanager's alerts at `/hooks/local`, so the messages a
team would see in Slack are visible at http://127.0.0.1:8025/ (`SLACK_SINK_PORT`) instead of
going to a log. Messages are appended to `messages.jsonl` under `SLACK_SINK_DIR` and survive
restarts. Run: `python -m mlstack.slack_sink` (gunicorn, one worker: the file has one writer).
"""

from __future__ import annotations

import fcntl
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request

from mlstack.request_body import BodyRefused, read_json
from mlstack.settings import SlackSinkSettings, load

MAX_BODY = 1 << 20

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slack messages · mlstack</title>
<meta http-equiv="refresh" content="10">
<style>
 body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1d1c1d}
 header{background:#3f0e40;color:#fff;padding:14px 24px} header h1{margin:0;font-size:19px}
 header p{margin:4px 0 0;opacity:.8;font-size:13px}
 main{max-width:920px;margin:18px auto;padding:0 16px}
 .msg{background:#fff;border-radius:8px;padding:12px 16px;margin:0 0 12px;border-left:5px solid #888}
 .msg.mlstack{border-left-color:#1264a3} .msg.danger{border-left-color:#e01e5a}
 .msg.warning{border-left-color:#ecb22e} .msg.good{border-left-color:#2eb67d}
 .meta{font-size:12px;color:#616061} .title{font-weight:700;font-size:16px;margin:4px 0}
 .body{white-space:pre-wrap} .checks{font:12px/1.5 ui-monospace,monospace;white-space:pre-wrap;color:#333}
 .links a{display:inline-block;margin:6px 8px 0 0;padding:3px 10px;border:1px solid #bbb;border-radius:4px;
   color:#1264a3;text-decoration:none;font-size:13px}
 .empty{color:#616061}
</style></head><body>
<header><h1>#mlstack — local Slack sink</h1>
<p>No SLACK_WEBHOOK_URL is set, so the stack's messages land here. {{ messages|length }} message(s), newest first;
the page refreshes every 10 s. <a style="color:#fff" href="messages.json">messages.json</a></p></header>
<main>
{% for m in messages %}
<div class="msg {{ m.source }} {{ m.color }}" data-source="{{ m.source }}">
 <div class="meta">{{ m.received }} · {{ m.source }}{% if m.channel %} · {{ m.channel }}{% endif %}</div>
 <div class="title">{{ m.title }}</div>
 {% if m.body %}<div class="body">{{ m.body }}</div>{% endif %}
 {% if m.checks %}<div class="checks">{{ m.checks }}</div>{% endif %}
 {% if m.links %}<div class="links">{% for label, url in m.links %}<a href="{{ url }}">{{ label }}</a>{% endfor %}</div>{% endif %}
 {% if m.footer %}<div class="meta">{{ m.footer }}</div>{% endif %}
</div>
{% else %}
<p class="empty">No messages yet. Promotions, retirements, rollbacks, failed DAG runs and Alertmanager's alerts
appear here.</p>
{% endfor %}
</main></body></html>"""


# The shortcodes the stack's messages use, as Slack would draw them.
EMOJI = {":rocket:": "🚀", ":wastebasket:": "🗑️", ":rewind:": "⏪", ":hourglass:": "⏳", ":x:": "❌"}


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn to plain text: *bold*, `code` and <url|label> links lose their markup; emoji are drawn."""
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2", mrkdwn)
    text = re.sub(r"(?<!\w)[*`](.+?)[*`](?!\w)", r"\1", text)
    return re.sub(r":[a-z_]+:", lambda m: EMOJI.get(m.group(0), m.group(0)), text)


def view(record: dict[str, Any]) -> dict[str, Any]:
    """Turn one recorded post (Block Kit from mlstack, attachments from Alertmanager) into what the page shows."""
    post = record.get("payload") or {}
    out: dict[str, Any] = {"received": record.get("received", ""), "channel": record.get("channel", ""),
                           "title": "", "body": "", "checks": "", "links": [], "footer": "", "color": ""}
    if "blocks" in post:
        out["source"] = "mlstack"
        sections = []
        for block in post["blocks"]:
            kind = block.get("type")
            if kind == "header":
                out["title"] = _plain(block.get("text", {}).get("text", ""))
            elif kind == "section":
                sections.append(_plain(block.get("text", {}).get("text", "")))
            elif kind == "actions":
                out["links"] = [(e.get("text", {}).get("text", "link"), e.get("url", "")) for e in block.get("elements", [])
                                if e.get("url")]
            elif kind == "context":
                out["footer"] = " ".join(_plain(e.get("text", "")) for e in block.get("elements", []))
        out["body"] = sections[0] if sections else post.get("text", "")
        out["checks"] = "\n".join(sections[1:])
    elif "attachments" in post:
        out["source"] = "alertmanager"
        parts = post["attachments"]
        out["title"] = " / ".join(a.get("title", "") for a in parts if a.get("title")) or post.get("text", "")
        out["body"] = "\n\n".join(_plain(a.get("text", "")) for a in parts if a.get("text"))
        out["links"] = [("Alertmanager", a["title_link"]) for a in parts if a.get("title_link")][:1]
        out["color"] = next((a.get("color", "") for a in parts), "")
    else:
        out["source"] = "other"
        out["title"] = post.get("text", "") if isinstance(post, dict) else str(post)
    return out


class MessageStore:
    """Append-only JSON lines, one per post; readers see whole lines only."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "messages.jsonl"

    def append(self, channel: str, payload: dict[str, Any]) -> dict[str, Any]:
        record = {"received": datetime.now(UTC).isoformat(timespec="seconds"), "channel": channel,
                  "payload": payload}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        return record

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash: skip it, keep the rest
        return out


def create_app(settings: SlackSinkSettings | None = None) -> Flask:
    """The sink: POST /hooks/<channel> records a Slack webhook post; GET / shows them all."""
    settings = settings or load(SlackSinkSettings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    store = MessageStore(settings.SLACK_SINK_DIR)  # type: ignore[arg-type]

    @app.post("/hooks/<path:channel>")
    def hook(channel: str) -> Response | tuple[str, int]:
        try:
            payload = read_json(request)
        except BodyRefused as exc:
            error = "invalid_payload" if exc.status == 400 else exc.error  # Slack's own code for a bad body
            return jsonify(error=error, message=exc.message, fields=exc.fields), exc.status
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")
                                                 or payload.get("attachments")):
            # Slack's own answer (invalid_payload) to a body without anything to show
            return jsonify(error="invalid_payload", message="expected a JSON object with text, blocks or attachments",
                           fields={"(body)": "must be a JSON object with text, blocks or attachments"}), 400
        store.append(channel, payload)
        return "ok", 200

    @app.get("/")
    def page() -> str:
        return render_template_string(PAGE, messages=[view(r) for r in reversed(store.all())])

    @app.get("/messages.json")
    def messages() -> Response:
        return jsonify([{**r, "view": view(r)} for r in store.all()])

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.errorhandler(413)
    def too_large(_: Exception) -> tuple[Response, int]:
        return jsonify(error="payload_too_large", message=f"the request body is larger than {MAX_BODY} bytes",
                       fields={"(body)": f"must be at most {MAX_BODY} bytes"}), 413

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[str, int]:
        return "no such page: messages go to POST /hooks/<channel>, the page is at /", 404

    @app.errorhandler(405)
    def wrong_method(_: Exception) -> tuple[str, int]:
        return "method not allowed: POST to /hooks/<channel>, GET / or /messages.json", 405

    return app


def main() -> None:
    """Serve the sink with gunicorn (the same command natively and in Compose)."""
    from gunicorn.app.base import BaseApplication

    settings = load(SlackSinkSettings)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {"bind": f"{settings.SLACK_SINK_BIND}:{settings.SLACK_SINK_PORT}", "workers": 1,
                               "worker_class": "gthread", "threads": 4, "accesslog": None, "errorlog": "-",
                               "control_socket_disable": True, "proc_name": "mlstack-slack-sink"}.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            return create_app(settings)

    print(f"slack-sink: http://{settings.SLACK_SINK_BIND}:{settings.SLACK_SINK_PORT}/ "
          f"(posts to /hooks/<channel>, stored in {settings.SLACK_SINK_DIR})", flush=True)
    Server().run()


if __name__ == "__main__":
    main()
