"""Check that this machine can run the stack, and say exactly what to fix: `make doctor`.

    make doctor                 # = python -m mlstack.doctor
    python -m mlstack.doctor --json

Checks Python, the venv, Debian packages, Docker and Compose (when present), memory, disk, `.env`
(complete, valid), every port (free, or held by this stack itself), PostgreSQL (when a database URL
points at it), S3 (reachable, credentials accepted, bucket present), MLflow (up, login accepted)
and Airflow (components healthy, login accepted). Services that are not running yet are reported
as such, not as failures: `make up` starts them. Exit 1 when any check fails.

Runs without the venv too (standard library only at import); the checks that need the venv's
packages then say so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
GB = 1024 ** 3


@dataclass
class Finding:
    """One check's result; `fix` is the exact thing to do when it is not ok."""

    check: str
    status: str
    detail: str
    fix: str = ""


# -- reading configuration without the venv: scripts/init-env.py's parser (the file make env writes) --

def _init_env() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("init_env", ROOT / "scripts" / "init-env.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def parse_dotenv(path: Path) -> dict[str, str]:
    """NAME=value lines of a dotenv file, as `make env` writes them ({} when there is no file)."""
    return _init_env().parse(path) if path.exists() else {}


def secret_names(example: Path) -> set[str]:
    """Variables `.env.example` marks `(secret)`: the ones `make env` generates."""
    return _init_env().secret_names(example)


# -- ports ----------------------------------------------------------------------------------------

def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def port_owner(port: int) -> tuple[int, str] | None:
    """The process listening on `port` (pid, command line), if /proc tells."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return int(proc.name), cmd[:120]
        except OSError:
            continue
    return None


def ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out


def suggest_port(port: int, avoid: set[int]) -> int:
    """The next port above `port` that is free (and below 32768, with its +10000 twin free when needed)."""
    for candidate in range(port + 1, 32767):
        if candidate not in avoid and port_free(candidate):
            return candidate
    return port


# -- the doctor ------------------------------------------------------------------------------------

class Doctor:
    """Run every check against one checkout's `.env` (or MLSTACK_ENV_FILE) and var dir."""

    def __init__(self, root: Path = ROOT, env_file: Path | None = None, compose: bool = False) -> None:
        self.root = root
        name = os.environ.get("MLSTACK_ENV_FILE", ".env")
        self.env_file = env_file or (Path(name) if Path(name).is_absolute() else root / name)
        self.compose = compose
        self.findings: list[Finding] = []
        self.settings: Any = None  # StackSettings, when the venv and .env allow

    def add(self, check: str, status: str, detail: str, fix: str = "") -> Finding:
        f = Finding(check, status, detail, fix)
        self.findings.append(f)
        return f

    def run(self) -> list[Finding]:
        for check in (self.check_python, self.check_venv, self.check_debian, self.check_docker, self.check_memory,
                      self.check_disk, self.check_env, self.check_ports, self.check_postgres, self.check_s3,
                      self.check_mlflow, self.check_airflow):
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - a check that breaks is a finding, not a crash
                self.add(check.__name__.removeprefix("check_"), FAIL, f"the check itself failed: {exc!r}",
                         "report this as a bug of make doctor")
        return self.findings

    # -- machine --

    def check_python(self) -> None:
        py = shutil.which("python3.11")
        if py is None:
            self.add("python", FAIL, "python3.11 not found on PATH (the venv is built with it)",
                     "install Python 3.11: apt-get install -y python3.11 python3.11-venv")
            return
        version = subprocess.run([py, "--version"], capture_output=True, text=True).stdout.strip()
        self.add("python", OK, f"{version} at {py}")

    def check_venv(self) -> None:
        venv = self.root / ".venv"
        if not (venv / "bin" / "python").exists():
            self.add("venv", FAIL, ".venv is missing", "make install (make up does it too)")
            return
        import hashlib

        want = hashlib.sha256((self.root / "requirements" / "lock.txt").read_bytes()
                              + (self.root / "pyproject.toml").read_bytes()).hexdigest()
        stamp = venv / ".installed"
        if not stamp.exists() or stamp.read_text().strip() != want:
            self.add("venv", WARN, ".venv is older than requirements/lock.txt or pyproject.toml",
                     "make install (syncs the venv with the lock)")
            return
        self.add("venv", OK, ".venv matches requirements/lock.txt")

    def check_debian(self) -> None:
        text = (self.root / "scripts" / "install.sh").read_text()
        m = re.search(r"apt_runtime=\(([^)]*)\)", text)
        wanted = m.group(1).split() if m else []
        if not shutil.which("dpkg-query"):
            self.add("debian packages", SKIP, "not a Debian system (dpkg-query missing): install " + " ".join(wanted))
            return
        missing = [p for p in wanted if "install ok installed" not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
        if missing:
            self.add("debian packages", FAIL, "missing: " + " ".join(missing),
                     f"apt-get update && apt-get install -y {' '.join(missing)}   (or: make install, as root)")
        else:
            self.add("debian packages", OK, f"{len(wanted)} installed (nginx, Prometheus, Alertmanager, ...)")

    def check_docker(self) -> None:
        docker = shutil.which("docker")
        legacy = shutil.which("docker-compose")
        if docker is None and legacy is None:
            self.add("docker", FAIL if self.compose else SKIP, "no Docker client: native mode (make up) needs none",
                     "install Docker Engine and the Compose plugin to use docker compose" if self.compose else "")
            return
        parts = []
        if docker:
            parts.append(_first_line([docker, "--version"]))
            plugin = _first_line([docker, "compose", "version"])
            parts.append(plugin if "version" in plugin.lower() else "no compose plugin")
            engine = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                    text=True, timeout=20)
            if engine.returncode != 0 or not engine.stdout.strip():
                status = FAIL if self.compose else WARN
                self.add("docker", status, "; ".join(parts) + "; no Docker engine answers",
                         "start the engine (systemctl start docker), or use native mode: make up")
                return
            parts.append(f"engine {engine.stdout.strip()}")
        if legacy:
            parts.append(_first_line([legacy, "--version"]) + " (validates the file: make compose-check)")
        self.add("docker", OK, "; ".join(parts))

    def check_memory(self) -> None:
        info = parse_meminfo(Path("/proc/meminfo").read_text())
        available = info.get("MemAvailable", 0)
        detail = f"{available / GB:.1f} GB available of {info.get('MemTotal', 0) / GB:.1f} GB"
        if available < 2 * GB:
            self.add("memory", FAIL, detail + " (the whole stack takes about 3.5 GB PSS, 6 GB RSS)",
                     "free memory, or start a smaller stack: AIRFLOW_ENABLED=false and MONITORING_ENABLED=false in .env")
        elif available < 4 * GB:
            self.add("memory", WARN, detail + " (the whole stack takes about 3.5 GB; Airflow alone about 1 GB)",
                     "AIRFLOW_PARALLELISM=2 in .env saves a few hundred MB")
        else:
            self.add("memory", OK, detail)

    def check_disk(self) -> None:
        var = self._var_dir()
        probe = var if var.exists() else self.root
        free = shutil.disk_usage(probe).free
        detail = f"{free / GB:.1f} GB free at {probe}"
        if free < 1 * GB:
            self.add("disk", FAIL, detail, "free space on that disk, or set MLSTACK_VAR_DIR in .env to a bigger one")
        elif free < 5 * GB:
            self.add("disk", WARN, detail + " (models, the prediction spill and Prometheus grow)",
                     "keep at least 5 GB free; PREDICTION_SPILL_MAX_BYTES bounds the spill")
        else:
            self.add("disk", OK, detail)

    # -- configuration --

    def _var_dir(self) -> Path:
        if self.settings is not None:
            return Path(self.settings.MLSTACK_VAR_DIR)
        raw = os.environ.get("MLSTACK_VAR_DIR") or parse_dotenv(self.env_file).get("MLSTACK_VAR_DIR") or "var"
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.root / path

    def check_env(self) -> None:
        if not self.env_file.exists():
            self.add(".env", FAIL, f"{self.env_file} does not exist", "make env (writes it with generated secrets)")
            return
        env = parse_dotenv(self.env_file)
        example = self.root / ".env.example"
        missing = sorted(n for n in secret_names(example) if not env.get(n))
        known = set(parse_dotenv(example)) | {"MLSTACK_ENV_FILE"}
        unknown = sorted(k for k in env if k not in known)
        if missing:
            self.add(".env", FAIL, "secrets missing or empty: " + ", ".join(missing),
                     "make env (generates only the missing ones; keeps what is set)")
            return
        try:
            from mlstack.settings import StackSettings, load
        except ImportError:
            self.add(".env", WARN, "every secret is set; not validated (no venv)", "make install, then make doctor")
            return
        old = os.environ.get("MLSTACK_ENV_FILE")
        os.environ["MLSTACK_ENV_FILE"] = str(self.env_file)
        try:
            self.settings = load(StackSettings)
        except Exception as exc:  # noqa: BLE001 - pydantic names the field and the rule
            self.add(".env", FAIL, _one_line(str(exc)), f"correct that variable in {self.env_file}")
            return
        finally:
            if old is None:
                os.environ.pop("MLSTACK_ENV_FILE", None)
            else:
                os.environ["MLSTACK_ENV_FILE"] = old
        note = f"; not in .env.example (typos?): {', '.join(unknown)}" if unknown else ""
        self.add(".env", WARN if unknown else OK, f"{self.env_file.name}: complete and valid{note}",
                 "remove or rename those variables" if unknown else "")

    def _supervisord_pid(self) -> int | None:
        try:
            pid = int((self._var_dir() / "run" / "supervisord.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def _ports(self) -> dict[str, int]:
        if self.settings is not None:
            return self.settings.listening_ports()
        env = {**parse_dotenv(self.root / ".env.example"), **parse_dotenv(self.env_file)}
        return {k: int(v) for k, v in env.items() if k.endswith("_PORT") and v.isdigit()}

    def check_ports(self) -> None:
        ports = self._ports()
        ours = self._supervisord_pid()
        host = getattr(self.settings, "BIND_ADDRESS", "127.0.0.1")
        taken, by_stack = [], 0
        for name, port in ports.items():
            if port_free(port, host):
                continue
            owner = port_owner(port)
            if ours and owner and (owner[0] == ours or ours in ancestors(owner[0])):
                by_stack += 1
                continue
            taken.append((name, port, owner))
        for name, port, owner in taken:
            who = f"pid {owner[0]} ({owner[1]})" if owner else "another process (not visible from here)"
            setting = name.split(" ")[0]
            alt = suggest_port(port, set(ports.values()))
            stop = f"stop it (kill {owner[0]}) or " if owner else "stop it or "
            self.add(f"port {port}", FAIL, f"{name} = {port} is taken by {who}",
                     f"{stop}set {setting}={alt if setting == name else alt - 10000} in {self.env_file.name}")
        if not taken:
            held = f"; {by_stack} held by this stack (running)" if by_stack else ""
            self.add("ports", OK, f"{len(ports)} ports free for the stack{held}")

    # -- services --

    def _urls(self) -> list[tuple[str, str]]:
        s = self.settings
        return [(n, getattr(s, n)) for n in ("MLFLOW_DATABASE_URL", "APP_DATABASE_URL", "AIRFLOW_DATABASE_URL")]

    def check_postgres(self) -> None:
        if self._without_settings("postgresql"):
            return
        used = [(n, u) for n, u in self._urls() if u.startswith("postgresql")]
        if not used:
            self.add("postgresql", OK, "not used: embedded SQLite under " + str(self._var_dir() / "db"))
            return
        from sqlalchemy.engine import make_url

        from mlstack.db.engine import database_exists, redact

        for name, url in used:
            u = make_url(url)
            server = u.set(database="postgres")
            try:
                exists = database_exists(url, connect_timeout=3)
            except Exception as exc:  # noqa: BLE001
                self.add(f"postgresql ({name})", FAIL, f"cannot connect to {redact(str(server))}: "
                         f"{_one_line(str(getattr(exc, 'orig', exc)))}",
                         f"start PostgreSQL at {u.host}:{u.port or 5432} (Debian: pg_ctlcluster 15 main start), "
                         f"or correct {name} in {self.env_file.name}")
                continue
            self.add(f"postgresql ({name})", OK, f"{redact(url)}: reachable; database "
                     + ("present" if exists else "missing (make up creates it)"))

    def check_s3(self) -> None:
        if self._without_settings("s3"):
            return
        from botocore.exceptions import BotoCoreError, ClientError

        from mlstack.storage import client as s3_client

        s = self.settings
        endpoint = s.S3_ENDPOINT_URL
        client = s3_client(s)
        try:
            client.list_objects_v2(Bucket=s.S3_BUCKET, MaxKeys=1)  # a GET: errors come with their code
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket"):
                self.add("s3", FAIL, f"{endpoint}: credentials accepted, bucket {s.S3_BUCKET} missing",
                         ".venv/bin/python -m mlstack storage ensure-bucket   (make up does it)")
                return
            self.add("s3", FAIL, f"{endpoint} refuses the credentials from {self.env_file.name} "
                     f"({code or status})", self._s3_fix())
            return
        except (BotoCoreError, OSError) as exc:
            self._not_answering("s3", endpoint, exc, "s3")
            return
        self.add("s3", OK, f"{endpoint}: credentials accepted, bucket {s.S3_BUCKET} present")

    def _s3_fix(self) -> str:
        """Which S3 key is wrong, and how to make the server and .env agree."""
        s = self.settings
        served = self._var_dir() / "seaweedfs" / "s3.json"
        wrong = ["S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]
        if served.exists():
            try:
                creds = json.loads(served.read_text())["identities"][0]["credentials"][0]
                wrong = [name for name, key, have in (
                    ("S3_ACCESS_KEY_ID", "accessKey", s.S3_ACCESS_KEY_ID),
                    ("S3_SECRET_ACCESS_KEY", "secretKey", s.S3_SECRET_ACCESS_KEY)) if creds.get(key) !=
                    have.get_secret_value()] or wrong
            except (OSError, ValueError, KeyError, IndexError):
                pass
            verb = "differs" if len(wrong) == 1 else "differ"
            return (f"{' and '.join(wrong)} in {self.env_file.name} {verb} from the keys the running S3 server was "
                    f"started with ({served}): put back the old value, or restart the stack so that the server "
                    "takes the keys in .env: make down && make up")
        return (f"set {' and '.join(wrong)} in {self.env_file.name} to the keys of the S3 server at "
                f"{s.S3_ENDPOINT_URL} (Compose: after changing them, "
                "docker compose up -d --force-recreate s3 mlflow)")

    def _without_settings(self, check: str) -> bool:
        """True (and a skip noted) when the checks of services cannot run: no valid .env or no venv."""
        if self.settings is None:
            self.add(check, SKIP, "needs a valid .env and the venv (see above)")
        return self.settings is None

    def _not_answering(self, check: str, url: str, exc: BaseException, log: str) -> None:
        """A service that does not answer: a failure while the stack runs, else just not started yet."""
        if self._supervisord_pid() is not None:
            self.add(check, FAIL, f"{url} does not answer: {_one_line(str(exc))}",
                     f"make status; see {self._var_dir() / 'log' / log}.log")
        else:
            self.add(check, SKIP, f"{url}: not running (make up starts it)")

    def check_mlflow(self) -> None:
        if self._without_settings("mlflow"):
            return
        s = self.settings
        url = s.tracking_uri
        try:
            _get(f"{url}/health")
        except OSError as exc:
            self._not_answering("mlflow", url, exc, "mlflow")
            return
        import base64

        login = base64.b64encode(f"{s.MLFLOW_TRACKING_USERNAME}:{s.MLFLOW_TRACKING_PASSWORD.get_secret_value()}"
                                 .encode()).decode()
        try:
            _get(f"{url}/api/2.0/mlflow/registered-models/search?max_results=1", {"Authorization": f"Basic {login}"})
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                self.add("mlflow", FAIL, f"{url} refuses MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD from "
                         f"{self.env_file.name} (401)",
                         "MLflow keeps the admin password it was first started with (its user store, "
                         "MLFLOW_AUTH_DATABASE_URL; natively var/db/mlflow-auth.db): put back the old "
                         "MLFLOW_TRACKING_PASSWORD, or stop the stack, delete that store and make up")
            elif exc.code == 403:
                self.add("mlflow", FAIL, f"{url} answered 403 (its Host-header check refuses this address)",
                         "add the host you use to MLFLOW_ALLOWED_HOSTS in .env, then make up")
            else:
                self.add("mlflow", FAIL, f"{url} answered HTTP {exc.code}", "see var/log/mlflow.log")
            return
        except OSError as exc:
            self.add("mlflow", FAIL, f"{url}: {exc}", "see var/log/mlflow.log")
            return
        self.add("mlflow", OK, f"{url}: up, login accepted")

    def check_airflow(self) -> None:
        if self._without_settings("airflow"):
            return
        s = self.settings
        if not s.AIRFLOW_ENABLED:
            self.add("airflow", SKIP, "AIRFLOW_ENABLED=false")
            return
        from mlstack.airflow_api import AirflowApi, AirflowError

        api = AirflowApi.from_stack(s)
        api.timeout = 5
        try:
            health = api.health()
        except (OSError, AirflowError) as exc:
            if isinstance(exc, AirflowError) or (isinstance(exc, urllib.error.HTTPError) and exc.code == 401):
                self.add("airflow", FAIL, f"{api.base} refuses AIRFLOW_ADMIN_USER/AIRFLOW_ADMIN_PASSWORD: {exc}",
                         "Airflow reads the password from .env at start: make up (it restarts what changed)")
                return
            self._not_answering("airflow", api.base, exc, "airflow-*")
            return
        bad = {k: v.get("status") for k, v in health.items() if isinstance(v, dict) and v.get("status") != "healthy"}
        if bad:
            self.add("airflow", FAIL, f"{api.base}: unhealthy components: {bad}",
                     "make status; see var/log/airflow-<component>.log (memory: AIRFLOW_PARALLELISM=2)")
            return
        self.add("airflow", OK, f"{api.base}: login accepted; metadatabase, scheduler, dag-processor, triggerer "
                                "healthy")


def parse_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
        return resp.read()


def _first_line(cmd: list[str]) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr).strip() else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


MARKS = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}


def render(findings: list[Finding]) -> str:
    width = max(len(f.check) for f in findings)
    lines = [f"{MARKS[f.status]} {f.check:<{width}}  {f.detail}" for f in findings]
    todo = [f for f in findings if f.status in (FAIL, WARN) and f.fix]
    if todo:
        lines += ["", "What to fix:"]
        lines += [f"  {i}. [{f.check}] {f.fix}" for i, f in enumerate(todo, 1)]
    failed = sum(f.status == FAIL for f in findings)
    lines += ["", f"{failed} problem(s) found" if failed else "everything needed is in place"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--compose", action="store_true", help="Docker Compose will be used: require an engine")
    args = parser.parse_args(argv)
    findings = Doctor(compose=args.compose).run()
    print(json.dumps([asdict(f) for f in findings], indent=2) if args.json else render(findings))
    return 1 if any(f.status == FAIL for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
