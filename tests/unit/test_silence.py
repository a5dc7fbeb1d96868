"""A deliberate restart silences exactly the alerts of the service it restarts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import yaml

from mlstack.monitoring.silence import MATCHERS, silence_restart

ROOT = Path(__file__).resolve().parents[2]


def test_every_silenced_service_exists_and_every_matcher_names_labels_the_alerts_carry():
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    assert set(MATCHERS) <= services
    rules = yaml.safe_load((ROOT / "prometheus" / "rules" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for service, matchers in MATCHERS.items():
        for labels in matchers:
            name, value = next(iter(labels.items()))
            if name == "alertname":
                assert value in alerts, (service, value)
            else:  # a label some alert names in its summary or description
                assert any(f"$labels.{name}" in json.dumps(a["annotations"]) for a in alerts.values()), (service, name)


def test_a_restart_posts_one_silence_per_matcher_to_alertmanager():
    posted: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posted.append({"path": self.path, **json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            body = json.dumps({"silenceID": f"s{len(posted)}"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ids = silence_restart(f"http://127.0.0.1:{server.server_port}", "backend-b", minutes=5)
    finally:
        server.shutdown()
    assert ids == ["s1", "s2"]
    assert [p["path"] for p in posted] == ["/api/v2/silences"] * 2
    assert [m["matchers"] for m in posted] == [[{"name": "slot", "value": "B", "isRegex": False, "isEqual": True}],
                                              [{"name": "variant", "value": "B", "isRegex": False, "isEqual": True}]]
    assert "backend-b" in posted[0]["comment"] and posted[0]["endsAt"] > posted[0]["startsAt"]


def test_a_restart_without_alertmanager_goes_on_unsilenced():
    assert silence_restart("http://127.0.0.1:9", "frontend") == []
    assert silence_restart("http://127.0.0.1:9", "pushgateway") == []  # raises no alert of its own
