"""Parity: each native program and its Compose service run the same thing.

For every program native mode runs under supervisord, the Compose service of the same name must
run the same entrypoint (script or binary, with the same flags), pass the same environment keys,
read the same config files from the repository and be health-checked on the same endpoint. A
difference fails here unless it is declared below with its reason.
"""

from __future__ import annotations

import shlex
import urllib.parse
from pathlib import Path
from unittest import mock

import pytest

from mlstack.native import stack as native_stack
from mlstack.settings import BackendSettings, FrontendSettings, LifecycleSettings, SlackSinkSettings

ROOT = Path(__file__).resolve().parents[2]

# Keys only one side passes, each with its reason. Native slots, the frontend and Airflow read .env
# themselves (MLSTACK_ENV_FILE); in Compose, where no .env is mounted, the values arrive one by one:
# those are checked against the settings class the service loads instead (SETTINGS below).
NATIVE_ONLY = {
    "*": {"PATH": "the image sets it", "HOME": "the image's user has one", "LANG": "the image sets C.UTF-8",
          "PYTHONUNBUFFERED": "the image sets it", "MLSTACK_ENV_FILE": "Compose mounts no .env (the image sets '')",
          "MLSTACK_ENV_DIGEST": "restarts programs when .env changes; Compose recreates containers itself",
          "MLSTACK_VAR_DIR": "the image sets /var/lib/mlstack"},
    "s3": {"WEED_BIN": "weed is on the image's PATH", "S3_CONFIG_DIR": "defaults to the data volume",
           "S3_ENDPOINT_URL": "clients' setting; Compose passes it to the clients",
           "S3_BUCKET": "clients' setting", "S3_REGION": "clients' setting",
           "SEAWEEDFS_MASTER_PORT": "internal to the container: the defaults",
           "SEAWEEDFS_VOLUME_PORT": "internal to the container: the defaults",
           "SEAWEEDFS_FILER_PORT": "internal to the container: the defaults (published on the host as set)"},
    "backend-a": {"NUMBA_CACHE_DIR": "the image sets /tmp/numba"},
    "backend-b": {"NUMBA_CACHE_DIR": "the image sets /tmp/numba"},
    "nginx": {"NGINX_RUNTIME_DIR": "the image sets it",
              "NGINX_USER": "natively run by root, workers run as root to reach its runtime dir; the image's dirs are world-readable"},
    "mlflow": {"S3_REGION": "start-server.sh defaults it (us-east-1)", "MLFLOW_AUTH_CONFIG_PATH": "set in Compose too"},
    "airflow-*": {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "one component per container: the default port",
                  "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "one component per container: the default port"},
}
COMPOSE_ONLY = {
    "*": {"MLFLOW_TRACKING_USERNAME": "natively read from .env by the settings",
          "MLFLOW_TRACKING_PASSWORD": "natively read from .env by the settings",
          "AUDIT_SIGNING_KEY": "natively read from .env by the settings"},
    "s3": {"S3_DATA_DIR": "set natively too", "S3_BIND": "set natively too"},
    "nginx": {},
    "airflow-*": {"AIRFLOW_HOME": "natively too", "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK":
                  "the scheduler container's health check reads it; natively the api-server's report is read"},
    "mlflow": {},
}
# The settings class each Python service loads (its fields may come from .env natively, from the
# environment in Compose).
SETTINGS = {"backend-a": BackendSettings, "backend-b": BackendSettings, "frontend": FrontendSettings,
            "slack-sink": SlackSinkSettings, "airflow-*": LifecycleSettings}
# Entrypoints that differ, with the reason.
ENTRYPOINTS = {
    # natively supervisord runs nginx after mlstack.native rendered the config with render-config.sh;
    # the Compose image renders it with the same script in nginx/start.sh, then runs nginx
    "nginx": ("/usr/sbin/nginx", "nginx/start.sh"),
}
# Health: natively the S3 check lists the buckets with the access key; the container answers anonymous
# requests 403 (as the blackbox probe's s3_up expects); natively the dag-processor's and triggerer's
# health is read from the api-server's report, in Compose from the same report.
HEALTH = {"s3": ("S3 list_buckets", "/"),
          # the scheduler's container checks the scheduler's own health server (port 8974)
          "airflow-scheduler": ("/api/v2/monitor/health", "/health")}


def _wild(table: dict, service: str) -> dict:
    out = dict(table.get("*", {}))
    out.update(table.get(service, {}))
    if service.startswith("airflow-"):
        out.update(table.get("airflow-*", {}))
    return out


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict:
    from mlstack.settings import StackSettings

    var = tmp_path_factory.mktemp("parity")
    settings = StackSettings(_env_file=None, MLSTACK_VAR_DIR=var, S3_ACCESS_KEY_ID="k" * 16,
                             S3_SECRET_ACCESS_KEY="s" * 32, MLFLOW_TRACKING_PASSWORD="p" * 16,
                             MLFLOW_FLASK_SERVER_SECRET_KEY="f" * 32, AIRFLOW_ADMIN_PASSWORD="a" * 16,
                             AIRFLOW_JWT_SECRET="j" * 64, AIRFLOW_API_SECRET_KEY="x" * 32,
                             APP_DATABASE_URL="postgresql+psycopg2://app:pw@127.0.0.1:5432/app",
                             MLFLOW_DATABASE_URL="postgresql+psycopg2://mlflow:pw@127.0.0.1:5432/mlflow")
    stack = native_stack.Stack(settings)
    return {"_stack": stack, **{p.name: p for p in stack.programs()}}


def program_stack(programs: dict) -> native_stack.Stack:
    return programs["_stack"]


def _programs(programs: dict) -> dict:
    return {k: v for k, v in programs.items() if k != "_stack"}


def _script(words: list[str]) -> str:
    """The entrypoint a command runs: the script (relative to the repository) or the binary or module."""
    for i, word in enumerate(words):
        if word == "-m":
            return words[i + 1]
        if word.endswith((".sh", ".py")):
            return _repo_path(word)
    return words[0] if words[0].startswith("/") else words[0]


def _repo_path(path: str) -> str:
    """A script's path in the repository: native names it under the checkout, the images under /opt/mlstack
    (their working directory) or /etc/mlstack (a config folder mounted from the repository)."""
    if Path(path).is_relative_to(ROOT):
        return str(Path(path).relative_to(ROOT))
    for prefix in ("/opt/mlstack/", "/etc/mlstack/"):
        if path.startswith(prefix):
            return path.removeprefix(prefix)
    return path


def _args_after(words: list[str], entry: str) -> list[str]:
    i = next(i for i, w in enumerate(words) if w == entry or _repo_path(w) == entry)
    return words[i + 1:]


def _flags(words: list[str]) -> set[str]:
    return {w.split("=", 1)[0] for w in words if w.startswith("-") and w not in ("-m", "-c")}


def _native_health_path(program) -> str:
    """Call the program's health check with the network replaced by a recorder: the URL path it asks for."""
    seen: list[str] = []

    def record(url, *args, **kwargs):
        seen.append(url if isinstance(url, str) else url.full_url)
        raise OSError("recorded")

    with mock.patch.object(native_stack, "_http_ok", record), mock.patch("urllib.request.urlopen", record):
        try:
            program.health()
        except Exception:  # noqa: BLE001 - every check fails against the recorder
            pass
    if not seen:
        return "S3 list_buckets"
    return urllib.parse.urlsplit(seen[0]).path


def _compose_health_path(service: dict) -> str:
    test = service["healthcheck"]["test"]
    url = next(w for w in " ".join(test).split() if "://" in w)
    return urllib.parse.urlsplit(url.strip("'\"")).path or "/"


def test_every_native_program_is_a_compose_service(programs, config):
    assert set(_programs(programs)) <= set(config["services"]), set(_programs(programs)) - set(config["services"])


def test_entrypoints_and_flags_match(programs, config):
    for name, program in _programs(programs).items():
        native_words = shlex.split(program.command)
        compose_words = config["services"][name]["command"]
        native_entry, compose_entry = _script(native_words), _script(compose_words)
        if name in ENTRYPOINTS:
            assert (native_entry, compose_entry) == ENTRYPOINTS[name], name
            continue
        assert native_entry == compose_entry, f"{name}: native runs {native_entry}, Compose {compose_entry}"
        if native_entry.startswith("/usr/bin/"):  # Debian's binaries: the same flags, values per mode
            assert _flags(native_words) == _flags(compose_words), name
        else:  # scripts and modules: the same arguments
            assert _args_after(native_words, native_entry) == _args_after(compose_words, compose_entry), name


def test_environment_keys_match_or_are_declared(programs, config):
    for name, program in _programs(programs).items():
        native = set(program.environment)
        if name == "nginx":  # natively the config is rendered before nginx starts, with this environment
            native |= set(program_stack(programs).nginx_env(10))
        compose = set(config["services"][name].get("environment") or {})
        settings = SETTINGS.get(name) or (SETTINGS["airflow-*"] if name.startswith("airflow-") else None)
        fields = set(settings.model_fields) if settings else set()
        native_only = native - compose - set(_wild(NATIVE_ONLY, name))
        compose_only = compose - native - fields - set(_wild(COMPOSE_ONLY, name))
        assert not native_only, f"{name}: only native mode passes {sorted(native_only)}"
        assert not compose_only, f"{name}: only Compose passes {sorted(compose_only)}"


def test_the_same_config_files_from_the_repository(programs, config):
    """What a program reads from the repository (prometheus/, nginx/, airflow/dags) Compose mounts or bakes in."""
    for name in ("prometheus", "alertmanager", "blackbox-exporter"):
        native = programs[name].command + " " + " ".join(programs[name].environment.values())
        mounts = {Path(v["source"]).relative_to(ROOT) for v in config["services"][name].get("volumes", [])
                  if v["type"] == "bind"}
        for path in mounts:
            top = Path(*path.parts[:2])  # prometheus/rules, prometheus/prometheus.yml, prometheus/blackbox.yml
            linked = name == "prometheus" and path.name in ("prometheus.yml", "rules", "compose")
            assert linked or str(ROOT / top) in native or str(ROOT / path.parts[0]) in native, (name, path)
    airflow = programs["airflow-scheduler"].environment["AIRFLOW__CORE__DAGS_FOLDER"]
    assert Path(airflow).relative_to(ROOT) == Path("airflow/dags")
    assert config["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == \
        "/opt/mlstack/airflow/dags"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY airflow/dags airflow/dags" in dockerfile and "WORKDIR /opt/mlstack" in dockerfile


def test_health_endpoints_match(programs, config):
    for name, program in _programs(programs).items():
        native, compose = _native_health_path(program), _compose_health_path(config["services"][name])
        if name in HEALTH:
            assert (native, compose) == HEALTH[name], name
            continue
        assert native == compose, f"{name}: native checks {native}, Compose {compose}"
        if name in ("airflow-dag-processor", "airflow-triggerer"):
            field = name.removeprefix("airflow-").replace("-", "_")
            assert f'"{field}":{{"status":"healthy"' in " ".join(config["services"][name]["healthcheck"]["test"]), name
