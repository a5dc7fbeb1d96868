"""The Locust scenarios run headless against the stack's nginx, as `make loadtest` runs them."""

from __future__ import annotations

import csv
import time

import sqlalchemy as sa


def test_loadtest_runs_every_scenario_without_a_failure_and_writes_reports(stack, tmp_path):
    result = stack.script("scripts/loadtest.py", "--users", "8", "--spawn-rate", "8", "--duration", "12s",
                          "--reports", str(tmp_path), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "loadtest.html").stat().st_size > 10_000
    with (tmp_path / "loadtest_stats.csv").open() as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    for name in ("/ (form)", "/api/predict", "/api/predict/batch (50 rows)", "/api/feedback"):
        assert int(rows[name]["Request Count"]) > 0, f"{name} never ran: {list(rows)}"
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert "same variant for a user" not in rows  # stickiness held for every simulated person
    assert "0 failed" in result.stdout and "/api/predict" in result.stdout
    # the feedback Locust sent is in the database, joined to its prediction
    sent = int(rows["/api/feedback"]["Request Count"])
    engine = sa.create_engine(stack.app_db_url)
    deadline = time.time() + 15  # the prediction log flushes every PREDICTION_FLUSH_SECONDS
    while True:
        with engine.connect() as conn:
            joined = conn.execute(sa.text("SELECT count(*) FROM feedback f JOIN predictions p USING (prediction_id)"
                                          " WHERE p.user_hash IS NOT NULL")).scalar()
        if joined >= sent or time.time() > deadline:
            break
        time.sleep(0.5)
    engine.dispose()
    assert joined >= sent
