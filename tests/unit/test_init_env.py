import importlib.util
import stat
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("init_env", ROOT / "scripts" / "init-env.py")
init_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(init_env)


def test_generates_secrets_once_and_keeps_values(tmp_path):
    env = tmp_path / ".env"
    changed = init_env.init_env(ROOT / ".env.example", env)
    assert set(changed) == init_env.secret_names(ROOT / ".env.example")
    assert {"S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD"} <= set(changed)
    values = init_env.parse(env)
    assert all(len(values[n]) >= 16 for n in changed)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    env.write_text(env.read_text().replace("MODEL_NAME=house-price", "MODEL_NAME=mine"))
    assert init_env.init_env(ROOT / ".env.example", env) == []
    again = init_env.parse(env)
    assert again["MODEL_NAME"] == "mine" and again["S3_SECRET_ACCESS_KEY"] == values["S3_SECRET_ACCESS_KEY"]


def test_example_has_no_secret_values():
    values = init_env.parse(ROOT / ".env.example")
    assert all(values[n] == "" for n in init_env.secret_names(ROOT / ".env.example"))


def test_two_runs_generate_different_secrets(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    init_env.init_env(ROOT / ".env.example", a)
    init_env.init_env(ROOT / ".env.example", b)
    assert init_env.parse(a)["S3_SECRET_ACCESS_KEY"] != init_env.parse(b)["S3_SECRET_ACCESS_KEY"]
