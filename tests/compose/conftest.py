"""The Compose file as the Compose CLI resolves it, for the offline checks (no engine needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose_config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` of docker-compose.yml with `env_file`, every profile included."""
    from mlstack.compose.stack import compose_cli

    cli = compose_cli()
    profiles = ["--profile", "*"] if cli == ["docker", "compose"] else []
    return subprocess.run([*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file),
                           *profiles, "config", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="session")
def env_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "init-env.py"), "--env", str(path)], check=True,
                   capture_output=True)
    return path


@pytest.fixture(scope="session")
def config(env_file) -> dict:
    """The fully interpolated configuration, every profile included."""
    result = compose_config(env_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
