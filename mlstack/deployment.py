"""One interface to a running stack, native (supervisord) or Docker Compose.

The end-to-end scenarios, the demo and the benchmarks drive the stack through it, so that one
copy of each runs against both modes. Each mode says how to start, stop, restart and inspect its
services; what a client on the host sees is the same in both, because every URL comes from the
port settings in .env (Compose publishes each service on the port native mode listens on).
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from mlstack.settings import StackSettings

MODES = ("native", "compose")


class StackError(RuntimeError):
    """A service did not come up (or down); the message says which and where its log is."""


class Deployment:
    """What every mode offers. Subclasses set `settings` and implement the per-mode methods."""

    mode: ClassVar[str]
    settings: StackSettings

    # -- the same in both modes: URLs on the host ------------------------------------------------

    def _web_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.WEB_PORT}"

    def _slot_urls(self) -> dict[str, str]:
        """Where each slot answers on the host (its /ready, /model-info)."""
        s = self.settings
        return {"SLOT_A_URL": f"http://127.0.0.1:{s.BACKEND_A_PORT}",
                "SLOT_B_URL": f"http://127.0.0.1:{s.BACKEND_B_PORT}"}

    @property
    def slack_sink_url(self) -> str | None:
        """The local Slack sink's page, when no real webhook is set."""
        s = self.settings
        return f"http://127.0.0.1:{s.SLACK_SINK_PORT}" if s.slack_sink_enabled else None

    def wait_serving(self, slot: str, version: str, timeout: float = 30) -> None:
        """Wait until slot A or B answers /model-info with `version` (a slot polls its alias every few seconds)."""
        url = self._slot_urls()[f"SLOT_{slot}_URL"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/model-info", timeout=5) as resp:
                    if (json.loads(resp.read()).get("model") or {}).get("version") == version:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise StackError(f"slot {slot} did not serve v{version} within {timeout:.0f}s")

    def _wait_for_split(self, weight: int, timeout: float = 15.0, settle: float = 0.5) -> None:
        """Wait until every answer carries the new weight for `settle` seconds.

        A reload is asynchronous: for a moment old workers still accept connections next to the
        new ones, so one new answer is not enough — the old workers must be gone.
        """
        url = f"{self._web_url()}/api/split"
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    current = json.loads(resp.read()).get("weight_b") == weight
            except OSError:
                current = False
            now = time.monotonic()
            since = (since or now) if current else None
            if since is not None and now - since >= settle:
                return
            time.sleep(0.02)
        raise StackError(f"nginx did not settle on the new weight within {timeout:.0f}s")

    # -- per mode ---------------------------------------------------------------------------------

    def up(self) -> None:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, str]:
        """Return each service's health: 'healthy' or what is wrong."""
        raise NotImplementedError

    def set_ab_weight(self, weight: int) -> None:
        """Send `weight`% of users to slot B (nginx reloads gracefully) and remember it in .env."""
        raise NotImplementedError

    def set_fault(self, slot: str, **fault: float) -> None:
        """Put a slot into a fault mode (error_rate, latency_ms, bias; mlstack.serving.faults); none clears it."""
        raise NotImplementedError

    def restart(self, service: str) -> None:
        """Restart one service the way an operator would (gracefully), and return once it is running again.

        The frontend and nginx run once each, so nothing could answer while they restart whole: their
        master keeps the listening socket and replaces its workers (IN_PLACE). nginx does that on HUP (new
        workers read the config, the old ones finish what they serve). gunicorn's HUP would retire the old
        workers at once while the new ones still import, so the frontend's workers roll instead: one more
        worker, which loads the code on disk, until the new ones say they serve; then one fewer at a time,
        gunicorn retiring the oldest. A slot restarts whole while nginx sends its requests to the other slot.
        A deliberate restart does not page: the alerts it would raise are silenced for a few minutes first.
        """
        from mlstack.monitoring.silence import silence_restart

        if self.settings.MONITORING_ENABLED:
            silence_restart(f"http://127.0.0.1:{self.settings.ALERTMANAGER_PORT}", service,
                            minutes=max(5.0, self.settings.STARTUP_TIMEOUT_SECONDS / 60))
        if IN_PLACE.get(service) == "roll":
            self._roll_workers(service)
        elif service in IN_PLACE:
            workers = self.workers(service)
            self._signal(service, IN_PLACE[service])
            self._wait_replaced(service, workers)
        else:
            self._restart(service)

    def _restart(self, service: str) -> None:
        raise NotImplementedError

    def _signal(self, service: str, name: str) -> None:
        """Send a signal (by name, e.g. HUP) to a service's main process."""
        raise NotImplementedError

    def main_pid(self, service: str) -> int:
        """The process id, on this machine, of a service's main process (gunicorn's or nginx's master)."""
        raise NotImplementedError

    def kill(self, service: str) -> int:
        """Kill a service at once, as a crash would (SIGKILL to all its processes); return the pid it had.

        Nothing is silenced: the supervisor (natively) or the engine (Compose) must bring it back."""
        raise NotImplementedError

    def healthy(self, service: str, since: datetime | None = None) -> bool:
        """Whether one service passes its health check now (with a heartbeat after `since`, where it has one)."""
        raise NotImplementedError

    def workers(self, service: str) -> set[int]:
        """The process ids of a service's workers (the main process's children)."""
        import psutil

        return {p.pid for p in psutil.Process(self.main_pid(service)).children()}

    def ready_workers(self, service: str) -> set[int]:
        """The gunicorn workers that serve: their process title ends in READY (set once the app is loaded)."""
        import psutil

        ready = set()
        for child in psutil.Process(self.main_pid(service)).children():
            try:
                if " ".join(filter(None, child.cmdline())).endswith(READY):  # the title is padded with NULs
                    ready.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return ready

    def _roll_workers(self, service: str, timeout: float = 120) -> None:
        """Replace a gunicorn master's workers without a moment in which none accepts (TTIN, then TTOU)."""
        old = self.workers(service)
        deadline = time.monotonic() + timeout
        for _ in old:  # grow by one at a time: signals sent together could merge into one
            before = self.workers(service)
            self._signal(service, "TTIN")
            while not (self.ready_workers(service) - before):  # before holds every old worker too
                if time.monotonic() > deadline:
                    raise StackError(f"{service}: a new worker did not start serving within {timeout:.0f} s")
                time.sleep(0.2)
        for _ in old:  # gunicorn retires the oldest worker first: an old one
            self._signal(service, "TTOU")
            time.sleep(0.2)
        self._wait_replaced(service, old, timeout=max(1.0, deadline - time.monotonic()))

    def _wait_replaced(self, service: str, old: set[int], timeout: float = 60) -> None:
        """Wait until every old worker has finished and new ones run in its place."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.workers(service)
            if now and not now & old:
                return
            time.sleep(0.2)
        raise StackError(f"{service}: its workers were not replaced within {timeout:.0f} s")

    def client_env(self) -> dict[str, str]:
        """The environment a command on the host needs to reach this stack (python -m mlstack ...)."""
        raise NotImplementedError

    def airflow_file(self, path: Path) -> str:
        """Make a file on this machine readable by Airflow's tasks; return the path they see it at."""
        raise NotImplementedError


