"""Build each service's settings from the environment (and `.env`), validated at start-up.

One settings class per service; field names equal the environment variable names. This is the
only module that reads `os.environ`. `.env.example` documents every variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Ephemeral client ports (32768-60999) can steal a listening port: keep services below.
MAX_PORT = 32767

S = TypeVar("S", bound="_Settings")


def env_file() -> str | None:
    """Return the dotenv file settings read (absolute): `MLSTACK_ENV_FILE`, else `.env` in the working dir."""
    name = os.environ.get("MLSTACK_ENV_FILE", ".env")
    return str(Path(name).absolute()) if name else None


def load(cls: type[S], **overrides: Any) -> S:
    """Build settings of `cls` from the environment, the dotenv file and explicit overrides."""
    return cls(_env_file=env_file(), **overrides)  # type: ignore[call-arg]


def normalize_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg2 (SQLAlchemy 2.1 maps bare `postgresql://` to psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _port(value: int, name: str) -> int:
    if not 1 <= value <= MAX_PORT:
        raise ValueError(f"{name} must be between 1 and {MAX_PORT} (ephemeral ports can be stolen), got {value}")
    return value


def cores() -> int:
    """The CPUs this process may run on (a container's or a taskset's cpuset, else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Process pools whose size is `auto` (the default): the rule from the core count, chosen for a 2-core
# laptop first (docs/operations.md has what each process costs). A number in .env overrides it.
POOLS: dict[str, Callable[[int], int]] = {
    "BACKEND_WORKERS": lambda n: max(1, min(n, 4)),  # per slot: serving is CPU-bound, 2 on 2 cores
    "FRONTEND_WORKERS": lambda n: max(1, min(n // 2, 4)),  # pages wait on the API: 4 threads each overlap it
    "AIRFLOW_PARALLELISM": lambda n: max(2, min(n, 8)),  # LocalExecutor processes, all forked at start
    "MLFLOW_WORKERS": lambda n: max(1, min(n // 4, 4)),  # the registry answers a poll every few seconds
}


def pool_size(name: str, value: object) -> object:
    """Resolve `auto` (or nothing) for one of POOLS from this machine's cores; leave any other value as is."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return POOLS[name](cores())
    return value


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True,
        env_ignore_empty=True,
    )

    MLSTACK_VAR_DIR: Path = Field(Path("var"), description="Local state: logs, SQLite files, S3 data, caches.")

    @field_validator("MLSTACK_VAR_DIR")
    @classmethod
    def _absolute_var_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator(*POOLS, mode="before", check_fields=False)
    @classmethod
    def _pool_size(cls, value: object, info: Any) -> object:
        return pool_size(info.field_name, value)

    def sqlite_url(self, name: str) -> str:
        """Return the embedded SQLite URL used when no database URL is configured."""
        return f"sqlite:///{self.MLSTACK_VAR_DIR / 'db' / name}.db"


class _MlflowCredentials(_Settings):
    """The MLflow server's login (its basic-auth admin), which every client of the stack uses."""

    MLFLOW_TRACKING_USERNAME: str = "admin"
    MLFLOW_TRACKING_PASSWORD: SecretStr | None = None

    @model_validator(mode="after")
    def _export_mlflow_credentials(self) -> _MlflowCredentials:
        # MLflow's client reads credentials from the environment only: hand over what .env holds.
        if self.MLFLOW_TRACKING_PASSWORD is not None:
            os.environ.setdefault("MLFLOW_TRACKING_USERNAME", self.MLFLOW_TRACKING_USERNAME)
            os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", self.MLFLOW_TRACKING_PASSWORD.get_secret_value())
        return self


class _AuditKey(_Settings):
    """The key that signs the audit chain's checkpoints (mlstack.db.events); none: verify from the first row."""

    AUDIT_SIGNING_KEY: SecretStr | None = Field(None, min_length=32)

    def audit_key(self) -> bytes | None:
        return self.AUDIT_SIGNING_KEY.get_secret_value().encode() if self.AUDIT_SIGNING_KEY else None


class _MlflowClient(_MlflowCredentials):
    """How hard an MLflow client retries each request (MLflow's own default retries for minutes)."""

    MLFLOW_HTTP_REQUEST_MAX_RETRIES: int = Field(3, ge=0, le=10)
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: int = Field(1, ge=0, le=10)
    MLFLOW_HTTP_REQUEST_TIMEOUT: int = Field(60, ge=1, le=600)


class _SlotUrls(_Settings):
    """Where nginx and each inference slot answer (for the frontend's status page and the rollout tasks)."""

    WEB_PORT: int = 8000
    BACKEND_A_PORT: int = 8001
    BACKEND_B_PORT: int = 8002
    SLOT_A_URL: str = ""
    SLOT_B_URL: str = ""

    @model_validator(mode="after")
    def _derive_slot_urls(self) -> _SlotUrls:
        for name in ("WEB_PORT", "BACKEND_A_PORT", "BACKEND_B_PORT"):
            _port(getattr(self, name), name)
        self.SLOT_A_URL = (self.SLOT_A_URL or f"http://127.0.0.1:{self.BACKEND_A_PORT}").rstrip("/")
        self.SLOT_B_URL = (self.SLOT_B_URL or f"http://127.0.0.1:{self.BACKEND_B_PORT}").rstrip("/")
        return self


class TrainingSettings(_MlflowClient, _AuditKey):
    """Settings of the trainer: the CLI, the bootstrap job and (later) the Airflow tasks."""

    MLFLOW_TRACKING_URI: str = ""
    MLFLOW_PORT: int = 5000
    MLFLOW_EXPERIMENT_NAME: str = "house-price"
    MODEL_NAME: str = "house-price"
    DATA_CONTRACT: str = "california_housing"
    DATA_PATH: Path = Path("data/housing.csv")
    APP_DATABASE_URL: str = ""
    SPLIT_SEED: int = 42
    HOLDOUT_FRACTION: float = Field(0.2, gt=0.04, lt=0.51)
    VALIDATION_FRACTION: float = Field(0.2, gt=0.04, lt=0.51)
    TRAIN_FAMILIES: str = "linear,random_forest,hist_gradient_boosting"
    SEARCH_ITERATIONS: int = Field(6, ge=0, le=50)
    PROMOTION_MIN_IMPROVEMENT: float = Field(0.0, ge=0.0, lt=1.0)
    MLFLOW_CONNECT_ATTEMPTS: int = Field(5, ge=1, le=30)
    MLFLOW_CONNECT_BACKOFF_SECONDS: float = Field(1.0, ge=0.0, le=30.0)
    GIT_COMMIT: str = ""
    # Where batch jobs push their results for Prometheus (empty: not pushed, only logged).
    PUSHGATEWAY_URL: str = ""

    @field_validator("MLFLOW_PORT")
    @classmethod
    def _check_port(cls, value: int) -> int:
        return _port(value, "MLFLOW_PORT")

    @model_validator(mode="after")
    def _derive(self) -> TrainingSettings:
        if not self.MLFLOW_TRACKING_URI:
            self.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{self.MLFLOW_PORT}"
        url = self.APP_DATABASE_URL or self.sqlite_url("app")
        self.APP_DATABASE_URL = normalize_database_url(url)
        unknown = set(self.families) - {"linear", "random_forest", "hist_gradient_boosting"}
        if unknown or not self.families:
            raise ValueError(
                "TRAIN_FAMILIES must list one or more of linear, random_forest, hist_gradient_boosting;"
                f" got {self.TRAIN_FAMILIES!r}"
            )
        return self

    @property
    def families(self) -> list[str]:
        return [f.strip() for f in self.TRAIN_FAMILIES.split(",") if f.strip()]

    @property
    def training_config(self) -> str:
        """What, besides data and code, decides the model a run makes (a re-run with all three equal is skipped)."""
        return (f"families={','.join(self.families)};search_iterations={self.SEARCH_ITERATIONS};"
                f"split_seed={self.SPLIT_SEED};holdout={self.HOLDOUT_FRACTION};validation={self.VALIDATION_FRACTION}")


class RolloutSettings(TrainingSettings, _SlotUrls):
    """Settings of the rollout decisions: the evaluate_ab and guard_champion DAGs, scripts/rollback.py."""

    WEB_URL: str = ""
    JUDGE_POLICY_FILE: Path | None = None
    SLACK_WEBHOOK_URL: SecretStr | None = None
    SLACK_ATTEMPTS: int = Field(3, ge=1, le=10)
    AIRFLOW_PUBLIC_URL: str = ""
    MLFLOW_PUBLIC_URL: str = ""
    AIRFLOW_PORT: int = 8080

    @model_validator(mode="after")
    def _derive_urls(self) -> RolloutSettings:
        _port(self.AIRFLOW_PORT, "AIRFLOW_PORT")
        self.WEB_URL = (self.WEB_URL or f"http://127.0.0.1:{self.WEB_PORT}").rstrip("/")
        self.AIRFLOW_PUBLIC_URL = (self.AIRFLOW_PUBLIC_URL or f"http://127.0.0.1:{self.AIRFLOW_PORT}").rstrip("/")
        self.MLFLOW_PUBLIC_URL = (self.MLFLOW_PUBLIC_URL or f"http://127.0.0.1:{self.MLFLOW_PORT}").rstrip("/")
        return self


class MonitoringSettings(RolloutSettings):
    """Settings of the monitor_drift DAG (it also reads the rollout settings: links, Slack, the policy file)."""

    DRIFT_SCHEDULE: str = "@hourly"
    DRIFT_WORK_DIR: Path | None = None  # reports and retraining files (default: MLSTACK_VAR_DIR/drift)
    DRIFT_EXPERIMENT_NAME: str = "drift-monitoring"

    @model_validator(mode="after")
    def _derive_dir(self) -> MonitoringSettings:
        self.DRIFT_WORK_DIR = (self.DRIFT_WORK_DIR or self.MLSTACK_VAR_DIR / "drift").absolute()
        return self


class BackendSettings(_MlflowClient):
    """Settings of one inference slot (the Flask backend under gunicorn)."""

    SLOT: Literal["A", "B"] = "A"
    MODEL_NAME: str = "house-price"
    DATA_CONTRACT: str = "california_housing"
    MLFLOW_TRACKING_URI: str = ""
    MLFLOW_PORT: int = 5000
    APP_DATABASE_URL: str = ""
    PREDICTION_ID_SECRET: SecretStr = Field(min_length=16)
    MODEL_POLL_SECONDS: float = Field(5.0, gt=0, le=300)
    MODEL_CACHE_DIR: Path | None = None
    PREDICTION_LOG_DIR: Path | None = None
    PREDICTION_FLUSH_SECONDS: float = Field(0.5, gt=0, le=60)
    PREDICTION_SPILL_MAX_BYTES: int = Field(1 << 30, ge=1 << 16)
    BATCH_MAX_ROWS: int = Field(10_000, ge=1, le=1_000_000)
    MAX_BODY_BYTES: int = Field(16 * 1024 * 1024, ge=1024)
    FAST_PATH: bool = True
    STATS_PERIOD_SECONDS: float = Field(10.0, gt=0, le=300)
    FAULT_FILE: Path | None = None
    BACKEND_BIND: str = "127.0.0.1"
    BACKEND_PORT: int = 8001
    BACKEND_WORKERS: int = Field("auto", ge=1, le=32, validate_default=True)  # type: ignore[assignment]
    PROMETHEUS_MULTIPROC_DIR: Path | None = None

    @model_validator(mode="after")
    def _derive(self) -> BackendSettings:
        _port(self.BACKEND_PORT, "BACKEND_PORT")
        _port(self.MLFLOW_PORT, "MLFLOW_PORT")
        if not self.MLFLOW_TRACKING_URI:
            self.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{self.MLFLOW_PORT}"
        self.APP_DATABASE_URL = normalize_database_url(self.APP_DATABASE_URL or self.sqlite_url("app"))
        self.MODEL_CACHE_DIR = (self.MODEL_CACHE_DIR or self.MLSTACK_VAR_DIR / "model-cache").absolute()
        self.PREDICTION_LOG_DIR = (self.PREDICTION_LOG_DIR or self.MLSTACK_VAR_DIR / "prediction-log").absolute()
        return self


class FrontendSettings(_MlflowClient, _SlotUrls, _AuditKey):
    """Settings of the web frontend (the form, the result and feedback pages, the status page)."""

    MODEL_NAME: str = "house-price"
    DATA_CONTRACT: str = "california_housing"
    MLFLOW_TRACKING_URI: str = ""
    MLFLOW_PORT: int = 5000
    APP_DATABASE_URL: str = ""
    API_BASE_URL: str = ""
    API_TIMEOUT_SECONDS: float = Field(10.0, gt=0, le=120)
    SCHEMA_CACHE_SECONDS: float = Field(30.0, ge=0, le=3600)
    FRONTEND_BIND: str = "127.0.0.1"
    FRONTEND_PORT: int = 8003
    FRONTEND_WORKERS: int = Field("auto", ge=1, le=32, validate_default=True)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _derive(self) -> FrontendSettings:
        for name in ("MLFLOW_PORT", "FRONTEND_PORT"):
            _port(getattr(self, name), name)
        if not self.MLFLOW_TRACKING_URI:
            self.MLFLOW_TRACKING_URI = f"http://127.0.0.1:{self.MLFLOW_PORT}"
        self.APP_DATABASE_URL = normalize_database_url(self.APP_DATABASE_URL or self.sqlite_url("app"))
        self.API_BASE_URL = (self.API_BASE_URL or f"http://127.0.0.1:{self.WEB_PORT}/api").rstrip("/")
        return self


class StorageSettings(_Settings):
    """Settings of the object-store client (bucket job, artifact checks)."""

    S3_ENDPOINT_URL: str = ""
    S3_PORT: int = 9000
    S3_BUCKET: str = "mlstack"
    S3_REGION: str = "us-east-1"
    S3_ACCESS_KEY_ID: SecretStr
    S3_SECRET_ACCESS_KEY: SecretStr

    @model_validator(mode="after")
    def _derive_endpoint(self) -> StorageSettings:
        _port(self.S3_PORT, "S3_PORT")
        if not self.S3_ENDPOINT_URL:
            self.S3_ENDPOINT_URL = f"http://127.0.0.1:{self.S3_PORT}"
        return self


class RetentionSettings(MonitoringSettings):
    """How long each kind of record stays in the app database before the archive_history DAG (mlstack.lifecycle)
    archives it to the bucket as Parquet and deletes it. The judge's and the drift monitor's windows (policy
    file) are a floor: what they still read is never expired, whatever these say."""

    RETAIN_PREDICTIONS_DAYS: float = Field(30, gt=0, le=3650)  # predictions, with their feedback
    RETAIN_REQUEST_STATS_DAYS: float = Field(30, gt=0, le=3650)
    RETAIN_JUDGE_TICKS_DAYS: float = Field(14, gt=0, le=3650)  # judge decisions that changed nothing
    RETAIN_LOGS_DAYS: float = Field(14, gt=0, le=3650)  # Airflow task logs, drift reports and retraining files
    ARCHIVE_PREFIX: str = Field("archive", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    ARCHIVE_SCHEDULE: str = "@daily"


class LifecycleSettings(RetentionSettings, StorageSettings):
    """Settings of the archive_history task: the retention, and the bucket it archives to."""


class SlackSinkSettings(_Settings):
    """Settings of the local Slack sink (mlstack.slack_sink), which runs when no SLACK_WEBHOOK_URL is set."""

    SLACK_SINK_BIND: str = "127.0.0.1"
    SLACK_SINK_PORT: int = 8025
    SLACK_SINK_DIR: Path | None = None  # default: MLSTACK_VAR_DIR/slack-sink

    @model_validator(mode="after")
    def _derive(self) -> SlackSinkSettings:
        _port(self.SLACK_SINK_PORT, "SLACK_SINK_PORT")
        self.SLACK_SINK_DIR = (self.SLACK_SINK_DIR or self.MLSTACK_VAR_DIR / "slack-sink").absolute()
        return self


class StackSettings(StorageSettings, _MlflowCredentials):
    """Settings of the native-mode supervisor: ports, stores and the services it runs."""

    BIND_ADDRESS: str = "127.0.0.1"
    MLFLOW_PORT: int = 5000
    MLFLOW_DATABASE_URL: str = ""
    MLFLOW_ALLOWED_HOSTS: str = "localhost,localhost:*,127.0.0.1,127.0.0.1:*"
    MLFLOW_WORKERS: int = Field("auto", ge=1, le=8, validate_default=True)  # type: ignore[assignment]
    MLFLOW_AUTH_DATABASE_URL: str = ""
    MLFLOW_FLASK_SERVER_SECRET_KEY: SecretStr | None = None
    APP_DATABASE_URL: str = ""
    BACKEND_A_PORT: int = 8001
    BACKEND_B_PORT: int = 8002
    WEB_PORT: int = 8000
    FRONTEND_PORT: int = 8003
    AB_WEIGHT_B: int = Field(10, ge=0, le=100)
    # nginx (rendered into its config by nginx/render-config.sh, in both modes)
    NGINX_RATE_LIMIT: int = Field(1000, ge=1)
    NGINX_RATE_BURST: int = Field(2000, ge=0)
    NGINX_FEEDBACK_RATE_LIMIT: int = Field(200, ge=1)
    NGINX_FEEDBACK_RATE_BURST: int = Field(400, ge=0)
    NGINX_MAX_BODY: str = Field("16m", pattern=r"^\d+[kKmM]?$")
    NGINX_WORKERS: str = Field("auto", pattern=r"^(auto|\d+)$")
    SEAWEEDFS_MASTER_PORT: int = 9333
    SEAWEEDFS_VOLUME_PORT: int = 9334
    SEAWEEDFS_FILER_PORT: int = 9335
    STARTUP_TIMEOUT_SECONDS: float = Field(120.0, gt=0)
    TRAIN_ON_EMPTY_REGISTRY: bool = True
    AIRFLOW_ENABLED: bool = True
    AIRFLOW_PORT: int = 8080
    AIRFLOW_DATABASE_URL: str = ""
    AIRFLOW_ADMIN_USER: str = "admin"
    AIRFLOW_ADMIN_PASSWORD: SecretStr | None = None
    AIRFLOW_JWT_SECRET: SecretStr | None = None
    AIRFLOW_API_SECRET_KEY: SecretStr | None = None
    AIRFLOW_DAGS_PAUSED: bool = False
    AIRFLOW_PARALLELISM: int = Field("auto", ge=1, le=32, validate_default=True)  # type: ignore[assignment]
    AIRFLOW_WORKER_LOG_PORT: int = 8793
    AIRFLOW_TRIGGER_LOG_PORT: int = 8794
    MONITORING_ENABLED: bool = True
    PROMETHEUS_PORT: int = 9090
    PROMETHEUS_RETENTION: str = "15d"
    ALERTMANAGER_PORT: int = 9093
    PUSHGATEWAY_PORT: int = 9091
    NGINX_STATUS_PORT: int = 8009
    NGINX_EXPORTER_PORT: int = 9113
    POSTGRES_EXPORTER_PORT: int = 9187
    BLACKBOX_EXPORTER_PORT: int = 9115
    SLACK_WEBHOOK_URL: SecretStr | None = None
    SLACK_SINK_PORT: int = 8025
    GRAFANA_PORT: int = 3000  # Compose only: for links (the demo's)
    # Compose only: its PostgreSQL, published on the host for host tools (backups, the doctor, the tests)
    POSTGRES_PORT: int = 5433
    POSTGRES_PASSWORD: SecretStr | None = None
    MLFLOW_DB_PASSWORD: SecretStr | None = None
    APP_DB_PASSWORD: SecretStr | None = None
    AIRFLOW_DB_PASSWORD: SecretStr | None = None

    @property
    def slack_sink_enabled(self) -> bool:
        """Without a real webhook, a local sink records the messages and shows them on a page."""
        return self.SLACK_WEBHOOK_URL is None

    @property
    def slack_webhook_url(self) -> str:
        """Where Airflow's messages and Alertmanager's alerts go: the real webhook, else the local sink."""
        if self.SLACK_WEBHOOK_URL is not None:
            return self.SLACK_WEBHOOK_URL.get_secret_value()
        return f"http://127.0.0.1:{self.SLACK_SINK_PORT}/hooks/local"

    def port_settings(self) -> dict[str, int]:
        """Every port setting of the native stack that is in use, by name."""
        names = ["MLFLOW_PORT", "BACKEND_A_PORT", "BACKEND_B_PORT", "WEB_PORT", "FRONTEND_PORT", "S3_PORT",
                 "SEAWEEDFS_MASTER_PORT", "SEAWEEDFS_VOLUME_PORT", "SEAWEEDFS_FILER_PORT"]
        if self.AIRFLOW_ENABLED:
            names += ["AIRFLOW_PORT", "AIRFLOW_WORKER_LOG_PORT", "AIRFLOW_TRIGGER_LOG_PORT"]
        if self.MONITORING_ENABLED:
            names += ["PROMETHEUS_PORT", "ALERTMANAGER_PORT", "PUSHGATEWAY_PORT", "NGINX_STATUS_PORT",
                      "NGINX_EXPORTER_PORT", "BLACKBOX_EXPORTER_PORT"]
            if self.uses_postgres:
                names.append("POSTGRES_EXPORTER_PORT")
        if self.slack_sink_enabled:
            names.append("SLACK_SINK_PORT")
        return {name: getattr(self, name) for name in names}

    def listening_ports(self) -> dict[str, int]:
        """Every port the native stack listens on, by the setting that chooses it (SeaweedFS's gRPC twins too)."""
        out = self.port_settings()
        for name in ("S3_PORT", "SEAWEEDFS_MASTER_PORT", "SEAWEEDFS_VOLUME_PORT", "SEAWEEDFS_FILER_PORT"):
            out[f"{name} + 10000 (gRPC)"] = out[name] + 10000
        return out

    @property
    def uses_postgres(self) -> bool:
        return any(u.startswith("postgresql") for u in (self.APP_DATABASE_URL, self.MLFLOW_DATABASE_URL))

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.PUSHGATEWAY_PORT}" if self.MONITORING_ENABLED else ""

    @model_validator(mode="after")
    def _check(self) -> StackSettings:
        _port(self.MLFLOW_PORT, "MLFLOW_PORT")
        # SeaweedFS puts each component's gRPC port at its HTTP port + 10000.
        for name in ("S3_PORT", "SEAWEEDFS_MASTER_PORT", "SEAWEEDFS_VOLUME_PORT", "SEAWEEDFS_FILER_PORT"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_PORT - 10000:
                raise ValueError(f"{name} must be between 1 and {MAX_PORT - 10000} (its gRPC port is {name} + 10000)")
        self.MLFLOW_DATABASE_URL = normalize_database_url(self.MLFLOW_DATABASE_URL or self.sqlite_url("mlflow"))
        self.APP_DATABASE_URL = normalize_database_url(self.APP_DATABASE_URL or self.sqlite_url("app"))
        ports = self.port_settings()
        for name, value in ports.items():
            if not name.startswith(("S3", "SEAWEEDFS")):
                _port(value, name)
        seen: dict[int, str] = {}
        for name, value in ports.items():
            for port in (value, value + 10000) if name.startswith(("S3", "SEAWEEDFS")) else (value,):
                if port in seen:
                    raise ValueError(f"{name} clashes with {seen[port]} on port {port}")
                seen[port] = name
        if self.MLFLOW_DATABASE_URL == self.APP_DATABASE_URL:
            raise ValueError("MLFLOW_DATABASE_URL and APP_DATABASE_URL must name different databases")
        if self.MLFLOW_TRACKING_PASSWORD is None or len(self.MLFLOW_TRACKING_PASSWORD.get_secret_value()) < 12:
            raise ValueError("MLFLOW_TRACKING_PASSWORD (the MLflow login) must be set in .env, at least 12 characters "
                             "(make env generates it)")
        if self.MLFLOW_FLASK_SERVER_SECRET_KEY is None:
            raise ValueError("MLFLOW_FLASK_SERVER_SECRET_KEY must be set in .env (make env generates it)")
        # basic-auth users live in their own store (its migrations would clash with the tracking store's)
        self.MLFLOW_AUTH_DATABASE_URL = self.MLFLOW_AUTH_DATABASE_URL or self.sqlite_url("mlflow-auth")
        self.AIRFLOW_DATABASE_URL = normalize_database_url(self.AIRFLOW_DATABASE_URL or self.sqlite_url("airflow"))
        if self.AIRFLOW_ENABLED:
            missing = [n for n in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY")
                       if getattr(self, n) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set in .env (make env generates them)")
            if len(self.AIRFLOW_JWT_SECRET.get_secret_value()) < 64:  # type: ignore[union-attr]
                raise ValueError("AIRFLOW_JWT_SECRET must be at least 64 characters")
        return self

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.MLFLOW_PORT}"


def export_mlflow_client_env(settings: _MlflowClient) -> None:
    """Bound the MLflow client's own HTTP retries (its defaults retry for minutes) for this process."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.MLFLOW_HTTP_REQUEST_MAX_RETRIES)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(settings.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.MLFLOW_HTTP_REQUEST_TIMEOUT)


def use_environment(values: dict[str, str]) -> None:
    """Set these variables in this process's environment, for the settings loaded after (the demo's
    registry and database as a stack publishes them on the host)."""
    os.environ.update(values)


def process_env() -> dict[str, str]:
    """Return a copy of this process's environment, for starting child processes."""
    return dict(os.environ)


if __name__ == "__main__":  # `python -m mlstack.settings pool NAME [VALUE]`: a pool's size, for the start scripts
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "pool" or sys.argv[2] not in POOLS:
        sys.exit(f"usage: python -m mlstack.settings pool {{{','.join(POOLS)}}} [VALUE|auto]")
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    name = sys.argv[2]
    field = next(cls.model_fields[name] for cls in (BackendSettings, FrontendSettings, StackSettings)
                 if name in cls.model_fields)
    value = pool_size(name, sys.argv[3] if len(sys.argv) == 4 else "auto")
    try:  # the bounds of the setting itself (Field ge/le), as the services' settings check them
        print(TypeAdapter(Annotated[int, *field.metadata]).validate_python(value))
    except ValidationError as exc:
        sys.exit(f"{name}: {exc.errors()[0]['msg']} (or auto), got {value!r}")
