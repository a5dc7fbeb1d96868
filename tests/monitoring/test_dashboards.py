"""Grafana provisioning, checked offline (the queries themselves run in tests/integration/test_monitoring.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"


def test_committed_dashboards_are_what_the_generator_writes():
    result = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_dashboards_have_fixed_unique_uids_the_provisioned_datasource_and_no_ui_editing():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mlstack.yml").read_text())["providers"][0]
    assert provider["allowUiUpdates"] is False and provider["disableDeletion"] is True
    uids = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        uids.append(board["uid"])
        assert board["editable"] is False, path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid and panel["targets"], (path.name, panel["title"])
            assert all(t["datasource"]["uid"] == uid and t["expr"] for t in panel["targets"])
    assert sorted(uids) == ["mlstack-ab", "mlstack-drift", "mlstack-pipeline", "mlstack-serving"]
