"""Prometheus and Alertmanager configuration, checked by their own tools (promtool, amtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "prometheus"


def _run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        pytest.fail(f"{cmd[0]} is missing: scripts/install.sh installs it (Debian package)")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_are_valid():
    result = _run("promtool", "check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_passes_its_promtool_unit_tests():
    result = _run("promtool", "test", "rules", "alerts_test.yml", cwd=PROM / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "rules" / "alerts.yml").read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert alerts and alerts <= fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def test_every_alert_says_what_happened_and_how_bad():
    for group in yaml.safe_load((PROM / "rules" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
                assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.mark.parametrize("mode", ["compose"])
def test_the_compose_prometheus_config_is_valid(mode, tmp_path):
    """prometheus.yml with the committed Compose targets, laid out as the container sees it."""
    shutil.copy(PROM / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    shutil.copytree(PROM / "targets" / mode, tmp_path / "targets")
    result = _run("promtool", "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"] for j in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]}
    for job_file in {f for j in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]
                     for sd in j["file_sd_configs"] for f in sd["files"]}:
        assert (tmp_path / job_file).exists(), f"{mode} has no {job_file}"
    assert {"slots", "nginx", "health", "pushgateway"} <= jobs


def test_the_alertmanager_config_is_valid(tmp_path):
    (tmp_path / "slack_webhook_url").write_text("http://127.0.0.1:1/hooks/test\n")
    shutil.copy(PROM / "alertmanager.yml", tmp_path / "alertmanager.yml")
    shutil.copytree(PROM / "templates", tmp_path / "templates")
    result = _run("amtool", "check-config", str(tmp_path / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
