"""Slack messages: Block Kit layout, retries on 5xx and network errors, never an exception."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlstack.rollout import slack
from mlstack.rollout.judge import Check, Decision


def _server(statuses):
    posts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/hook", posts


def test_message_has_a_header_reason_checks_and_links():
    check = Check("error_rate", "regression", 3000, 3000, 0.01, 0.05, 0.04, 0.02, 0.06, 0.0, True)
    decision = Decision("RETIRE", "challenger significantly worse", (check,))
    payload = slack.from_decision(decision, "house-price", slack.Links("http://af", "http://ml", "http://web/status"),
                                  17, "v3 retired")
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["header", "section", "section", "actions", "context"]
    assert "Challenger retired" in payload["text"] and "error_rate" in payload["blocks"][2]["text"]["text"]
    assert [e["url"] for e in payload["blocks"][3]["elements"]] == ["http://af", "http://ml", "http://web/status"]


def test_send_retries_server_errors_then_delivers():
    server, url, posts = _server([500, 503])
    try:
        delivery = slack.send(url, {"text": "t", "blocks": []}, attempts=3, backoff=0.01)
    finally:
        server.shutdown()
    assert delivery.status == "delivered" and delivery.attempts == 3 and len(posts) == 3


def test_send_gives_up_without_raising():
    server, url, _ = _server([400])
    try:
        assert slack.send(url, {"text": "t"}, attempts=3, backoff=0.01) == slack.Delivery("failed", 1, "HTTP 400")
    finally:
        server.shutdown()
    assert slack.send("http://127.0.0.1:9/none", {"text": "t"}, attempts=2, backoff=0.01).status == "failed"
    assert slack.send(None, {"text": "t"}).status == "logged"
