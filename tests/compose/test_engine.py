"""scripts/docker-engine.sh: it uses a daemon that answers and never stops one it did not start."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _engine(home: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(home / "scripts" / "docker-engine.sh"), command], capture_output=True, text=True,
                          timeout=120)


def test_a_daemon_that_answers_is_used_and_never_stopped(tmp_path):
    """`make test` started the engine (or found one): a second `start` uses it, a `stop` from a checkout
    that started nothing leaves it running."""
    assert subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0, \
        "no Docker daemon answers: make test starts one (scripts/docker-engine.sh start)"
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "docker-engine.sh", tmp_path / "scripts")
    started = _engine(tmp_path, "start")
    assert started.returncode == 0 and "a Docker daemon answers" in started.stdout, started.stdout + started.stderr
    assert not (tmp_path / "var" / "docker-engine" / "dockerd.pid").exists()
    stopped = _engine(tmp_path, "stop")
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stdout
    assert subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def test_the_base_image_is_there_or_made(tmp_path):
    """debian:bookworm-slim: pulled by users with a registry, made with debootstrap here; present either way."""
    result = _engine(ROOT, "base")
    assert result.returncode == 0, result.stdout + result.stderr
    inspect = subprocess.run(["docker", "image", "inspect", "-f", "{{.Os}} {{.Config.Cmd}}", "debian:bookworm-slim"],
                             capture_output=True, text=True)
    assert inspect.returncode == 0 and inspect.stdout.startswith("linux"), inspect.stderr
    release = subprocess.run(["docker", "run", "--rm", "debian:bookworm-slim", "cat", "/etc/debian_version"],
                             capture_output=True, text=True, timeout=120)
    assert release.stdout.startswith("12."), release.stdout + release.stderr
