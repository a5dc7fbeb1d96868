"""Start a private native stack for the integration tests, exactly as `make up` does.

The stack gets its own var dir, free ports, a generated .env and two fresh databases on the
PostgreSQL server at TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432), and is
torn down (databases dropped) at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parents[2]



def pytest_collection_modifyitems(items):  # noqa: D103
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class StackUnderTest:
    env: dict[str, str]
    var: Path
    tracking_uri: str
    app_db_url: str
    mlflow_db_url: str

    def run(self, *args: str, module: str = "mlstack", extra_env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `python -m <module> ...` with the stack's environment (what `make` targets run)."""
        return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                              env={**self.env, **(extra_env or {})}, timeout=timeout)

    def script(self, path: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a repository script (e.g. scripts/rollback.py) with the stack's environment."""
        return subprocess.run([sys.executable, str(ROOT / path), *args], cwd=ROOT, capture_output=True, text=True,
                              env=self.env, timeout=timeout)

    def settings(self, cls, **overrides):
        """Build settings of `cls` from the stack's environment, in this process."""
        import mlstack.settings as s

        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            return s.load(cls, **overrides)
        finally:
            os.environ.clear()
            os.environ.update(old)


class SlackSink:
    """A local stand-in for Slack's incoming webhook: records every JSON post (the one fake: Slack is outside)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.posts: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/test"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, source: str | None = None) -> list[dict]:
        """Return the posts so far and forget them all; `source` keeps only the stack's own Block Kit
        messages ("mlstack") or Alertmanager's ("alertmanager": attachments), which share the webhook."""
        posts, self.posts = self.posts, []
        if source == "mlstack":
            return [p for p in posts if "blocks" in p]
        if source == "alertmanager":
            return [p for p in posts if "attachments" in p]
        return posts


@pytest.fixture(scope="session")
def slack_sink() -> Iterator[SlackSink]:
    sink = SlackSink()
    yield sink
    sink.server.shutdown()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, pg_database, slack_sink) -> Iterator[StackUnderTest]:
    """A running native stack (S3 + MLflow on PostgreSQL) with a first champion trained."""
    var = tmp_path_factory.mktemp("stack")
    env_file = var / "test.env"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "init-env.py"), "--env", str(env_file)], check=True,
                   capture_output=True)
    login = {k: v for k, v in (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
                                and not line.startswith("#")) if k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(login)  # MLflow clients in this process (the tests' own MlflowClient) log in too
    with env_file.open("a") as fh:  # the slots read these from the file: counts every second for the judge
        fh.write(f"\nSTATS_PERIOD_SECONDS=1\nMODEL_POLL_SECONDS=2\nSLACK_WEBHOOK_URL={slack_sink.url}\n")
        # what Airflow's train_model runs in the tests (drift retraining): no search, and a family that
        # beats the weak linear first champion for sure (linear against linear was a coin flip on RMSE)
        fh.write("TRAIN_FAMILIES=linear,hist_gradient_boosting\nSEARCH_ITERATIONS=0\n")
    (mlflow_port, s3_port, master, volume, filer, web, frontend, slot_a, slot_b, airflow, airflow_logs,
     airflow_trigger_logs, prometheus, alertmanager, pushgateway, nginx_status, nginx_exporter, postgres_exporter,
     blackbox) = free_ports(19)
    app_db, mlflow_db = pg_database("mlstack_app"), pg_database("mlstack_mlflow")
    airflow_db = pg_database("mlstack_airflow")
    env = {
        **os.environ,
        "MLSTACK_ENV_FILE": str(env_file),
        "MLSTACK_VAR_DIR": str(var / "var"),
        "MLFLOW_PORT": str(mlflow_port),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
        "S3_PORT": str(s3_port),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "SEAWEEDFS_MASTER_PORT": str(master),
        "SEAWEEDFS_VOLUME_PORT": str(volume),
        "SEAWEEDFS_FILER_PORT": str(filer),
        "WEB_PORT": str(web),
        "FRONTEND_PORT": str(frontend),
        "BACKEND_A_PORT": str(slot_a),
        "BACKEND_B_PORT": str(slot_b),
        "MLFLOW_DATABASE_URL": mlflow_db,
        "APP_DATABASE_URL": app_db,
        "AIRFLOW_PORT": str(airflow),
        "AIRFLOW_WORKER_LOG_PORT": str(airflow_logs),
        "AIRFLOW_TRIGGER_LOG_PORT": str(airflow_trigger_logs),
        "AIRFLOW_DATABASE_URL": airflow_db,
        "PROMETHEUS_PORT": str(prometheus),
        "ALERTMANAGER_PORT": str(alertmanager),
        "PUSHGATEWAY_PORT": str(pushgateway),
        "NGINX_STATUS_PORT": str(nginx_status),
        "NGINX_EXPORTER_PORT": str(nginx_exporter),
        "POSTGRES_EXPORTER_PORT": str(postgres_exporter),
        "BLACKBOX_EXPORTER_PORT": str(blackbox),
        # DAGs stay paused: scheduled decisions must not move aliases behind other tests' backs;
        # the Airflow tests unpause what they run.
        "AIRFLOW_DAGS_PAUSED": "true",
        # The first champion is a deliberately weak, fast linear model, so that the full
        # pipeline run in the tests earns `challenger`.
        "TRAIN_FAMILIES": "linear",
        "SEARCH_ITERATIONS": "0",
        "MLFLOW_CONNECT_ATTEMPTS": "3",
        "MLFLOW_CONNECT_BACKOFF_SECONDS": "0.5",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "COLUMNS": "200",
    }
    handle = StackUnderTest(env=env, var=var / "var", tracking_uri=f"http://127.0.0.1:{mlflow_port}",
                            app_db_url=app_db, mlflow_db_url=mlflow_db)
    result = handle.run("up", module="mlstack.native")
    handle.up_output = result.stdout + result.stderr
    try:
        assert result.returncode == 0, handle.up_output
        yield handle
    finally:
        handle.run("down", module="mlstack.native", timeout=120)


@pytest.fixture(scope="module")
def native(stack):
    """The stack's supervisor (set_ab_weight, ctl, fault files), as `make up` built it."""
    from mlstack.native.stack import Stack
    from mlstack.settings import StackSettings

    return Stack(stack.settings(StackSettings), env_path=Path(stack.env["MLSTACK_ENV_FILE"]))


@pytest.fixture(scope="module")
def registry_restored(stack):
    """For modules that promote, retire and roll back: leave the aliases as the next module expects."""
    from tests.integration.helpers import registry, restore_aliases

    before = registry(stack).aliases()
    yield
    restore_aliases(stack, before)


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium; screenshots in reports/browser/."""
    import shutil

    from tests.integration.helpers import SHOTS

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are missing: `make test` installs them (scripts/install.sh test)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def web(stack):
    return f"http://127.0.0.1:{stack.env['WEB_PORT']}"