# Services that restart in place, and how: nginx reloads on HUP, the frontend's gunicorn workers roll.
IN_PLACE = {"frontend": "roll", "nginx": "HUP"}
# How a gunicorn worker's process title ends once it serves (its post_worker_init hook sets it).
READY = "ready"


def fault_json(**fault: float) -> str | None:
    """The fault file's text for these settings, or None when no fault is set (the file is removed)."""
    active = {k: float(v) for k, v in fault.items() if v}
    return json.dumps(active) if active else None


def set_env_value(path: Path, name: str, value: str) -> None:
    """Set NAME=value in a dotenv file (replacing the line, or appending it)."""
    lines = path.read_text().splitlines() if path.exists() else []
    out, done = [], False
    for line in lines:
        if line.startswith(f"{name}="):
            out.append(f"{name}={value}")
            done = True
        else:
            out.append(line)
    if not done:
        out.append(f"{name}={value}")
    path.write_text("\n".join(out) + "\n")


def open_deployment(mode: str, settings: StackSettings | None = None, console: Any = None,
                    env_path: Path | None = None) -> Deployment:
    """The stack of `mode` ("native" or "compose") described by .env (or `env_path`)."""
    from mlstack.settings import load

    settings = settings or load(StackSettings)
    if mode == "native":
        from mlstack.native.stack import Stack

        return Stack(settings, **({"console": console} if console else {}), env_path=env_path)
    if mode == "compose":
        from mlstack.compose.stack import ComposeStack

        return ComposeStack(settings, **({"console": console} if console else {}), env_path=env_path)
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def main(mode: str, argv: list[str] | None = None) -> int:
    """`python -m mlstack.native ...` and `python -m mlstack.compose ...`: one command line for both modes."""
    import argparse
    import logging
    import sys

    from pydantic import ValidationError
    from rich.console import Console
    from rich.markup import escape

    from mlstack.storage import StorageUnavailable

    parser = argparse.ArgumentParser(prog=f"mlstack.{mode}", description=f"The {mode} stack: up, down, status, logs.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start (or update) every service, wait until healthy, bootstrap")
    down = sub.add_parser("down", help="stop every service")
    if mode == "compose":
        down.add_argument("--volumes", action="store_true", help="also delete the data volumes (everything is lost)")
        sub.add_parser("build", help="build every image (the layer cache makes a second build quick)")
    sub.add_parser("status", help="show each service's state and health (exit 1 if any is unhealthy)")
    logs = sub.add_parser("logs", help="show service logs")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("services", nargs="*")
    weight = sub.add_parser("ab-weight", help="set the percent of users sent to slot B (0 turns B off)")
    weight.add_argument("percent", type=int)
    restart = sub.add_parser("restart", help="restart services gracefully, without failing a request "
                                             "(the frontend and nginx in place, a slot while nginx uses the other)")
    restart.add_argument("services", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    console = Console()
    try:
        stack: Any = open_deployment(mode, console=console)
        if args.command == "up":
            stack.up()
        elif args.command == "down":
            stack.down(**({"volumes": args.volumes} if mode == "compose" else {}))
        elif args.command == "build":
            console.print(f"images built in {stack.build():.0f}s")
        elif args.command == "status":
            return 0 if stack.status() else 1
        elif args.command == "logs":
            return stack.logs(args.follow, args.lines, args.services)
        elif args.command == "ab-weight":
            stack.set_ab_weight(args.percent)
        elif args.command == "restart":
            for service in args.services:
                started = time.monotonic()
                stack.restart(service)
                console.print(f"{service} restarted in {time.monotonic() - started:.1f} s")
        return 0
    except ValidationError as exc:
        console.print(f"[red]configuration error[/red] (check .env; see .env.example):\n{escape(str(exc))}")
        return 2
    except (StackError, StorageUnavailable) as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}")
        return 1
