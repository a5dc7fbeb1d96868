"""Run the stack natively: supervisord runs the same entrypoints the Compose services run.

`up` renders the supervisord config from settings, starts (or updates) supervisord, waits for
each service to be healthy, runs the one-shot jobs Compose runs (bucket, migrations, first
training) and prints the service table. Every step is idempotent: `up` twice is harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from rich.console import Console
from rich.table import Table

from mlstack.deployment import Deployment, StackError, fault_json, set_env_value
from mlstack.settings import BackendSettings, StackSettings, env_file, load, process_env

__all__ = ["Program", "Stack", "StackError"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEMPLATE = Path(__file__).with_name("supervisord.conf.j2")
NGINX = "/usr/sbin/nginx"


@dataclass
class Program:
    """One long-running service under supervisord, and how to tell it is healthy."""

    name: str
    title: str
    url: str
    purpose: str
    command: str
    environment: dict[str, str]
    health: Callable[[], None]
    startsecs: int = 2
    # SeaweedFS takes ~27 s to exit on SIGTERM; its writes are already in the page cache.
    stopwaitsecs: int = 15
    directory: Path = ROOT
    autostart: bool = True  # False: `up` starts it once what it needs is ready (Airflow after its migration)

    def env_line(self) -> str:
        def quote(value: str) -> str:
            return '"' + value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"') + '"'

        return ",".join(f"{k}={quote(v)}" for k, v in self.environment.items())


@dataclass
class Stack(Deployment):
    """The native stack described by one StackSettings."""

    mode: ClassVar[str] = "native"
    settings: StackSettings
    console: Console = field(default_factory=Console)
    env_path: Path | None = None  # the dotenv file `set_ab_weight` updates (default: settings.env_file())

    @property
    def var(self) -> Path:
        return self.settings.MLSTACK_VAR_DIR

    @property
    def conf(self) -> Path:
        return self.var / "supervisord.conf"

    def path(self, *parts: str) -> Path:
        return self.var.joinpath(*parts)

    # -- programs -------------------------------------------------------------------------------

    def programs(self) -> list[Program]:
        s = self.settings
        base = self._base_env()
        s3_env = {"S3_ENDPOINT_URL": s.S3_ENDPOINT_URL, "S3_BUCKET": s.S3_BUCKET, "S3_REGION": s.S3_REGION,
                  "S3_ACCESS_KEY_ID": s.S3_ACCESS_KEY_ID.get_secret_value(),
                  "S3_SECRET_ACCESS_KEY": s.S3_SECRET_ACCESS_KEY.get_secret_value()}
        return [
            Program("s3", "S3 (SeaweedFS)", s.S3_ENDPOINT_URL, f"artifact store, bucket s3://{s.S3_BUCKET}",
                    f"sh {ROOT / 's3' / 'start.sh'}",
                    {**base, **s3_env, "WEED_BIN": str(BIN / "weed"), "S3_BIND": s.BIND_ADDRESS, "S3_PORT": str(s.S3_PORT),
                     "S3_DATA_DIR": str(self.path("s3")), "S3_CONFIG_DIR": str(self.path("seaweedfs")),
                     "SEAWEEDFS_MASTER_PORT": str(s.SEAWEEDFS_MASTER_PORT),
                     "SEAWEEDFS_VOLUME_PORT": str(s.SEAWEEDFS_VOLUME_PORT),
                     "SEAWEEDFS_FILER_PORT": str(s.SEAWEEDFS_FILER_PORT)},
                    self._s3_health, startsecs=2, stopwaitsecs=5),
            *(self._slot(slot, port) for slot, port in (("A", s.BACKEND_A_PORT), ("B", s.BACKEND_B_PORT))),
            self._frontend(),
            Program("nginx", "Web (nginx)", self._web_url(),
                    f"the web form and /api, split A/B ({s.AB_WEIGHT_B}% to B), sticky per user",
                    " ".join([NGINX, *self._nginx_args(self.path("nginx", "conf")), "-g", "'daemon off;'"]),
                    {"PATH": "/usr/sbin:/usr/bin:/bin"},
                    lambda: _http_ok(f"{self._web_url()}/api/split"), startsecs=1),
            Program("mlflow", "MLflow", s.tracking_uri, "experiment tracking and model registry",
                    f"bash {ROOT / 'mlflow' / 'start-server.sh'}",
                    {**base, **s3_env, "MLFLOW_DATABASE_URL": s.MLFLOW_DATABASE_URL, "MLFLOW_HOST": s.BIND_ADDRESS,
                     "MLFLOW_PORT": str(s.MLFLOW_PORT), "MLFLOW_WORKERS": str(s.MLFLOW_WORKERS),
                     "MLFLOW_ALLOWED_HOSTS": s.MLFLOW_ALLOWED_HOSTS,
                     "MLFLOW_TRACKING_USERNAME": s.MLFLOW_TRACKING_USERNAME,
                     "MLFLOW_TRACKING_PASSWORD": s.MLFLOW_TRACKING_PASSWORD.get_secret_value(),  # type: ignore[union-attr]
                     "MLFLOW_AUTH_DATABASE_URL": s.MLFLOW_AUTH_DATABASE_URL,
                     "MLFLOW_FLASK_SERVER_SECRET_KEY": s.MLFLOW_FLASK_SERVER_SECRET_KEY.get_secret_value(),  # type: ignore[union-attr]
                     "MLFLOW_AUTH_CONFIG_PATH": str(self.path("run", "mlflow-basic-auth.ini"))},
                    self._mlflow_health, startsecs=3),
            *(self._airflow() if s.AIRFLOW_ENABLED else []),
            *(self._monitoring() if s.MONITORING_ENABLED else []),
            *([self._slack_sink()] if s.slack_sink_enabled else []),
        ]

    def _slack_sink(self) -> Program:
        """Slack's stand-in when no webhook is set: the messages on a page (Compose runs the same command)."""
        s = self.settings
        url = f"http://127.0.0.1:{s.SLACK_SINK_PORT}"
        return Program("slack-sink", "Slack sink", url + "/",
                       "Slack messages and alerts (no SLACK_WEBHOOK_URL set), shown on a page",
                       f"{sys.executable} -m mlstack.slack_sink",
                       {**self._base_env(), "MLSTACK_ENV_FILE": "", "SLACK_SINK_BIND": "127.0.0.1",
                        "SLACK_SINK_PORT": str(s.SLACK_SINK_PORT), "SLACK_SINK_DIR": str(self.path("slack-sink"))},
                       lambda: _http_ok(f"{url}/health"), startsecs=1)

    def _base_env(self) -> dict[str, str]:
        """Return the environment every program starts from (the venv first on PATH)."""
        return {"PATH": f"{BIN}:{process_env().get('PATH', '/usr/bin:/bin')}", "HOME": str(self.path("home")),
                "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}

    def _service_env(self) -> dict[str, str]:
        """What every mlstack process starts from: the venv, .env, the var dir, MLflow and the app database.

        These processes read .env themselves; its digest is part of their environment so that `make up`
        after editing .env (e.g. DATA_CONTRACT, MODEL_NAME) restarts them, as supervisord restarts a
        program whose configuration changed.
        """
        s = self.settings
        return {**self._base_env(), "MLSTACK_ENV_FILE": env_file() or "", "MLSTACK_ENV_DIGEST": self._env_digest(),
                "MLSTACK_VAR_DIR": str(self.var), "MLFLOW_TRACKING_URI": s.tracking_uri,
                "APP_DATABASE_URL": s.APP_DATABASE_URL}

    def _env_digest(self) -> str:
        """sha256 of .env without AB_WEIGHT_B (nginx applies the split itself, without restarting anything)."""
        path = Path(env_file() or ".env")
        lines = path.read_text().splitlines() if path.exists() else []
        kept = "\n".join(line for line in lines if not line.startswith("AB_WEIGHT_B="))
        return hashlib.sha256(kept.encode()).hexdigest()[:16]

    def _web_url(self) -> str:
        return f"http://{self.settings.BIND_ADDRESS}:{self.settings.WEB_PORT}"

    def _slot_urls(self) -> dict[str, str]:
        """Where each slot answers (its /ready, /model-info), for the frontend and the rollout tasks."""
        s = self.settings
        return {"SLOT_A_URL": f"http://{s.BIND_ADDRESS}:{s.BACKEND_A_PORT}",
                "SLOT_B_URL": f"http://{s.BIND_ADDRESS}:{s.BACKEND_B_PORT}"}

    def _slot(self, slot: str, port: int) -> Program:
        """An inference slot: it reads .env itself; only per-slot values are passed here."""
        s = self.settings
        env = {**self._service_env(), "SLOT": slot, "BACKEND_BIND": s.BIND_ADDRESS, "BACKEND_PORT": str(port),
               "PROMETHEUS_MULTIPROC_DIR": str(self.path("prometheus", f"slot-{slot.lower()}")),
               "NUMBA_CACHE_DIR": str(self.path("numba-cache")),
               # off until the file exists: tests and the demo write it (mlstack.serving.faults)
               "FAULT_FILE": str(self.fault_file(slot))}
        url = f"http://{s.BIND_ADDRESS}:{port}"
        return Program(f"backend-{slot.lower()}", f"Slot {slot}", url,
                       f"inference slot {slot} ({'champion' if slot == 'A' else 'challenger, else champion'})",
                       f"bash {ROOT / 'inference' / 'backend' / 'start.sh'}", env,
                       # longer than gunicorn's graceful_timeout (20 s): requests under way finish first
                       lambda: _http_ok(f"{url}/ready"), startsecs=2, stopwaitsecs=25)

    def airflow_env(self) -> dict[str, str]:
        """Airflow's configuration (AIRFLOW__*), plus what its tasks need to reach the stack."""
        s = self.settings
        url = f"http://{s.BIND_ADDRESS}:{s.AIRFLOW_PORT}"
        secret = lambda v: v.get_secret_value() if v else ""  # noqa: E731
        return {
            **self._service_env(),
            # where the rollout tasks find nginx (the live split), the slots (/ready), and the links they send
            "WEB_URL": self._web_url(), **self._slot_urls(),
            "AIRFLOW_PUBLIC_URL": url, "MLFLOW_PUBLIC_URL": s.tracking_uri,
            "PUSHGATEWAY_URL": s.pushgateway_url,
            "AIRFLOW_HOME": str(self.path("airflow")),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow" / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(s.AIRFLOW_PARALLELISM),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(s.AIRFLOW_DAGS_PAUSED),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.AIRFLOW_ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.path("airflow", "passwords.json")),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": s.AIRFLOW_DATABASE_URL,
            "AIRFLOW__API__HOST": s.BIND_ADDRESS, "AIRFLOW__API__PORT": str(s.AIRFLOW_PORT),
            "AIRFLOW__API__BASE_URL": url, "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secret(s.AIRFLOW_API_SECRET_KEY),
            "AIRFLOW__API_AUTH__JWT_SECRET": secret(s.AIRFLOW_JWT_SECRET),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.AIRFLOW_WORKER_LOG_PORT),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.AIRFLOW_TRIGGER_LOG_PORT),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW_ADMIN_USER": s.AIRFLOW_ADMIN_USER, "AIRFLOW_ADMIN_PASSWORD": secret(s.AIRFLOW_ADMIN_PASSWORD),
            "SLACK_WEBHOOK_URL": s.slack_webhook_url,  # the local sink when .env sets none
        }

    def _airflow(self) -> list[Program]:
        """Airflow's four components, each run by airflow/start.sh (the Compose services run it too)."""
        s = self.settings
        url = f"http://{s.BIND_ADDRESS}:{s.AIRFLOW_PORT}"
        env = self.airflow_env()
        start = ROOT / "airflow" / "start.sh"
        purposes = {"api-server": "Airflow UI and REST API (DAGs: train_model, evaluate_ab, guard_champion)",
                    "scheduler": "schedules DAG runs, runs tasks (LocalExecutor)",
                    "dag-processor": "parses airflow/dags", "triggerer": "deferred tasks"}
        return [Program(f"airflow-{c}", f"Airflow {c}", url if c == "api-server" else "", purposes[c],
                        f"bash {start} {c}", env, lambda c=c: self._airflow_health(c), startsecs=3, stopwaitsecs=20,
                        autostart=False)
                for c in purposes]

    def _airflow_health(self, component: str, since: datetime | None = None) -> None:
        """The api-server's /api/v2/monitor/health reports every component's heartbeat (one after `since`)."""
        url = f"http://{self.settings.BIND_ADDRESS}:{self.settings.AIRFLOW_PORT}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=3) as resp:
            report = json.loads(resp.read())
        if component == "api-server":
            return
        key = component.replace("-", "_")
        status = (report.get(key) or {}).get("status")
        if status != "healthy":
            raise StackError(f"Airflow {component} is {status or 'not reporting'}")
        beat = (report.get(key) or {}).get(f"latest_{key}_heartbeat")
        if since and (not beat or datetime.fromisoformat(beat) < since):  # a killed one's beat stays fresh a while
            raise StackError(f"Airflow {component} has not beaten since {since:%H:%M:%S}")

    # -- monitoring -------------------------------------------------------------------------------

    def _monitoring(self) -> list[Program]:
        """Prometheus, Alertmanager, the Pushgateway and the exporters (Debian's binaries)."""
        s = self.settings
        local = "127.0.0.1"
        path = {"PATH": "/usr/bin:/bin"}
        prom = f"http://{local}:{s.PROMETHEUS_PORT}"
        am = f"http://{local}:{s.ALERTMANAGER_PORT}"
        pgw = f"http://{local}:{s.PUSHGATEWAY_PORT}"
        conf = self.path("prometheus", "conf")
        programs = [
            Program("pushgateway", "Pushgateway", pgw, "results the DAGs push (judge, training, drift, DAG success)",
                    f"/usr/bin/prometheus-pushgateway --web.listen-address={local}:{s.PUSHGATEWAY_PORT} "
                    f"--persistence.file={self.path('prometheus', 'pushgateway.store')} --persistence.interval=30s",
                    path, lambda: _http_ok(f"{pgw}/-/ready"), startsecs=1),
            Program("prometheus", "Prometheus", prom, "metrics of every service, recording and alert rules",
                    f"/usr/bin/prometheus --config.file={conf / 'prometheus.yml'} "
                    f"--storage.tsdb.path={self.path('prometheus', 'data')} "
                    f"--storage.tsdb.retention.time={s.PROMETHEUS_RETENTION} "
                    f"--web.listen-address={local}:{s.PROMETHEUS_PORT} --web.external-url={prom} --web.enable-lifecycle",
                    path, lambda: _http_ok(f"{prom}/-/ready"), startsecs=2),
            Program("alertmanager", "Alertmanager", am, "routes alerts to Slack, one message per incident",
                    f"sh {ROOT / 'prometheus' / 'start-alertmanager.sh'}",
                    {**path, "ALERTMANAGER_BIN": "/usr/bin/prometheus-alertmanager",
                     "ALERTMANAGER_CONFIG_SOURCE": str(ROOT / "prometheus"),
                     "ALERTMANAGER_RUN_DIR": str(self.path("alertmanager")),
                     "ALERTMANAGER_LISTEN": f"{local}:{s.ALERTMANAGER_PORT}", "ALERTMANAGER_EXTERNAL_URL": am,
                     "SLACK_WEBHOOK_URL": s.slack_webhook_url},
                    lambda: _http_ok(f"{am}/-/ready"), startsecs=1),
            Program("nginx-exporter", "nginx exporter", f"http://{local}:{s.NGINX_EXPORTER_PORT}",
                    "nginx's stub_status as Prometheus metrics",
                    f"/usr/bin/prometheus-nginx-exporter -web.listen-address={local}:{s.NGINX_EXPORTER_PORT} "
                    f"-nginx.scrape-uri=http://127.0.0.1:{s.NGINX_STATUS_PORT}/stub_status",
                    path, lambda: _http_ok(f"http://{local}:{s.NGINX_EXPORTER_PORT}/metrics"), startsecs=1),
            Program("blackbox-exporter", "Blackbox exporter", f"http://{local}:{s.BLACKBOX_EXPORTER_PORT}",
                    "probes the health of MLflow, Airflow, S3 and the frontend",
                    f"/usr/bin/prometheus-blackbox-exporter --config.file={ROOT / 'prometheus' / 'blackbox.yml'} "
                    f"--web.listen-address={local}:{s.BLACKBOX_EXPORTER_PORT}",
                    path, lambda: _http_ok(f"http://{local}:{s.BLACKBOX_EXPORTER_PORT}/-/healthy"), startsecs=1),
        ]
        if s.uses_postgres:
            url = s.APP_DATABASE_URL if s.APP_DATABASE_URL.startswith("postgresql") else s.MLFLOW_DATABASE_URL
            programs.append(Program(
                "postgres-exporter", "PostgreSQL exporter", f"http://{local}:{s.POSTGRES_EXPORTER_PORT}",
                "PostgreSQL health and activity",
                f"/usr/bin/prometheus-postgres-exporter --web.listen-address={local}:{s.POSTGRES_EXPORTER_PORT}",
                {**path, "DATA_SOURCE_NAME": postgres_dsn(url)},
                lambda: _http_ok(f"http://{local}:{s.POSTGRES_EXPORTER_PORT}/metrics"), startsecs=1))
        return programs

    def render_prometheus(self) -> None:
        """Lay out Prometheus's config as Compose mounts it: the repo's prometheus.yml and rules, and targets/."""
        s = self.settings
        conf = self.path("prometheus", "conf")
        (conf / "targets").mkdir(parents=True, exist_ok=True)
        for name in ("prometheus.yml", "rules"):
            link = conf / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(ROOT / "prometheus" / name)
        local = "127.0.0.1"
        blackbox = f"{local}:{s.BLACKBOX_EXPORTER_PORT}"
        probes = [("mlflow", f"{s.tracking_uri}/health", "http_2xx"),
                  ("frontend", f"http://{s.BIND_ADDRESS}:{s.FRONTEND_PORT}/health", "http_2xx"),
                  ("s3", s.S3_ENDPOINT_URL, "s3_up")]
        if s.AIRFLOW_ENABLED:
            probes.append(("airflow", f"http://{s.BIND_ADDRESS}:{s.AIRFLOW_PORT}/api/v2/monitor/health",
                           "airflow_health"))
        targets = {
            "prometheus": [{"targets": [f"{local}:{s.PROMETHEUS_PORT}"]}],
            "alertmanager": [{"targets": [f"{local}:{s.ALERTMANAGER_PORT}"]}],
            "pushgateway": [{"targets": [f"{local}:{s.PUSHGATEWAY_PORT}"]}],
            "nginx": [{"targets": [f"{local}:{s.NGINX_EXPORTER_PORT}"]}],
            "postgres": [{"targets": [f"{local}:{s.POSTGRES_EXPORTER_PORT}"]}] if s.uses_postgres else [],
            "slots": [{"targets": [f"{s.BIND_ADDRESS}:{port}"], "labels": {"slot": slot}}
                      for slot, port in (("A", s.BACKEND_A_PORT), ("B", s.BACKEND_B_PORT))],
            "health": [{"targets": [blackbox], "labels": {"service": name, "url": url, "__param_target": url,
                                                          "__param_module": module}}
                       for name, url, module in probes],
        }
        for name, groups in targets.items():
            (conf / "targets" / f"{name}.yml").write_text(
                f"# written by mlstack.native ({name}); Compose's are in prometheus/targets/compose/\n"
                + json.dumps(groups, indent=2) + "\n")

    def fault_file(self, slot: str) -> Path:
        """The file that puts a slot into a fault mode (see mlstack.serving.faults)."""
        return self.path("faults", f"slot-{slot.lower()}.json")

    def set_fault(self, slot: str, **fault: float) -> None:
        path, text = self.fault_file(slot), fault_json(**fault)
        if text is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # whole or not at all: the workers may read it at any moment

    def _ctl_or_raise(self, *args: str) -> None:
        """supervisorctl ARGS, raising with its words when it reports an ERROR (its exit code does not say)."""
        result = self.ctl(*args, check=False)
        if "ERROR" in result.stdout + result.stderr:
            raise StackError(f"supervisorctl {' '.join(args)}: {(result.stdout + result.stderr).strip()}")

    def _restart(self, service: str) -> None:
        self._ctl_or_raise("restart", service)

    def _signal(self, service: str, name: str) -> None:
        self._ctl_or_raise("signal", name, service)

    def main_pid(self, service: str) -> int:
        pid = self.ctl("pid", service, check=False).stdout.strip()
        if not pid.isdigit() or pid == "0":
            raise StackError(f"{service} is not running: {pid}")
        return int(pid)

    def kill(self, service: str) -> int:
        pid = self.main_pid(service)
        group = os.getpgid(pid)  # supervisord starts each program in a process group of its own
        if group in (os.getpgid(0), os.getpgid(self.supervisord_pid() or 0)):
            raise StackError(f"{service} shares a process group with supervisord or this process")
        os.killpg(group, signal.SIGKILL)
        return pid

    def healthy(self, service: str, since: datetime | None = None) -> bool:
        program = next(p for p in self.programs() if p.name == service)
        component = service.removeprefix("airflow-")
        try:
            if since and component in ("scheduler", "dag-processor", "triggerer"):
                self._airflow_health(component, since)
            else:
                program.health()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return False

    def airflow_file(self, path: Path) -> str:
        return str(Path(path).absolute())  # the tasks run on this machine

    def client_env(self) -> dict[str, str]:
        return {"MLSTACK_ENV_FILE": str(self.env_path or env_file() or ""), "MLSTACK_VAR_DIR": str(self.var),
                "MLFLOW_TRACKING_URI": self.settings.tracking_uri, "APP_DATABASE_URL": self.settings.APP_DATABASE_URL,
                "PUSHGATEWAY_URL": self.settings.pushgateway_url}

    def _frontend(self) -> Program:
        """The web frontend: it reads .env itself; addresses of the API and the slots are passed here."""
        s = self.settings
        env = {**self._service_env(), **self._slot_urls(), "FRONTEND_BIND": s.BIND_ADDRESS,
               "FRONTEND_PORT": str(s.FRONTEND_PORT), "API_BASE_URL": f"{self._web_url()}/api",
               # the status page reads the registry while a person waits: fail fast, never retry
               "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        url = f"http://{s.BIND_ADDRESS}:{s.FRONTEND_PORT}"
        return Program("frontend", "Web frontend", url, "the form, results, feedback and status pages (behind nginx)",
                       f"bash {ROOT / 'inference' / 'frontend' / 'start.sh'}", env,
                       lambda: _http_ok(f"{url}/health"), startsecs=2)

    def _s3_health(self) -> None:
        from mlstack.storage import client

        client(self.settings).list_buckets()

    def _mlflow_health(self) -> None:
        from mlstack.registry.connection import check_health

        check_health(self.settings.tracking_uri, timeout=3)

    # -- supervisord ----------------------------------------------------------------------------

    def render(self) -> None:
        """Write the supervisord config (0600: it holds secrets); s3/start.sh writes the S3 identities."""
        for sub in ("run", "log", "db", "s3", "seaweedfs", "home", "nginx/conf", "nginx/run"):
            self.path(sub).mkdir(parents=True, exist_ok=True)
        template = jinja2.Template(TEMPLATE.read_text(), undefined=jinja2.StrictUndefined)
        text = template.render(var=self.var, root=ROOT, instance=hashlib.sha256(str(self.var).encode()).hexdigest()[:8],
                               programs=[{"name": p.name, "command": p.command, "directory": p.directory,
                                          "environment": p.env_line(), "startsecs": p.startsecs,
                                          "stopwaitsecs": p.stopwaitsecs, "autostart": p.autostart}
                                         for p in self.programs()])
        _write_private(self.conf, text)
        self.render_nginx(self.path("nginx", "conf"), self.settings.AB_WEIGHT_B)
        if self.settings.MONITORING_ENABLED:
            self.render_prometheus()

    def nginx_env(self, weight: int, runtime_dir: Path | None = None) -> dict[str, str]:
        s = self.settings
        env = {name: str(getattr(s, name)) for name in ("NGINX_RATE_LIMIT", "NGINX_RATE_BURST", "NGINX_FEEDBACK_RATE_LIMIT",
                                                         "NGINX_FEEDBACK_RATE_BURST", "NGINX_MAX_BODY", "NGINX_WORKERS")}
        return {"PATH": process_env().get("PATH", "/usr/bin:/bin"), **env, "AB_WEIGHT_B": str(weight),
                "NGINX_LISTEN": f"{s.BIND_ADDRESS}:{s.WEB_PORT}",
                "NGINX_STATUS_LISTEN": f"127.0.0.1:{s.NGINX_STATUS_PORT}",
                "BACKEND_A": f"{s.BIND_ADDRESS}:{s.BACKEND_A_PORT}",
                "BACKEND_B": f"{s.BIND_ADDRESS}:{s.BACKEND_B_PORT}",
                "FRONTEND": f"{s.BIND_ADDRESS}:{s.FRONTEND_PORT}",
                "NGINX_RUNTIME_DIR": str(runtime_dir or self.path("nginx", "run")),
                "NGINX_USER": "root" if os.geteuid() == 0 else ""}

    def render_nginx(self, out: Path, weight: int, runtime_dir: Path | None = None) -> None:
        """Render nginx.conf into `out` with nginx/render-config.sh (the script Compose runs too)."""
        result = subprocess.run(["sh", str(ROOT / "nginx" / "render-config.sh"), str(out)],
                                env=self.nginx_env(weight, runtime_dir), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"nginx config not rendered: {result.stderr.strip()}")

    def _nginx_args(self, conf_dir: Path) -> list[str]:
        """Return nginx's prefix, error log and config arguments (start, -t and -s reload must agree)."""
        return ["-p", str(self.path("nginx")), "-e", "stderr",
                "-c", str(conf_dir / "nginx.conf")]

    def nginx_test(self, conf_dir: Path) -> None:
        result = subprocess.run([NGINX, "-t", "-q", *self._nginx_args(conf_dir)], capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"nginx refused the config: {result.stderr.strip()}")

    def set_ab_weight(self, weight: int) -> None:
        """Re-render nginx with B's share, validate it, reload gracefully, remember it in the env file."""
        if not 0 <= weight <= 100:
            raise StackError(f"AB_WEIGHT_B must be a whole number from 0 to 100, got {weight}")
        staging = self.path("nginx", "conf.staging")
        # `nginx -t` truncates the pid file its config names: test with a pid file of its own.
        self.render_nginx(staging, weight, runtime_dir=staging / "run")
        self.nginx_test(staging)  # the live config is untouched until the new one passes
        shutil.rmtree(staging, ignore_errors=True)
        self.render_nginx(self.path("nginx", "conf"), weight)
        if self.supervisord_pid():
            result = subprocess.run([NGINX, *self._nginx_args(self.path("nginx", "conf")), "-s", "reload"],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError(f"nginx reload failed: {result.stderr.strip()}")
            self._wait_for_split(weight)
        set_env_value(self.env_path or Path(env_file() or ".env"), "AB_WEIGHT_B", str(weight))
        self.settings.AB_WEIGHT_B = weight
        self.console.print(f"B share set to {weight}% (nginx reloaded; AB_WEIGHT_B={weight} saved)")

    def ports(self) -> dict[str, int]:
        """Return every port this stack listens on, by the setting that chooses it."""
        return self.settings.listening_ports()

    def check_ports_free(self) -> None:
        """Refuse to start when another process holds a port we need (health checks would lie)."""
        import socket

        taken = []
        for name, port in self.ports().items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.settings.BIND_ADDRESS, port))
                except OSError:
                    taken.append(f"{port} ({name})")
        if taken:
            raise StackError("ports already in use by another process: " + ", ".join(taken)
                             + ". Stop that process or choose other ports in .env.")

    def supervisord_pid(self) -> int | None:
        """Return supervisord's pid if it is running for this var dir."""
        pidfile = self.path("run", "supervisord.pid")
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "supervisorctl"), "-c", str(self.conf), *args], capture_output=True,
                              text=True, check=check, timeout=60)

    def start_supervisor(self) -> None:
        if self.supervisord_pid():
            # Reload the config; only programs whose config changed are restarted.
            self.ctl("reread")
            self.ctl("update")
            self.ctl("start", "all", check=False)
            return
        env = {k: v for k, v in process_env().items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
        subprocess.run([str(BIN / "supervisord"), "-c", str(self.conf)], check=True, env=env, cwd=ROOT, timeout=30)
        deadline = time.monotonic() + 15
        while not self.path("run", "supervisor.sock").exists():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not start; see {self.path('log', 'supervisord.log')}")
            time.sleep(0.1)

    # -- health ---------------------------------------------------------------------------------

    def wait_healthy(self, program: Program, timeout: float) -> float:
        """Poll a program's health check until it passes; return the seconds it took."""
        started = time.monotonic()
        last: Exception | None = None
        with self.console.status(f"waiting for {program.title} at {program.url} ..."):
            while time.monotonic() - started < timeout:
                try:
                    program.health()
                    return time.monotonic() - started
                except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                    last = exc
                    state = self.ctl("status", program.name, check=False).stdout.split()
                    if len(state) > 1 and state[1] == "FATAL":  # supervisord gave up restarting it
                        break
                    time.sleep(0.5)
        log = self.path("log", f"{program.name}.log")
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no log yet)"
        raise StackError(f"{program.title} not healthy at {program.url} after {timeout:.0f}s: {last}\n"
                         f"last lines of {log}:\n{tail}")

    def health(self) -> dict[str, str]:
        """Return each program's health: 'healthy' or the error."""
        out = {}
        for program in self.programs():
            try:
                program.health()
                out[program.name] = "healthy"
            except Exception as exc:  # noqa: BLE001
                out[program.name] = f"unhealthy: {type(exc).__name__}: {exc}"[:120]
        return out

    # -- commands -------------------------------------------------------------------------------

    def up(self) -> None:
        """Start everything, run the one-shot jobs, and print the service table."""
        from mlstack.db.engine import ensure_database, redact
        from mlstack.storage import ensure_bucket

        s = self.settings
        started = time.monotonic()
        load(BackendSettings)  # fail fast on a bad slot configuration (e.g. a missing secret)
        databases = [("MLflow backend", s.MLFLOW_DATABASE_URL), ("app", s.APP_DATABASE_URL)]
        if s.AIRFLOW_ENABLED:
            databases.append(("Airflow metadata", s.AIRFLOW_DATABASE_URL))
        for label, url in databases:
            try:
                if ensure_database(url):
                    self.console.print(f"created {label} database {redact(url)}")
            except Exception as exc:
                raise StackError(f"{label} database {redact(url)} is unreachable: {exc}") from exc
        if not self.supervisord_pid():
            self.check_ports_free()
        self.render()
        self.start_supervisor()
        programs = {p.name: p for p in self.programs()}
        took = self.wait_healthy(programs["s3"], s.STARTUP_TIMEOUT_SECONDS)
        self.console.print(f"[green]✓[/green] S3 healthy ({took:.1f}s)")
        created = ensure_bucket(s)
        self.console.print(f"[green]✓[/green] bucket s3://{s.S3_BUCKET} {'created' if created else 'present'}")
        took = self.wait_healthy(programs["mlflow"], s.STARTUP_TIMEOUT_SECONDS)
        self.console.print(f"[green]✓[/green] MLflow healthy ({took:.1f}s)")
        self.run_job("app database migrations", "db", "upgrade")
        if s.TRAIN_ON_EMPTY_REGISTRY:
            self.run_job("first model (skipped when a champion exists)", "train", "--if-no-champion",
                         "--actor", "bootstrap")
        for name in ("backend-a", "backend-b", "frontend", "nginx"):
            took = self.wait_healthy(programs[name], s.STARTUP_TIMEOUT_SECONDS)
            self.console.print(f"[green]✓[/green] {programs[name].title} ready ({took:.1f}s)")
        self.console.print(f"[green]✓[/green] serving predictions {time.monotonic() - started:.1f}s after start")
        # Airflow after the first model: its train_model DAG would otherwise train the same data at the
        # same moment as the bootstrap job (on 2 cores, both 10x slower); now it finds the model registered.
        if s.AIRFLOW_ENABLED:  # migrate Airflow's metadata, then start its components (they need the schema)
            self.console.print("[bold]→ Airflow metadata migrations[/bold]")
            result = subprocess.run(["bash", str(ROOT / "airflow" / "start.sh"), "init"], env=self.airflow_env(),
                                    cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError(f"airflow db migrate failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
            self.ctl("start", *(p.name for p in self.programs() if p.name.startswith("airflow-")), check=False)
        waited = {"s3", "mlflow", "backend-a", "backend-b", "frontend", "nginx"}
        for program in (p for name, p in programs.items() if name not in waited):  # Airflow, then monitoring
            took = self.wait_healthy(program, s.STARTUP_TIMEOUT_SECONDS)
            self.console.print(f"[green]✓[/green] {program.title} healthy ({took:.1f}s)")
        self.print_table(time.monotonic() - started)
        web = self._web_url()
        self.console.print(f"[bold green]Open the web form: {web}/[/bold green]   status page: {web}/status   "
                           f"API: {web}/api/predict", soft_wrap=True)
        if s.slack_sink_enabled:
            self.console.print(f"Slack messages (no SLACK_WEBHOOK_URL set, so a local sink shows them): "
                               f"http://127.0.0.1:{s.SLACK_SINK_PORT}/", soft_wrap=True)
        if s.MONITORING_ENABLED:
            self.console.print(f"Prometheus: http://127.0.0.1:{s.PROMETHEUS_PORT}   Alertmanager: "
                               f"http://127.0.0.1:{s.ALERTMANAGER_PORT}   (Grafana runs in Compose; its dashboards'"
                               " queries are checked against this Prometheus by make test)", soft_wrap=True)

    def run_job(self, title: str, *args: str) -> None:
        """Run a one-shot `python -m mlstack ...` job (as Compose's init jobs do) and stream its output."""
        self.console.print(f"[bold]→ {title}[/bold]")
        env = {**process_env(), "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
               "APP_DATABASE_URL": self.settings.APP_DATABASE_URL, "PUSHGATEWAY_URL": self.settings.pushgateway_url,
               "MLSTACK_VAR_DIR": str(self.var)}
        result = subprocess.run([sys.executable, "-m", "mlstack", *args], env=env, cwd=ROOT)
        if result.returncode != 0:
            raise StackError(f"{title} failed (exit {result.returncode})")

    def print_table(self, seconds: float | None = None) -> None:
        from mlstack.db.engine import redact

        health = self.health()
        table = Table(title="mlstack (native)" + (f" — up in {seconds:.0f}s" if seconds is not None else ""))
        for col in ("service", "URL", "state", "what it is for"):
            table.add_column(col, overflow="fold")
        for p in self.programs():
            state = health[p.name]
            table.add_row(p.title, p.url, f"[green]{state}[/green]" if state == "healthy" else f"[red]{state}[/red]",
                          p.purpose)
        table.add_row("MLflow store", redact(self.settings.MLFLOW_DATABASE_URL), "", "runs, models, aliases")
        table.add_row("App database", redact(self.settings.APP_DATABASE_URL), "", "model_events audit trail")
        self.console.print(table)
        self.console.print(f"logs: {self.path('log')}   (make logs)   stop: make down")

    def status(self) -> bool:
        """Print supervisord's view and the health table; return True if all are healthy."""
        if not self.supervisord_pid():
            self.console.print("mlstack (native) is not running — start it with `make up`")
            return False
        self.console.print(self.ctl("status", check=False).stdout.rstrip())
        self.print_table()
        return all(v == "healthy" for v in self.health().values())

    def down(self, timeout: float = 60) -> None:
        """Stop every service and supervisord itself."""
        pid = self.supervisord_pid()
        if not pid:
            self.console.print("mlstack (native) is not running")
            return
        self.ctl("shutdown", check=False)
        deadline = time.monotonic() + timeout
        while self.supervisord_pid():
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        self.console.print("mlstack (native) stopped")

    def logs(self, follow: bool, lines: int, services: list[str]) -> int:
        files = [self.path("log", f"{name}.log") for name in (services or [p.name for p in self.programs()])]
        existing = [str(f) for f in files if f.exists()]
        if not existing:
            self.console.print("no logs yet — start the stack with `make up`")
            return 1
        return subprocess.call(["tail", "-n", str(lines), *(["-F"] if follow else []), *existing])


def _http_ok(url: str, timeout: float = 3.0) -> None:
    """Raise unless GET url answers 2xx."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise OSError(f"{url} answered {resp.status}")


def postgres_dsn(url: str) -> str:
    """A libpq URL for the exporter from a SQLAlchemy one (postgresql+psycopg2://... → postgresql://...)."""
    from mlstack.db.engine import libpq_url

    dsn = libpq_url(url)
    return dsn + ("&" if "?" in dsn else "?") + "sslmode=disable"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
