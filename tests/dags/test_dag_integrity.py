"""Every DAG file imports without errors and has the expected tasks, edges and schedule.

The DAG folder is loaded by Airflow's own DagBag in a separate process (Airflow configures
logging and its ORM at import; the test process stays clean).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "airflow" / "dags"

LOADER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v)[:2000] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tasks": sorted(t.task_id for t in dag.tasks),
        "edges": sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),
        "timetable": type(dag.timetable).__name__,
        "schedule": getattr(dag.timetable, "_expression", None) or str(getattr(dag, "schedule", "")),
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
        "on_failure_callback": bool(dag.on_failure_callback), "doc_md": bool(dag.doc_md),
        "retries": dag.default_args.get("retries"),
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    result = subprocess.run([sys.executable, "-c", LOADER, str(DAGS)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_dag_file_imports(bag):
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {"train_model", "evaluate_ab", "guard_champion", "monitor_drift",
                                 "archive_history"}


@pytest.mark.parametrize(("dag_id", "tasks", "edges", "schedule"), [
    ("train_model", ["train_register", "validate"], [["validate", "train_register"]], "@daily"),
    ("evaluate_ab", ["evaluate"], [], "* * * * *"),
    ("guard_champion", ["guard"], [], "* * * * *"),
    ("monitor_drift", ["check", "drifted", "retrain"], [["check", "drifted"], ["drifted", "retrain"]], "@hourly"),
    ("archive_history", ["archive"], [], "@daily"),
])
def test_tasks_edges_and_schedule(bag, dag_id, tasks, edges, schedule):
    dag = bag["dags"][dag_id]
    assert dag["tasks"] == tasks and dag["edges"] == edges
    assert schedule in (dag["schedule"], {"0 0 * * *": "@daily", "0 * * * *": "@hourly"}.get(dag["schedule"]))
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["retries"] >= 1
    assert dag["on_failure_callback"] and dag["doc_md"]  # a failed run sends one Slack message


def test_dag_files_stay_thin():
    """No heavy import at module level: mlflow, sklearn, pandas and sqlalchemy load inside tasks."""
    for path in DAGS.glob("*.py"):
        top = [line for line in path.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert not any(m in line for line in top for m in ("mlflow", "sklearn", "pandas", "sqlalchemy")), path
