"""Run the stack under Docker Compose, behind the same interface as native mode (mlstack.deployment).

`up` makes sure an engine answers and the Debian base image exists (scripts/docker-engine.sh),
builds the images (the layer cache makes a second build quick), starts every service and waits
for their health checks, then prints the service table. Grafana, the one image from outside, is
left out with a message when it cannot be had. Every step is idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.console import Console
from rich.table import Table

from mlstack.deployment import Deployment, StackError, fault_json, set_env_value
from mlstack.settings import StackSettings, env_file, process_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
GRAFANA = "grafana"
ONE_SHOT = ("create-bucket", "bootstrap", "airflow-init")
# The services whose health the stack's own health reports (what native mode calls its programs).
SLOTS = {"A": "backend-a", "B": "backend-b"}


def compose_cli() -> list[str]:
    """`docker compose` (v2) where the engine has it, else Debian's `docker-compose` (v1)."""
    try:
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackError("no Docker Compose: install Docker Engine >= 24 with the compose plugin, or Docker Desktop")


@dataclass
class ComposeStack(Deployment):
    """The Compose stack described by one StackSettings (and the .env it came from)."""

    mode: ClassVar[str] = "compose"
    settings: StackSettings
    console: Console = field(default_factory=Console)
    env_path: Path | None = None  # the dotenv file Compose interpolates (default: settings' .env)

    @property
    def env_file(self) -> Path:
        return Path(self.env_path or env_file() or ".env").absolute()

    def env_values(self) -> dict[str, str]:
        from mlstack.doctor import parse_dotenv

        return parse_dotenv(self.env_file)

    def compose(self, *args: str, check: bool = True, capture: bool = True, timeout: float = 1800,
                input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `docker compose ARGS` on this project (its file, its .env)."""
        cmd = [*compose_cli(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
               "--env-file", str(self.env_file), *args]
        result = subprocess.run(cmd, cwd=ROOT, capture_output=capture, text=True, timeout=timeout, input=input,
                                env={**process_env(), **(env or {})})
        if check and result.returncode != 0:
            out = ((result.stdout or "") + (result.stderr or "")).strip()
            raise StackError(f"docker compose {' '.join(args)} failed (exit {result.returncode}):\n{out[-3000:]}")
        return result

    def engine(self, command: str) -> None:
        """scripts/docker-engine.sh COMMAND: start the daemon, make the base image, copy extra CAs."""
        result = subprocess.run(["bash", str(ROOT / "scripts" / "docker-engine.sh"), command], cwd=ROOT,
                                capture_output=True, text=True, timeout=900)
        for line in (result.stdout + result.stderr).splitlines():
            self.console.print(line, highlight=False, soft_wrap=True)
        if result.returncode != 0:
            raise StackError(f"scripts/docker-engine.sh {command} failed")

    # -- profiles: Grafana is the one image from outside ---------------------------------------------

    def profiles(self) -> list[str]:
        values = {**self.env_values(), **{k: v for k, v in process_env().items() if k == "COMPOSE_PROFILES"}}
        return [p for p in values.get("COMPOSE_PROFILES", "").split(",") if p.strip()]

    def _profile_env(self) -> dict[str, str]:
        """COMPOSE_PROFILES without grafana when its image cannot be had here (everything else still starts)."""
        profiles = self.profiles()
        if GRAFANA not in profiles:
            return {}
        image = self.grafana_image()
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0:
            return {}
        try:
            pulled = subprocess.run(["docker", "pull", "-q", image], capture_output=True, timeout=300).returncode == 0
        except subprocess.TimeoutExpired:
            pulled = False
        if pulled:
            return {}
        self.console.print(f"[yellow]Grafana's image {image} could not be pulled (no registry reachable?): starting "
                           "everything else without it.[/yellow] Its dashboards' queries work in Prometheus as they "
                           "are; `docker pull` it later and run this again to add Grafana.", soft_wrap=True)
        rest = [p for p in profiles if p != GRAFANA]
        return {"COMPOSE_PROFILES": ",".join(rest) if rest else "core"}  # a profile no service has: none enabled

    def grafana_image(self) -> str:
        import yaml

        return yaml.safe_load(COMPOSE_FILE.read_text())["services"][GRAFANA]["image"]

    # -- commands ---------------------------------------------------------------------------------

    def build(self) -> float:
        """Build every image of the stack (from the layer cache when nothing changed); return the seconds."""
        started = time.monotonic()
        self.engine("ca-certificates")
        self.engine("base")
        self.console.print("[bold]→ building the images[/bold] (first time: several minutes; then the layer cache)")
        self.compose("build", *self.image_builders(), capture=False, env=self._build_env())
        return time.monotonic() - started

    def image_builders(self) -> list[str]:
        """One service per image built here (several services run the Python and the monitoring image)."""
        config = json.loads(self.compose("config", "--format", "json").stdout)
        first: dict[str, str] = {}
        for name, service in config["services"].items():
            if service.get("build"):
                first.setdefault(service.get("image", name), name)
        return sorted(first.values())

    def _build_env(self) -> dict[str, str]:
        # Debian's engine has no buildx: the classic builder builds the Dockerfiles as they are, one image at
        # a time (in parallel, two targets of one Dockerfile would each build the shared stage).
        if shutil.which("docker-buildx") or _has_buildx():
            return {}
        return {"DOCKER_BUILDKIT": "0", "COMPOSE_PARALLEL_LIMIT": "1"}

    def up(self) -> None:
        started = time.monotonic()
        self.engine("start")
        took = self.build()
        self.console.print(f"[green]✓[/green] images ready ({took:.0f}s)")
        env = self._profile_env()
        self.console.print("[bold]→ starting the services[/bold] (each waits for the health of what it needs)")
        self.compose("up", "--detach", "--wait", "--wait-timeout", str(int(self.settings.STARTUP_TIMEOUT_SECONDS * 5)),
                     capture=False, env=env)
        bad = {k: v for k, v in self.health().items() if v not in ("healthy", "completed")}
        if bad:
            raise StackError("not healthy: " + ", ".join(f"{k} ({v})" for k, v in bad.items())
                             + " — see `docker compose logs SERVICE`")
        self.print_table(time.monotonic() - started)

    def down(self, volumes: bool = False) -> None:
        """Stop and remove the containers (the named volumes stay unless `volumes`)."""
        self.compose("down", "--remove-orphans", *(["--volumes"] if volumes else []), capture=False, timeout=600)

    def ps(self) -> list[dict]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def health(self) -> dict[str, str]:
        out = {}
        for c in self.ps():
            service, state, health = c.get("Service"), c.get("State", ""), c.get("Health", "")
            if service in ONE_SHOT:
                out[service] = "completed" if state == "exited" and c.get("ExitCode") == 0 else f"{state} (exit {c.get('ExitCode')})"
            elif state == "running" and health in ("healthy", ""):
                out[service] = "healthy" if health else "running"
            else:
                out[service] = f"{state}, {health}" if health else state
        return out

    def wait_healthy(self, service: str, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.health().get(service) == "healthy":
                return time.monotonic() - started
            time.sleep(1)
        raise StackError(f"{service} not healthy after {timeout:.0f}s: {self.health().get(service)}")

    def set_ab_weight(self, weight: int) -> None:
        if not 0 <= weight <= 100:
            raise StackError(f"AB_WEIGHT_B must be a whole number from 0 to 100, got {weight}")
        self.compose("exec", "-T", "nginx", "sh", "nginx/start.sh", "reload", str(weight))
        self._wait_for_split(weight)
        set_env_value(self.env_file, "AB_WEIGHT_B", str(weight))  # a recreated nginx starts with it
        self.settings.AB_WEIGHT_B = weight
        self.console.print(f"B share set to {weight}% (nginx reloaded; AB_WEIGHT_B={weight} saved)")

    def set_fault(self, slot: str, **fault: float) -> None:
        text, path = fault_json(**fault), "/var/lib/mlstack/state/fault.json"
        script = f"rm -f {path}" if text is None else f"cat > {path}.tmp && mv {path}.tmp {path}"
        self.compose("exec", "-T", SLOTS[slot], "sh", "-c", script, input=text or "")

    def _restart(self, service: str) -> None:
        self.compose("restart", service)
        self.wait_healthy(service, self.settings.STARTUP_TIMEOUT_SECONDS)

    def _signal(self, service: str, name: str) -> None:
        # From inside the container, never `docker kill`: the engine counts any signal it sends as a manual
        # stop, and a container it thinks was stopped by hand is not restarted when it later crashes.
        self.compose("exec", "-T", service, "sh", "-c", f"kill -{name} 1")

    def main_pid(self, service: str) -> int:
        """The container's first process, as this machine's kernel numbers it (the engine runs here)."""
        container = self.compose("ps", "-q", service).stdout.split()
        if not container:
            raise StackError(f"{service}: no container")
        inspect = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container[0]], capture_output=True,
                                 text=True, check=True, timeout=30)
        return int(inspect.stdout.strip())

    def kill(self, service: str) -> int:
        pid = self.main_pid(service)
        os.kill(pid, signal.SIGKILL)  # the container's first process: the kernel ends the rest with it
        return pid

    def healthy(self, service: str, since: datetime | None = None) -> bool:
        return self.health().get(service) == "healthy"  # a new container's health starts over

    def client_env(self) -> dict[str, str]:
        s = self.settings
        pg = "postgresql+psycopg2://{user}:{pw}@127.0.0.1:" + str(s.POSTGRES_PORT) + "/{db}"
        secret = lambda v: v.get_secret_value() if v else ""  # noqa: E731
        return {"MLSTACK_ENV_FILE": str(self.env_file),
                "MLFLOW_TRACKING_URI": s.tracking_uri,
                "APP_DATABASE_URL": pg.format(user="app", pw=secret(s.APP_DB_PASSWORD), db="app"),
                "MLFLOW_DATABASE_URL": pg.format(user="mlflow", pw=secret(s.MLFLOW_DB_PASSWORD), db="mlflow"),
                "MLFLOW_AUTH_DATABASE_URL": pg.format(user="mlflow", pw=secret(s.MLFLOW_DB_PASSWORD), db="mlflow_auth"),
                "AIRFLOW_DATABASE_URL": pg.format(user="airflow", pw=secret(s.AIRFLOW_DB_PASSWORD), db="airflow"),
                "S3_ENDPOINT_URL": f"http://127.0.0.1:{s.S3_PORT}",
                "PUSHGATEWAY_URL": s.pushgateway_url,
                "WEB_URL": self._web_url(), **self._slot_urls()}

    def airflow_file(self, path: Path) -> str:
        """Copy it into the scheduler's state volume (LocalExecutor: the tasks run in that container)."""
        target = f"/var/lib/mlstack/state/files/{Path(path).name}"
        self.compose("exec", "-T", "airflow-scheduler", "mkdir", "-p", "/var/lib/mlstack/state/files")
        self.compose("cp", str(Path(path).absolute()), f"airflow-scheduler:{target}")
        return target

    def status(self) -> bool:
        if not self.ps():
            self.console.print("mlstack (Compose) is not running — start it with `make compose-up`")
            return False
        self.print_table()
        return all(v in ("healthy", "completed") for v in self.health().values())

    def logs(self, follow: bool, lines: int, services: list[str]) -> int:
        return self.compose("logs", "--tail", str(lines), *(["--follow"] if follow else []), *services,
                            check=False, capture=False, timeout=10**7).returncode

    def print_table(self, seconds: float | None = None) -> None:
        s = self.settings
        urls = {"nginx": self._web_url() + "/", "mlflow": s.tracking_uri, "airflow-api-server": f"http://127.0.0.1:{s.AIRFLOW_PORT}",
                "backend-a": self._slot_urls()["SLOT_A_URL"], "backend-b": self._slot_urls()["SLOT_B_URL"],
                "frontend": f"http://127.0.0.1:{s.FRONTEND_PORT}", "prometheus": f"http://127.0.0.1:{s.PROMETHEUS_PORT}",
                "alertmanager": f"http://127.0.0.1:{s.ALERTMANAGER_PORT}", "slack-sink": self.slack_sink_url or "",
                "s3": f"http://127.0.0.1:{s.S3_PORT} (browse: http://127.0.0.1:{s.SEAWEEDFS_FILER_PORT}/buckets/)",
                "grafana": f"http://127.0.0.1:{s.GRAFANA_PORT}", "postgres": f"127.0.0.1:{s.POSTGRES_PORT}"}
        table = Table(title="mlstack (Compose)" + (f" — up in {seconds:.0f}s" if seconds is not None else ""))
        for col in ("service", "URL on this machine", "state"):
            table.add_column(col, overflow="fold")
        for service, state in sorted(self.health().items()):
            ok = state in ("healthy", "completed")
            table.add_row(service, urls.get(service, ""), f"[green]{state}[/green]" if ok else f"[red]{state}[/red]")
        self.console.print(table)
        self.console.print(f"[bold green]Open the web form: {self._web_url()}/[/bold green]   status page: "
                           f"{self._web_url()}/status   logs: docker compose logs -f SERVICE   stop: make compose-down",
                           soft_wrap=True)


def _has_buildx() -> bool:
    try:
        return subprocess.run(["docker", "buildx", "version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
