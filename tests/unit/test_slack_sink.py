"""The local Slack sink: records webhook posts (mlstack's Block Kit, Alertmanager's attachments) and shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.rollout import slack
from mlstack.settings import SlackSinkSettings
from mlstack.slack_sink import create_app, view


@pytest.fixture
def sink(tmp_path: Path):
    settings = SlackSinkSettings(_env_file=None, SLACK_SINK_DIR=tmp_path)
    return create_app(settings).test_client(), tmp_path


ALERT = {"text": "", "attachments": [{"title": "[FIRING:1] MlstackSlotDown", "title_link": "http://127.0.0.1:9093/#/alerts",
                                      "text": "*Slot B* is down", "color": "danger"}]}


def test_a_rollout_message_and_an_alert_are_recorded_and_shown(sink):
    client, _ = sink
    message = slack.message("ROLLBACK", "house-price", "v4 is champion again (v5 rolled back)", "champion degraded",
                            links=slack.Links(airflow="http://airflow/dags/guard_champion", status_page="http://web/status"),
                            event_id=42)
    assert client.post("/hooks/local", json=message).status_code == 200
    assert client.post("/hooks/local", json=ALERT).status_code == 200
    page = client.get("/").get_data(as_text=True)
    assert page.index("MlstackSlotDown") < page.index("Champion rolled back")  # newest first
    assert "v4 is champion again (v5 rolled back)" in page and 'href="http://web/status"' in page
    assert "audit event #42" in page and "Slot B is down" in page
    listed = client.get("/messages.json").get_json()
    assert [m["view"]["source"] for m in listed] == ["mlstack", "alertmanager"]
    assert listed[0]["channel"] == "local" and listed[0]["payload"] == message


def test_messages_survive_a_restart(sink, tmp_path):
    client, _ = sink
    client.post("/hooks/team", json={"text": "hello"})
    again = create_app(SlackSinkSettings(_env_file=None, SLACK_SINK_DIR=tmp_path)).test_client()
    assert [m["payload"]["text"] for m in again.get("/messages.json").get_json()] == ["hello"]


@pytest.mark.parametrize("body", [b"not json", b"{}", b"[1, 2]", b'{"text": ""}'])
def test_a_payload_slack_would_refuse_is_a_400_and_is_not_stored(sink, body):
    client, _ = sink
    resp = client.post("/hooks/local", data=body, content_type="application/json")
    assert resp.status_code == 400 and "invalid_payload" in resp.get_data(as_text=True)
    assert client.get("/messages.json").get_json() == []


def test_an_empty_sink_says_what_will_appear(sink):
    client, _ = sink
    assert "No messages yet" in client.get("/").get_data(as_text=True)
    assert client.get("/health").get_json() == {"status": "ok"}
    assert client.get("/hooks/local").status_code == 405


def test_view_strips_slack_markup():
    shown = view({"payload": {"blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                      "text": "*bold* and `code` <http://x|a link>"}}]}})
    assert shown["body"] == "bold and code a link"


def test_the_stack_s_emoji_are_drawn():
    shown = view({"payload": slack.message("PROMOTE", "house-price", "v2 is now champion", "better")})
    assert shown["title"] == "🚀 Challenger promoted: house-price"
