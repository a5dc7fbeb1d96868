"""make doctor's building blocks, without a stack."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mlstack.doctor import FAIL, OK, WARN, Doctor, Finding, parse_dotenv, port_owner, render, secret_names

ROOT = Path(__file__).resolve().parents[2]


def test_secret_names_are_read_from_the_example_file():
    names = secret_names(ROOT / ".env.example")
    assert {"S3_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "PREDICTION_ID_SECRET"} <= set(names)
    assert "WEB_PORT" not in names and "SLACK_WEBHOOK_URL" not in names  # set yourself, not generated


def test_parse_dotenv_reads_name_value_lines(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nB=two words\nnot a line\n")
    assert parse_dotenv(env) == {"A": "1", "B": "two words"}
    assert parse_dotenv(tmp_path / "missing") == {}


def test_the_owner_of_a_listening_port_is_found():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        owner = port_owner(sock.getsockname()[1])
    assert owner is not None and owner[0] == os.getpid()


def test_a_missing_env_file_is_a_failure_with_the_fix(tmp_path):
    doctor = Doctor(env_file=tmp_path / "missing.env")
    doctor.check_env()
    assert doctor.findings[0].status == FAIL and doctor.findings[0].fix.startswith("make env")


def test_a_missing_secret_is_named(tmp_path):
    env = tmp_path / ".env"
    env.write_text("S3_ACCESS_KEY_ID=abc\n")
    doctor = Doctor(env_file=env)
    doctor.check_env()
    assert doctor.findings[0].status == FAIL and "S3_SECRET_ACCESS_KEY" in doctor.findings[0].detail


def test_render_lists_fixes_for_failures_and_warnings_only():
    text = render([Finding("a", OK, "fine"), Finding("b", WARN, "meh", "do b"), Finding("c", FAIL, "bad", "do c")])
    assert "1. [b] do b" in text and "2. [c] do c" in text and text.endswith("1 problem(s) found")
