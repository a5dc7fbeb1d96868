"""Run `mlflow server` as one process (mlflow/start-server.sh; native mode and Compose).

MLflow's CLI validates its options, prepares the server's environment (stores, basic auth, the admin
user), then starts uvicorn as a child and waits on it: a second Python process holding all of MLflow
(about 200 MB PSS) that serves nothing. Here the CLI does all of that, and then replaces itself with
the uvicorn command it built (exec), so signals from supervisord or Docker reach the server directly.

    python -m mlstack.registry.server --app-name basic-auth --host … --port … [any `mlflow server` option]
"""

from __future__ import annotations

import os
import sys
from typing import Any


def _exec(cmd: list[str], extra_env: dict[str, str] | None = None, **_: Any) -> None:
    """Stand-in for MLflow's spawn of the server: become that process instead."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, {**os.environ, **(extra_env or {})})


def main(argv: list[str] | None = None) -> None:
    # The job runner would be started after the spawn, which exec never returns from; the stack runs no jobs.
    if os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "").lower() not in ("false", "0"):
        sys.exit("mlstack.registry.server: set MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false (it runs no job runner)")
    import mlflow.server
    from mlflow.cli import cli

    mlflow.server._exec_cmd = _exec  # the one call that spawns the server (mlflow.server._run_server)
    cli(["server", *(sys.argv[1:] if argv is None else argv)], prog_name="mlflow")
    # MLflow returned without exec-ing: it built no server command (an option it refuses exits above)
    sys.exit("mlstack.registry.server: `mlflow server` returned without starting the server")


if __name__ == "__main__":
    main()
