"""The dependency audit's verdict over pip-audit's JSON report and the allow-list."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("audit", ROOT / "scripts" / "audit.py")
audit = importlib.util.module_from_spec(spec)
sys.modules["audit"] = audit  # dataclasses look their module up
spec.loader.exec_module(audit)

REPORT = {"dependencies": [
    {"name": "flask", "version": "3.0.0", "vulns": []},
    {"name": "jinja2", "version": "3.1.2", "vulns": [
        {"id": "PYSEC-2024-1", "aliases": ["CVE-2024-22195"], "fix_versions": ["3.1.3"]}]},
    {"name": "localpkg", "version": "0.1", "skip_reason": "Dependency not found on PyPI"},
]}


def test_an_unlisted_vulnerability_fails_naming_package_id_and_fix():
    failures, notes, audited, skipped = audit.verdict(REPORT, [], date(2026, 12, 1))
    assert failures == ["jinja2 3.1.2: PYSEC-2024-1 (fixed in 3.1.3)"] and notes == []
    assert (audited, skipped) == (2, 1)


def test_an_allowed_vulnerability_passes_until_it_expires():
    entry = audit.Allowed("CVE-2024-22195", "jinja2", "templates are ours, never user input", date(2027, 1, 1))
    failures, notes, _, _ = audit.verdict(REPORT, [entry], date(2026, 12, 1))
    assert failures == [] and "allowed until 2027-01-01" in notes[0]  # matched through the alias
    failures, _, _, _ = audit.verdict(REPORT, [entry], date(2027, 1, 2))
    assert any("expired" in f for f in failures)


def test_the_allow_list_is_valid_and_nothing_in_it_has_expired():
    allowed = audit.load_allowlist(audit.ALLOWLIST)
    assert all(a.expires >= date.today() and a.reason for a in allowed)


def test_an_entry_without_a_reason_is_refused(tmp_path):
    path = tmp_path / "allow.yaml"
    path.write_text("- {id: X-1, package: p, expires: 2027-01-01}\n")
    with pytest.raises(ValueError, match="entry 1: missing reason"):
        audit.load_allowlist(path)
