"""Check docker-compose.yml offline: it validates, fails fast without secrets, and follows the rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.compose.conftest import COMPOSE, ROOT, compose_config

ONE_SHOT = {"create-bucket", "bootstrap", "airflow-init"}
# The one image Compose takes from outside: Grafana is not packaged by Debian.
OUTSIDE_IMAGES = {"grafana/grafana"}
PYTHON_SERVICES = {"mlflow", "create-bucket", "bootstrap", "backend-a", "backend-b", "frontend", "slack-sink", "locust",
                   "airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                   "airflow-triggerer"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_validates_against_the_compose_spec():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_secret_fails_fast_naming_it(tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())  # every secret empty
    result = compose_config(env, "-q")
    assert result.returncode != 0
    assert re.search(r"set \w+ in \.env", result.stderr), result.stderr


def test_no_obsolete_version_key_and_no_container_names(raw):
    assert "version" not in raw
    assert all("container_name" not in svc for svc in raw["services"].values())


def test_every_image_is_built_here_but_grafana(config):
    """Built from this repository on debian:bookworm-slim; Grafana's official image the only one from outside."""
    images = {name: svc["image"] for name, svc in config["services"].items()}
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        assert tag and tag != "latest", f"{name}: image {image!r} has no pinned tag"
        if repo in OUTSIDE_IMAGES:
            assert "build" not in config["services"][name] and config["services"][name].get("profiles"), name
            continue
        assert repo.startswith("mlstack/") and "build" in config["services"][name], f"{name}: {image} is not built here"
    for dockerfile in {Path(svc["build"]["context"]) / svc["build"].get("dockerfile", "Dockerfile")
                       for svc in config["services"].values() if "build" in svc}:
        text = dockerfile.read_text()
        assert "ARG BASE_IMAGE=debian:bookworm-slim" in text, dockerfile
        assert all(line.split()[1] in ("${BASE_IMAGE}",) for line in text.splitlines() if line.startswith("FROM ")), \
            dockerfile


def test_no_minio_anywhere():
    """MinIO's community images stopped (source-only since 2025-10) with a privilege escalation unfixed: SeaweedFS."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = [f for f in tracked if f.endswith((".yml", ".yaml", ".py", ".sh", ".md", ".example", "Dockerfile", ".dot"))
            and "minio" in (ROOT / f).read_text(errors="replace").lower() and f != "tests/compose/test_compose.py"]
    assert not hits, hits


def test_one_python_image_serves_every_python_service(config):
    images = {config["services"][name]["image"] for name in PYTHON_SERVICES}
    assert images == {"mlstack/python:local"}, images
    for name in PYTHON_SERVICES:
        assert config["services"][name]["build"].get("target") == "python", name


def test_the_python_image_installs_the_lock_the_native_venv_installs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "--constraint requirements/lock.txt" in dockerfile and "requirements/lock.txt" in install
    uv = re.search(r'UV_VERSION="([\d.]+)"', install).group(1)
    assert f"ARG UV_VERSION={uv}" in dockerfile  # the same installer, the same version


def test_infrastructure_images_install_the_debian_packages_native_mode_runs():
    """PostgreSQL 15, nginx 1.22, Prometheus 2.42, Alertmanager 0.25, ...: Debian's, as natively."""
    install = (ROOT / "scripts" / "install.sh").read_text()
    runtime = set(re.search(r"apt_runtime=\(([^)]*)\)", install).group(1).split())
    images = {"nginx/Dockerfile": {"nginx", "gettext-base"},
              "prometheus/Dockerfile": {p for p in runtime if p.startswith("prometheus")}}
    for path, packages in images.items():
        text = (ROOT / path).read_text()
        assert packages <= runtime, path
        for package in packages:
            assert re.search(rf"\b{re.escape(package)}\b", text), f"{path} does not install {package}"
    postgres = (ROOT / "postgres" / "Dockerfile").read_text()
    assert "postgresql-15" in postgres  # the major version of Debian 12's server, which native mode's tests use


