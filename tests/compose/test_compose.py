"""Check docker-compose.yml offline: it validates, fails fast without secrets, and follows the rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = {"create-bucket", "bootstrap", "airflow-init"}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "init-env.py"), "--env", str(path)], check=True,
                   capture_output=True)
    return path


@pytest.fixture(scope="module")
def config(env_file) -> dict:
    """The fully interpolated configuration, as docker-compose resolves it."""
    result = subprocess.run(["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_docker_compose_is_installed():
    assert shutil.which("docker-compose"), "make test installs Debian's docker-compose"


def test_validates_against_the_compose_spec():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_secret_fails_fast_naming_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())  # every secret empty
    result = subprocess.run(["docker-compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "-q"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert re.search(r"set \w+ in \.env", result.stderr), result.stderr


def test_no_obsolete_version_key_and_no_container_names(raw):
    assert "version" not in raw
    assert all("container_name" not in svc for svc in raw["services"].values())


def test_images_are_pinned(config):
    for name, svc in config["services"].items():
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: image {image!r} has no pinned tag"


def test_long_running_services_are_health_checked(config):
    for name, svc in config["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", name
            continue
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(config):
    for name, svc in config["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, f"{name} -> {dep}: {cond}"


def test_published_ports_bind_to_localhost(config):
    for name, svc in config["services"].items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond localhost"


def test_state_in_named_volumes_config_read_only(raw):
    for name, svc in raw["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("."):
                assert vol.endswith(":ro"), f"{name}: bind mount {vol} must be read-only"
            else:
                assert source in raw["volumes"], f"{name}: {source} is not a named volume"


def test_services_run_the_same_entrypoints_as_native_mode(config):
    """Compose runs the scripts native mode runs: the MLflow entrypoint, the mlstack jobs."""
    template = (ROOT / "mlstack" / "native" / "supervisord.conf.j2").read_text()
    native = (ROOT / "mlstack" / "native" / "stack.py").read_text()
    mlflow = config["services"]["mlflow"]
    assert mlflow["command"] == ["/app/mlflow/start-server.sh"]
    assert "'mlflow' / 'start-server.sh'" in native and "[program:" in template
    assert config["services"]["create-bucket"]["command"] == ["python", "-m", "mlstack", "storage", "ensure-bucket"]
    bootstrap = " ".join(config["services"]["bootstrap"]["command"])
    assert "mlstack db upgrade" in bootstrap and "mlstack train --if-no-champion" in bootstrap
    assert '"db", "upgrade"' in native and '"train", "--if-no-champion"' in native
    dockerfile = (ROOT / "mlflow" / "Dockerfile").read_text()
    assert "COPY mlflow/start-server.sh" in dockerfile and "-c requirements/lock.txt" in dockerfile
    for slot in ("a", "b"):  # the slots run inference/backend/start.sh, as supervisord does natively
        svc = config["services"][f"backend-{slot}"]
        assert svc["environment"]["SLOT"] == slot.upper()
    backend = (ROOT / "inference" / "backend" / "Dockerfile").read_text()
    assert 'CMD ["/app/inference/backend/start.sh"]' in backend and "'inference' / 'backend' / 'start.sh'" in native
    nginx = (ROOT / "nginx" / "Dockerfile").read_text()  # nginx renders with the script native mode runs
    assert "render-config.sh" in nginx and '"nginx" / "render-config.sh"' in native
    airflow = (ROOT / "airflow" / "Dockerfile").read_text()  # every Airflow component runs airflow/start.sh
    assert "COPY --chown=airflow:0 airflow/start.sh" in airflow and '"airflow" / "start.sh"' in native
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        command = config["services"][name]["command"]
        assert command[:2] == ["bash", "/opt/mlstack/airflow/start.sh"], name
        assert command[2] in ("init", name.removeprefix("airflow-")), name
    frontend = (ROOT / "inference" / "frontend" / "Dockerfile").read_text()
    assert 'CMD ["/app/inference/frontend/start.sh"]' in frontend and "'inference' / 'frontend' / 'start.sh'" in native


def test_nginx_serves_the_frontend_and_the_frontend_calls_the_api_through_nginx(config):
    """One split for everyone: the form's predictions pass nginx's split_clients like API calls do."""
    services = config["services"]
    frontend, nginx = services["frontend"], services["nginx"]
    assert nginx["environment"]["FRONTEND"] == f"frontend:{frontend['environment']['FRONTEND_PORT']}"
    assert frontend["environment"]["API_BASE_URL"].startswith("http://nginx:8000/")
    assert nginx["depends_on"]["frontend"]["condition"] == "service_healthy"
    assert "nginx" not in frontend.get("depends_on", {})  # nginx waits for the frontend, never the reverse
    assert "ports" not in frontend  # reached through nginx only


def test_build_contexts_and_files_exist(config):
    for name, svc in config["services"].items():
        build = svc.get("build")
        if build:
            assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).is_file(), name


def test_mlflow_accepts_its_compose_host_header(config):
    hosts = config["services"]["mlflow"]["environment"]["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert {"mlflow", "mlflow:*"} <= set(hosts)


def _environments(raw: dict) -> list[tuple[str, str, str]]:
    out = []
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        out += [(name, k, str(v)) for k, v in env.items()]
    for anchor in ("x-s3-client-env", "x-backend-env"):
        out += [(anchor, k, str(v)) for k, v in raw[anchor].items()]
    out += [("x-airflow", k, str(v)) for k, v in raw["x-airflow"]["environment"].items()]
    return out


def test_secrets_only_from_env(raw):
    """Every secret is `${VAR:?...}` from .env: never a literal, never an optional default."""
    required = re.compile(r"^\$\{\w+:\?[^}]+\}$")
    for service, key, value in _environments(raw):
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key) and not key.endswith("_FILE"):  # a _FILE is a path
            assert required.match(value), f"{service}: {key}={value}"
        if "://" in value and "@" in value:  # a URL with credentials
            password = value.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            assert required.match(password), f"{service}: {key} embeds {password}"


def test_monitoring_runs_the_config_and_entrypoint_native_mode_runs(config):
    """Prometheus reads the same prometheus.yml and rules (targets differ by mode); Alertmanager starts
    through prometheus/start-alertmanager.sh; Grafana is provisioned from grafana/ with a required password."""
    services = config["services"]
    native = (ROOT / "mlstack" / "native" / "stack.py").read_text()
    def binds(svc: dict) -> dict[str, str]:  # docker-compose 1.29 writes "source:target[:mode]"
        out = {}
        for v in svc["volumes"]:
            source, target = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
            out[target] = source
        return out

    mounts = binds(services["prometheus"])
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == ROOT / "prometheus" / "prometheus.yml"
    assert Path(mounts["/etc/prometheus/rules"]) == ROOT / "prometheus" / "rules"
    assert Path(mounts["/etc/prometheus/targets"]) == ROOT / "prometheus" / "targets" / "compose"
    assert 'for name in ("prometheus.yml", "rules")' in native  # native links the same two
    assert services["alertmanager"]["entrypoint"][-1].endswith("/prometheus/start-alertmanager.sh")
    assert "'prometheus' / 'start-alertmanager.sh'" in native
    grafana = services["grafana"]
    assert grafana["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert set(binds(grafana)) >= {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"}
    for name in ("airflow-scheduler", "airflow-dag-processor"):
        assert services[name]["environment"]["PUSHGATEWAY_URL"] == "http://pushgateway:9091"
    assert "ports" not in services["pushgateway"]  # only nginx and the admin UIs are published


def test_mlflow_is_behind_its_login_and_every_client_has_it(config, env_file):
    """The server runs basic auth (same entrypoint as natively); each service that talks to it logs in."""
    services = config["services"]
    script = (ROOT / "mlflow" / "start-server.sh").read_text()
    assert "--app-name basic-auth" in script and "MLFLOW_AUTH_ADMIN_PASSWORD" in script
    password = next(line.split("=", 1)[1] for line in env_file.read_text().splitlines()
                    if line.startswith("MLFLOW_TRACKING_PASSWORD="))
    assert len(password) >= 12
    clients = [n for n, s in services.items() if "MLFLOW_TRACKING_URI" in (s.get("environment") or {})]
    assert {"bootstrap", "backend-a", "backend-b", "frontend", "airflow-scheduler"} <= set(clients)
    for name in [*clients, "mlflow"]:
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_PASSWORD"] == password and env["MLFLOW_TRACKING_USERNAME"], name
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_DATABASE_URL"].startswith("sqlite:////mlflow-auth/")


def test_without_a_webhook_slack_messages_go_to_the_slack_sink_run_as_natively(config):
    """The sink runs `python -m mlstack.slack_sink`, the command supervisord runs; Airflow and Alertmanager post to it."""
    services = config["services"]
    sink = services["slack-sink"]
    assert sink["command"] == ["python", "-m", "mlstack.slack_sink"]
    assert "-m mlstack.slack_sink" in (ROOT / "mlstack" / "native" / "stack.py").read_text()
    for name in ("airflow-scheduler", "alertmanager"):
        assert services[name]["environment"]["SLACK_WEBHOOK_URL"] == "http://slack-sink:8025/hooks/local", name


def test_a_webhook_in_env_replaces_the_sink(env_file, tmp_path):
    own = tmp_path / ".env"
    own.write_text(env_file.read_text() + "\nSLACK_WEBHOOK_URL=https://hooks.example.test/T/B/x\n")
    result = subprocess.run(["docker-compose", "--env-file", str(own), "-f", str(COMPOSE), "config"],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    services = yaml.safe_load(result.stdout)["services"]
    assert services["alertmanager"]["environment"]["SLACK_WEBHOOK_URL"] == "https://hooks.example.test/T/B/x"


def test_the_data_contract_reaches_every_service_that_reads_it(config):
    """Bring your own data: DATA_CONTRACT (and DATA_PATH where data is read) from .env, one value everywhere."""
    services = config["services"]
    for name in ("backend-a", "backend-b", "frontend", "bootstrap", "airflow-scheduler", "locust"):
        assert services[name]["environment"]["DATA_CONTRACT"] == "california_housing", name
    for name in ("bootstrap", "airflow-scheduler", "locust"):
        assert services[name]["environment"]["DATA_PATH"].endswith("/data/housing.csv"), name
