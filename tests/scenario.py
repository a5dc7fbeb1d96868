"""Steps the integration tests and the end-to-end scenario share, on any mode's stack (mlstack.deployment)."""

from __future__ import annotations

import threading
import time

from mlstack.simulator import Simulator

TASKS = {"evaluate_ab": "evaluate", "guard_champion": "guard"}  # each rollout DAG's one task


def act_through_airflow(api, stack, rows, contract, dag_id: str, decided, *, seconds: float, rate: float,
                        fault: tuple[str, dict] | None = None) -> None:
    """Unpause `dag_id` under simulated traffic (a slot in `fault` mode, if given) until `decided()`, then
    pause it and clear the fault.

    Unpaused, the scheduler runs the DAG every minute; manual runs are triggered in between so
    the test does not wait for the minute. Whichever run has the evidence first acts.
    """
    sim = Simulator(stack.settings.WEB_PORT, rows, contract, rate=rate, threads=6, feedback_delay=0.5)
    runner = threading.Thread(target=sim.run, args=(seconds,), daemon=True)
    api.wait_parsed(dag_id)
    if fault:
        stack.set_fault(fault[0], **fault[1])
    api.set_paused(dag_id, False)
    outcomes = []
    try:
        runner.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not decided():
            time.sleep(2)
            run = api.run(dag_id)
            assert run["state"] == "success", run
            outcomes.append(api.xcom(dag_id, run["dag_run_id"], TASKS[dag_id]))
    finally:
        api.set_paused(dag_id, True)
        if fault:
            stack.set_fault(fault[0])
        sim.stop()
        runner.join(timeout=30)
    print(f"[{stack.mode}] {dag_id} via Airflow (manual runs):", [o["action"] for o in outcomes], sim.report.as_dict())