def test_long_running_services_are_health_checked_cheaply(config):
    """One HTTP request (or pg_isready) per check, never a Python CLI that imports Airflow: on 2 busy cores
    `airflow jobs check` took 8-16 s, beyond its timeout, and the engine did not kill the checks."""
    for name, svc in config["services"].items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", name
            continue
        check = svc.get("healthcheck")
        assert check and check["test"], f"{name} has no healthcheck"
        test = check["test"]
        words = test[1].split() if test[0] == "CMD-SHELL" else test[1:]
        assert words[0] in ("wget", "pg_isready"), (name, test)  # a few milliseconds, nothing imported
        if words[0] == "wget":  # its own timeout (default 900 s) below the check's: a check never outlives it
            assert words[words.index("-T") + 1] == "3", (name, test)
        assert not any(w in ("airflow", "python", "jobs") for w in words), (name, test)
        seconds = {k: _seconds(check[k]) for k in ("interval", "timeout", "start_period")}
        assert seconds["timeout"] >= 5 and seconds["interval"] >= 5, (name, seconds)
        assert seconds["start_period"] >= 120, (name, seconds)  # a first start on a busy 2-core machine


def _seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(h|ms|m|s)", value):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def test_dependencies_wait_for_health_or_completion(config):
    for name, svc in config["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, f"{name} -> {dep}: {cond}"


def test_airflow_schedules_after_the_first_model(config):
    """The minute DAGs would otherwise tick before bootstrap registered a champion."""
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert config["services"][name]["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"


def test_published_ports_bind_to_localhost(config):
    for name, svc in config["services"].items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond localhost"


def test_published_ports_are_the_native_port_settings(raw):
    """Every URL on the host is the same in both modes: each published port is the setting native mode uses."""
    from mlstack.settings import StackSettings

    for name, svc in raw["services"].items():
        for port in svc.get("ports", []):
            setting = re.match(r"127\.0\.0\.1:\$\{(\w+):-\d+\}:\d+$", port)
            assert setting, f"{name}: {port}"
            assert setting.group(1) in StackSettings.model_fields or setting.group(1) == "LOCUST_PORT", (name, port)


def test_state_in_named_volumes_config_read_only(raw):
    for name, svc in raw["services"].items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("."):
                assert vol.endswith(":ro"), f"{name}: bind mount {vol} must be read-only"
            else:
                assert source in raw["volumes"], f"{name}: {source} is not a named volume"


def test_named_volumes_mount_where_the_image_made_a_directory_its_user_owns():
    """A new named volume copies the ownership of the directory it mounts on: mounted anywhere else it is
    root's, and a service running as its own user cannot write it (Pushgateway's store, MLflow's users)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    made = {"mlstack/python": "install -d -o mlstack -g mlstack /var/lib/mlstack/state",
            "mlstack/monitoring": "install -d -o prometheus -g prometheus",
            "mlstack/postgres": "install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data",
            "mlstack/s3": "install -d -o seaweedfs -g seaweedfs /var/lib/seaweedfs/data",
            "grafana/grafana": ""}
    sources = {"mlstack/python": "Dockerfile", "mlstack/s3": "Dockerfile", "mlstack/monitoring": "prometheus/Dockerfile",
               "mlstack/postgres": "postgres/Dockerfile"}
    for name, svc in raw["services"].items():
        image = svc.get("image") or raw[next(k for k in raw if k.startswith("x-") and isinstance(raw[k], dict)
                                               and raw[k].get("image"))]["image"]
        for vol in svc.get("volumes", []):
            source, target = vol.split(":")[:2]
            if source.startswith(".") or name == "grafana":
                continue
            repo = image.split(":")[0]
            text = (ROOT / sources[repo]).read_text()
            assert made[repo] in text, (name, repo)
            assert target.startswith(made[repo].split()[-1].rsplit("/", 1)[0]) or target in text, (name, target)


def test_nginx_serves_the_frontend_and_the_frontend_calls_the_api_through_nginx(config):
    """One split for everyone: the form's predictions pass nginx's split_clients like API calls do."""
    services = config["services"]
    frontend, nginx = services["frontend"], services["nginx"]
    assert nginx["environment"]["FRONTEND"] == f"frontend:{frontend['environment']['FRONTEND_PORT']}"
    assert frontend["environment"]["API_BASE_URL"].startswith("http://nginx:8000/")
    assert nginx["depends_on"]["frontend"]["condition"] == "service_healthy"
    assert "nginx" not in frontend.get("depends_on", {})  # nginx waits for the frontend, never the reverse


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
    for anchor in ("x-s3-client-env", "x-backend-env", "x-mlstack-env"):
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


def test_no_ca_certificate_reaches_an_image():
    """The build machine's extra CAs are trusted by the build stage only, and never committed."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)
    build = next(s for s in stages if " AS build" in s.splitlines()[0])
    assert "docker/ca-certificates/" in build
    for stage in stages[1:]:
        if stage is not build:
            assert "ca-certificates/" not in stage and "--from=build /usr/local/share" not in stage
    assert "docker/ca-certificates/*.crt" in (ROOT / ".gitignore").read_text()


def test_monitoring_runs_the_config_native_mode_runs(config):
    """Prometheus reads the same prometheus.yml and rules (targets differ by mode); Grafana is provisioned."""
    services = config["services"]

    def binds(svc: dict) -> dict[str, str]:
        return {v["target"]: v["source"] for v in svc.get("volumes", []) if v["type"] == "bind"}

    mounts = binds(services["prometheus"])
    assert Path(mounts["/etc/mlstack/prometheus/prometheus.yml"]) == ROOT / "prometheus" / "prometheus.yml"
    assert Path(mounts["/etc/mlstack/prometheus/rules"]) == ROOT / "prometheus" / "rules"
    assert Path(mounts["/etc/mlstack/prometheus/targets"]) == ROOT / "prometheus" / "targets" / "compose"
    grafana = services["grafana"]
    assert grafana["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert set(binds(grafana)) >= {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"}
    for name in ("airflow-scheduler", "airflow-dag-processor", "bootstrap"):
        assert services[name]["environment"]["PUSHGATEWAY_URL"] == "http://pushgateway:9091"


def test_compose_prometheus_targets_name_compose_services(config):
    """Each scrape or probe target of prometheus/targets/compose is a service of the Compose file."""
    services = set(config["services"])
    for path in (ROOT / "prometheus" / "targets" / "compose").glob("*.yml"):
        text = path.read_text()
        for host in re.findall(r"https?://([\w-]+):\d+|\"([\w-]+):\d+\"", text):
            name = next(h for h in host if h)
            assert name in services or name == "localhost", (path.name, name)


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
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_DATABASE_URL"].endswith("@postgres:5432/mlflow_auth")


def test_without_a_webhook_slack_messages_go_to_the_slack_sink(config):
    services = config["services"]
    for name in ("airflow-scheduler", "alertmanager"):
        assert services[name]["environment"]["SLACK_WEBHOOK_URL"] == "http://slack-sink:8025/hooks/local", name


def test_a_webhook_in_env_replaces_the_sink(env_file, tmp_path):
    import json

    own = tmp_path / ".env"
    own.write_text(env_file.read_text() + "\nSLACK_WEBHOOK_URL=https://hooks.example.test/T/B/x\n")
    result = compose_config(own, "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["alertmanager"]["environment"]["SLACK_WEBHOOK_URL"] == "https://hooks.example.test/T/B/x"


def test_the_data_contract_reaches_every_service_that_reads_it(config):
    """Bring your own data: DATA_CONTRACT (and DATA_PATH where data is read) from .env, one value everywhere."""
    services = config["services"]
    for name in ("backend-a", "backend-b", "frontend", "bootstrap", "airflow-scheduler", "locust"):
        assert services[name]["environment"]["DATA_CONTRACT"] == "california_housing", name
    for name in ("bootstrap", "airflow-scheduler", "locust"):
        assert services[name]["environment"]["DATA_PATH"].endswith("/data/housing.csv"), name


def test_the_engine_lets_a_slot_finish_its_requests_before_killing_it(config):
    """A restarted slot gets SIGTERM, finishes what it is answering for up to gunicorn's graceful_timeout,
    and only then may the engine kill it (its default, 10 s, is shorter: requests under way were cut)."""
    conf = (ROOT / "inference" / "backend" / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)", conf, re.M).group(1))
    for name in ("backend-a", "backend-b"):
        grace = config["services"][name].get("stop_grace_period", "10s")
        seconds = int(re.fullmatch(r"(\d+)s", grace).group(1))
        assert seconds > graceful, f"{name}: stop_grace_period {grace} <= gunicorn graceful_timeout {graceful} s"


def test_every_container_log_rotates(config):
    """The engine's json-file driver keeps a container's output forever unless told a size and a count."""
    for name, service in config["services"].items():
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert logging["options"].get("max-size") and int(logging["options"].get("max-file", 0)) >= 1, name


def test_nginx_logs_to_the_engine_not_to_a_file():
    """nginx writes its logs to stdout/stderr, which supervisord and the engine rotate; a file would grow."""
    template = (ROOT / "nginx" / "nginx.conf.template").read_text()
    logs = re.findall(r"^\s*(access_log|error_log)\s+(\S+)", template, re.M)
    assert logs and all(target in ("stderr", "/dev/stdout", "off;") for _, target in logs), logs
