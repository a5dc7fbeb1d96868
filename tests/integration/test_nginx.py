"""nginx in front of the slots: split, stickiness, weight changes, failover, JSON errors."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest

from mlstack.native.stack import Stack
from mlstack.settings import StackSettings


@pytest.fixture(scope="module")
def native(stack):
    from pathlib import Path

    return Stack(stack.settings(StackSettings), env_path=Path(stack.env["MLSTACK_ENV_FILE"]))


@pytest.fixture(scope="module")
def web(native):
    return ("127.0.0.1", native.settings.WEB_PORT)


def call(web, method: str, path: str, body: object = None, headers: dict | None = None,
         raw: bytes | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection(*web, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", "Connection": "close",
                                                   **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, (json.loads(payload) if payload else {}), {k.lower(): v for k, v in resp.getheaders()}


@pytest.fixture()
def weight(native):
    """Set B's share for a test; restore 10% after."""
    def set_to(percent: int) -> None:
        native.set_ab_weight(percent)
    yield set_to
    native.set_ab_weight(10)


def test_headers_cookie_and_request_id(web, contract):
    status, body, headers = call(web, "POST", "/api/predict", contract.example())
    assert status == 200 and headers["x-model-variant"] == body["variant"]
    assert headers["x-model-version"] == body["model"]["version"] and len(headers["x-request-id"]) == 32
    assert headers["set-cookie"].startswith("mlstack_uid=") and "HttpOnly" in headers["set-cookie"]
    assert headers["x-content-type-options"] == "nosniff"


SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "same-origin",
                    "cross-origin-opener-policy": "same-origin"}


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/status"), ("POST", "/api/predict"),
                                          ("GET", "/api/split"), ("GET", "/api/metrics"), ("GET", "/nope")])
def test_every_answer_carries_the_security_headers(web, contract, method, path):
    conn = http.client.HTTPConnection(*web, timeout=10)
    conn.request(method, path, body=json.dumps(contract.example()) if method == "POST" else None,
                 headers={"Content-Type": "application/json", "Connection": "close"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    status, headers = resp.status, {k.lower(): v for k, v in resp.getheaders()}
    assert status in (200, 404), (path, status)
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (path, name, headers.get(name))
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "camera=()" in headers["permissions-policy"]
    assert headers.get("server", "nginx") == "nginx"  # no version


def test_anonymous_split_is_within_3_points_of_the_weight(web, contract):
    variants = [call(web, "POST", "/api/predict", contract.example())[2]["x-model-variant"] for _ in range(2000)]
    share_b = variants.count("B") / len(variants)
    assert abs(share_b - 0.10) <= 0.03, share_b


def test_a_cookie_user_always_gets_the_same_variant(web, contract):
    _, _, headers = call(web, "POST", "/api/predict", contract.example())
    cookie = headers["set-cookie"].split(";", 1)[0]
    seen = {call(web, "POST", "/api/predict", contract.example(), {"Cookie": cookie})[2]["x-model-variant"]
            for _ in range(30)}
    assert len(seen) == 1


def test_raising_the_weight_only_moves_users_from_a_to_b(web, native, contract, weight):
    users = [uuid.uuid4().hex for _ in range(400)]

    def assignment() -> dict[str, str]:
        return {u: call(web, "POST", "/api/predict", contract.example(), {"X-User-Id": u})[2]["x-model-variant"]
                for u in users}

    before = assignment()
    weight(40)
    assert call(web, "GET", "/api/split")[1] == {"weight_b": 40}
    after = assignment()
    assert all(after[u] == "B" for u in users if before[u] == "B")  # nobody left B
    assert 0.30 <= list(after.values()).count("B") / len(users) <= 0.50
    weight(0)
    assert {v for v in assignment().values()} == {"A"}  # 0 turns B off
    from pathlib import Path

    assert "AB_WEIGHT_B=0" in Path(native.env_path).read_text()  # remembered for the next `make up`


def test_an_invalid_weight_is_refused_and_the_split_is_unchanged(web, native):
    from mlstack.native.stack import StackError

    with pytest.raises(StackError, match="0 to 100"):
        native.set_ab_weight(101)
    assert call(web, "GET", "/api/split")[1] == {"weight_b": 10}


@pytest.mark.faults
def test_a_dead_slot_fails_no_request(web, native, contract, weight):
    weight(50)
    native.ctl("stop", "backend-b")
    try:
        results = [call(web, "POST", "/api/predict", contract.example(), {"X-User-Id": uuid.uuid4().hex})
                   for _ in range(200)]
        assert [s for s, _, _ in results if s != 200] == []
        assert {b["variant"] for _, b, _ in results} == {"A"}  # answered by the live slot
    finally:
        native.ctl("start", "backend-b")
        native.wait_healthy(next(p for p in native.programs() if p.name == "backend-b"), 60)


def test_slot_metrics_are_not_reachable_through_nginx(web):
    status, body, _ = call(web, "GET", "/api/metrics")
    assert status == 404 and body["error"] == "not_found"


def test_oversized_body_is_a_json_413(web):
    status, body, _ = call(web, "POST", "/api/predict/batch", raw=b"x" * (17 * 1024 * 1024))
    assert status == 413 and body["error"] == "payload_too_large" and body["fields"]


def test_bad_input_through_nginx_is_a_field_level_4xx(web, contract):
    status, body, _ = call(web, "POST", "/api/predict", {**contract.example(), "latitude": "north"})
    assert status == 422 and "latitude" in body["fields"]
    status, body, _ = call(web, "POST", "/api/predict", raw=b"{not json")
    assert status == 400 and body["fields"]


def test_up_refuses_ports_held_by_another_process(stack, tmp_path):
    """A port taken by someone else stops `up` before anything starts, naming the setting."""
    import socket

    from mlstack.native.stack import StackError
    from tests.integration.conftest import free_ports

    (port,) = free_ports(1)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        other = Stack(stack.settings(StackSettings, WEB_PORT=port, MLSTACK_VAR_DIR=tmp_path))
        with pytest.raises(StackError, match=rf"{port} \(WEB_PORT\)"):
            other.check_ports_free()
