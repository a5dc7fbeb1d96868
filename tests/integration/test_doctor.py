"""`make doctor` against the running test stack: all clear, then a taken port and a wrong S3 key diagnosed."""

from __future__ import annotations

import json
import os
import socket

from tests.integration.conftest import free_ports


def doctor(stack, **env: str) -> tuple[int, dict[str, dict]]:
    result = stack.run("--json", module="mlstack.doctor", extra_env=env, timeout=120)
    findings = json.loads(result.stdout)
    return result.returncode, {f["check"]: f for f in findings}


def test_the_running_stack_is_all_clear_and_its_own_ports_are_not_a_problem(stack):
    rc, found = doctor(stack)
    failed = {k: f for k, f in found.items() if f["status"] == "fail"}
    assert rc == 0 and not failed, failed
    assert "held by this stack (running)" in found["ports"]["detail"]
    for check in ("postgresql (APP_DATABASE_URL)", "s3", "mlflow", "airflow", ".env"):
        assert found[check]["status"] == "ok", found[check]


def test_a_port_taken_by_another_process_is_named_with_its_owner_and_a_free_replacement(stack):
    (port,) = free_ports(1)
    with socket.socket() as intruder:
        intruder.bind(("127.0.0.1", port))
        intruder.listen()
        rc, found = doctor(stack, PUSHGATEWAY_PORT=str(port))
    finding = found[f"port {port}"]
    assert rc == 1 and finding["status"] == "fail"
    assert f"PUSHGATEWAY_PORT = {port} is taken by pid {os.getpid()}" in finding["detail"]
    assert finding["fix"].startswith(f"stop it (kill {os.getpid()}) or set PUSHGATEWAY_PORT=")
    suggested = int(finding["fix"].split("PUSHGATEWAY_PORT=")[1].split()[0])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # the suggested port is really free


def test_a_wrong_s3_secret_is_named_with_the_exact_fix(stack):
    rc, found = doctor(stack, S3_SECRET_ACCESS_KEY="not-the-secret-the-server-knows")
    s3 = found["s3"]
    assert rc == 1 and s3["status"] == "fail"
    assert "refuses the credentials" in s3["detail"] and "SignatureDoesNotMatch" in s3["detail"]
    assert s3["fix"].startswith("S3_SECRET_ACCESS_KEY in test.env differ")  # the access key is right: not named
    assert "make down && make up" in s3["fix"]
    assert found["mlflow"]["status"] == "ok"  # the rest of the stack is still fine


def test_a_wrong_mlflow_password_is_named(stack):
    rc, found = doctor(stack, MLFLOW_TRACKING_PASSWORD="a-wrong-password-123")
    assert rc == 1 and found["mlflow"]["status"] == "fail" and "(401)" in found["mlflow"]["detail"]
    assert "MLFLOW_TRACKING_PASSWORD" in found["mlflow"]["fix"]
