#!/usr/bin/env python3
"""Write the mlstack Grafana dashboards (grafana/dashboards/*.json) from one description.

    python grafana/build_dashboards.py           # (re)write the JSON files
    python grafana/build_dashboards.py --check   # exit 1 if a committed file differs (make test runs this)

Every panel queries the provisioned datasource (uid mlstack-prometheus); every query is run
against a real Prometheus fed by the native stack in tests/integration/test_dashboards.py.
Dashboards have fixed uids and are not editable in the UI (provisioning: allowUiUpdates false).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "mlstack-prometheus"}


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": not instant,
            "instant": instant}


def panel(title: str, targets: list[dict[str, Any]], *, kind: str = "timeseries", unit: str = "short",
          w: int = 12, h: int = 8, description: str = "", options: dict[str, Any] | None = None,
          thresholds: list[tuple[float | None, str]] | None = None) -> dict[str, Any]:
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    return {"type": kind, "title": title, "description": description, "datasource": DS, "targets": targets,
            "gridPos": {"w": w, "h": h}, "options": options or {},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []}}


def annotation(name: str, expr: str, color: str, text: str) -> dict[str, Any]:
    return {"name": name, "datasource": DS, "enable": True, "iconColor": color, "expr": expr, "step": "30s",
            "titleFormat": name, "textFormat": text, "useValueForTime": False}


TRANSITIONS = [
    annotation("Promotion", 'changes(mlstack_transitions_total{transition="promotion"}[2m]) > 0', "green",
               "the judge promoted the challenger"),
    annotation("Rollback", 'changes(mlstack_transitions_total{transition="rollback"}[2m]) > 0', "red",
               "the champion was rolled back"),
    annotation("Retirement", 'changes(mlstack_transitions_total{transition="retirement"}[2m]) > 0', "orange",
               "the judge retired the challenger"),
]

PREDICT = 'endpoint=~"/predict|/predict/batch"'

DASHBOARDS: dict[str, dict[str, Any]] = {
    "serving": {
        "uid": "mlstack-serving", "title": "mlstack · Serving",
        "description": "Requests, latency, errors and the A/B split, per slot (variant) and model version.",
        "annotations": TRANSITIONS,
        "panels": [
            panel("Requests/s by slot", [target("variant:mlstack_predict_requests:rate1m", "slot {{variant}}")],
                  unit="reqps"),
            panel("Requests/s by slot and model version", [target(
                f"sum by (variant, model_version) (rate(mlstack_requests_total{{{PREDICT}}}[1m]))",
                "slot {{variant}} · v{{model_version}}")], unit="reqps"),
            panel("Latency inside the slot (p50 / p95 / p99, /predict)", [
                target("variant:mlstack_predict_latency_seconds:p50_5m", "p50 slot {{variant}}", "A"),
                target("variant:mlstack_predict_latency_seconds:p95_5m", "p95 slot {{variant}}", "B"),
                target("variant:mlstack_predict_latency_seconds:p99_5m", "p99 slot {{variant}}", "C")],
                unit="s", thresholds=[(None, "green"), (0.1, "red")],
                description="The red line is the 100 ms latency SLO of policy.yaml."),
            panel("Error ratio by slot and model version (5xx / requests, 5 min)", [
                target("variant_version:mlstack_predict_error_ratio:rate5m", "slot {{variant}} · v{{model_version}}")],
                unit="percentunit", thresholds=[(None, "green"), (0.05, "red")]),
            panel("Split: share of predictions per slot", [
                target("variant:mlstack_predictions:share5m", "slot {{variant}} (answered)", "A"),
                target("mlstack_ab_weight_b / 100", "B's configured share", "B")], unit="percentunit"),
            panel("What each slot serves", [target("mlstack_model_version_info == 1",
                                                    "slot {{variant}}: v{{model_version}} ({{alias}})",
                                                    instant=True)], kind="table", w=12),
            panel("nginx: requests/s and active connections", [
                target("rate(nginx_http_requests_total[1m])", "requests/s", "A"),
                target("nginx_connections_active", "active connections", "B")]),
            panel("Prediction log: waiting for the database / spilled to disk", [
                target("sum by (variant) (mlstack_prediction_log_pending)", "pending slot {{variant}}", "A"),
                target("sum by (variant) (increase(mlstack_prediction_log_spilled_total[5m]))",
                       "spilled slot {{variant}} (5 min)", "B")]),
            panel("Predicted values (distribution, 5 min)", [target(
                "sum by (le) (rate(mlstack_predicted_value_bucket[5m]))", "{{le}}")], kind="heatmap",
                options={"calculate": False, "yAxis": {"unit": "short"}}),
            panel("Model swaps and refused versions (1 h)", [
                target("sum by (variant, model_version) (increase(mlstack_model_swaps_total[1h]))",
                       "swapped in: slot {{variant}} v{{model_version}}", "A"),
                target("sum by (variant) (increase(mlstack_model_swaps_refused_total[1h]))",
                       "refused: slot {{variant}}", "B")]),
        ],
    },
    "ab-rollouts": {
        "uid": "mlstack-ab", "title": "mlstack · A/B and rollouts",
        "description": "Live accuracy per arm from predictions joined with feedback, and what the judge decided.",
        "annotations": TRANSITIONS,
        "panels": [
            panel("Live RMSE per slot and version (30 min)", [
                target("variant_version:mlstack_live_rmse:30m", "slot {{variant}} · v{{model_version}}")],
                unit="currencyUSD"),
            panel("Live MAE per slot and version (30 min)", [
                target("variant_version:mlstack_live_mae:30m", "slot {{variant}} · v{{model_version}}")],
                unit="currencyUSD"),
            panel("Labelled predictions per slot and version (30 min)", [
                target("variant_version:mlstack_live_labels:30m", "slot {{variant}} · v{{model_version}}")]),
            panel("The judge's evidence window: RMSE per arm", [
                target('mlstack_judge_arm_rmse{kind="ab"}', "{{arm}} v{{model_version}}")], unit="currencyUSD"),
            panel("The judge's evidence window: requests and labels per arm", [
                target('mlstack_judge_arm_requests{kind="ab"}', "requests {{arm}} v{{model_version}}", "A"),
                target('mlstack_judge_arm_labels{kind="ab"}', "labels {{arm}} v{{model_version}}", "B")]),
            panel("Decisions (latest tick)", [target("mlstack_judge_decision == 1", "{{kind}}: {{action}}")],
                  kind="state-timeline", w=24, h=6),
            panel("Transitions so far", [target("mlstack_transitions_total", "{{transition}}", instant=True)],
                  kind="stat"),
            panel("Sample-ratio check (χ² p-value; below 0.001 the judge holds)", [
                target("mlstack_judge_srm_p_value", "p-value")], thresholds=[(None, "red"), (0.001, "green")]),
        ],
    },
    "drift": {
        "uid": "mlstack-drift", "title": "mlstack · Data drift",
        "description": "monitor_drift: recent production inputs against the training data (Evidently).",
        "annotations": TRANSITIONS,
        "panels": [
            panel("Share of drifted features", [
                target("mlstack_drift_share", "share drifted", "A"),
                target("mlstack_drift_share_threshold", "threshold (policy)", "B")], unit="percentunit"),
            panel("Per-feature drift score", [target("mlstack_drift_score", "{{feature}}")],
                  thresholds=[(None, "green"), (0.2, "red")],
                  description="Wasserstein distance normed by the reference std (numeric), Jensen-Shannon "
                              "(categorical); a feature counts as drifted from the policy's column_threshold."),
            panel("Rows in the drift window", [target("mlstack_drift_window_rows", "rows")], kind="stat", w=8),
            panel("Drift detected (latest check)", [target("mlstack_drift_detected", "detected")], kind="stat",
                  w=8, thresholds=[(None, "green"), (1, "red")]),
            panel("Time since the last drift check", [target("time() - mlstack_drift_check_timestamp_seconds",
                                                             "age")], kind="stat", unit="s", w=8),
        ],
    },
    "pipeline": {
        "uid": "mlstack-pipeline", "title": "mlstack · Pipeline",
        "description": "DAG runs, training metrics by version, and the health of every service.",
        "annotations": TRANSITIONS,
        "panels": [
            panel("Time since each DAG last succeeded", [
                target("time() - mlstack_dag_last_success_timestamp_seconds", "{{dag_id}}", instant=True)],
                kind="table", unit="s"),
            panel("Holdout RMSE by model version (at training)", [
                target("mlstack_training_holdout_rmse", "v{{model_version}} {{family}}", instant=True)],
                kind="table", unit="currencyUSD"),
            panel("Holdout MAE and R² by model version", [
                target("mlstack_training_holdout_mae", "MAE v{{model_version}}", "A", instant=True),
                target("mlstack_training_holdout_r2", "R² v{{model_version}}", "B", instant=True)], kind="table"),
            panel("Training time by model version", [
                target("mlstack_training_train_seconds", "v{{model_version}}", instant=True)], kind="table",
                unit="s"),
            panel("Service health (1 = healthy)", [
                target('probe_success{job="health"}', "{{service}}", "A"),
                target('up{job=~"slots|nginx|postgres|pushgateway|alertmanager|prometheus"}', "{{job}} {{slot}}",
                       "B")], kind="state-timeline", w=24),
            panel("Alerts firing", [target('count(ALERTS{alertstate="firing"}) or vector(0)', "firing")],
                  kind="stat", thresholds=[(None, "green"), (1, "red")]),
            panel("PostgreSQL connections", [target("sum(pg_stat_activity_count)", "connections")]),
        ],
    },
}


def build(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    panels, x, y, row_h = [], 0, 0, 0
    for i, p in enumerate(spec["panels"], 1):
        p = json.loads(json.dumps(p))
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = i
        x, row_h = x + w, max(row_h, h)
        panels.append(p)
    return {
        "uid": spec["uid"], "title": spec["title"], "description": spec["description"],
        "tags": ["mlstack"], "editable": False, "schemaVersion": 39, "version": 1, "timezone": "browser",
        "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": list(spec["annotations"])},
        "panels": panels, "templating": {"list": []},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is out of date")
    args = parser.parse_args(argv)
    stale = []
    OUT.mkdir(exist_ok=True)
    for name, spec in DASHBOARDS.items():
        text = json.dumps(build(name, spec), indent=2, ensure_ascii=False) + "\n"
        path = OUT / f"{name}.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}: run python grafana/build_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
