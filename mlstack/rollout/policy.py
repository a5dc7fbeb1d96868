"""Load the judge's policy file into a `Policy`, with its sha256 for the audit trail."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from mlstack.rollout.judge import GuardPolicy, Guardrails, LabelPolicy, Mixing, Policy

DEFAULT = Path(__file__).with_name("policy.yaml")


class PolicyError(ValueError):
    """The policy file is missing, malformed, or holds an unknown or out-of-range setting."""


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise PolicyError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    missing = set(known) - set(data)
    if missing:
        raise PolicyError(f"{where}: missing setting(s) {', '.join(sorted(missing))}")
    values = {}
    nested = {"guardrails": Guardrails, "mixing": Mixing, "guard": GuardPolicy, "labels": LabelPolicy}
    for name, value in data.items():
        if name in nested and cls is Policy:
            if not isinstance(value, dict):
                raise PolicyError(f"{where}.{name}: must be a mapping")
            values[name] = _build(nested[name], value, f"{where}.{name}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PolicyError(f"{where}.{name}: must be a number, got {value!r}")
        elif value < 0:
            raise PolicyError(f"{where}.{name}: must not be negative, got {value}")
        else:
            values[name] = value
    return cls(**values)


def parse_policy(text: str, where: str = "policy") -> Policy:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: must be a mapping of settings")
    data = {k: v for k, v in data.items() if k != "drift"}  # monitor_drift's section (mlstack.monitoring.drift)
    policy = _build(Policy, data, where)
    for name in ("alpha", "alpha_regression", "alpha_retire", "srm_p_value"):
        if not 0 < getattr(policy, name) < 0.5:
            raise PolicyError(f"{where}.{name}: must be between 0 and 0.5, got {getattr(policy, name)}")
    return policy


def policy_from_dict(data: dict[str, Any]) -> Policy:
    """Rebuild a policy stored in the audit trail (one stored before `labels` existed counted every label)."""
    if "labels" not in data:
        data = {**data, "labels": {"max_per_sender": 1 << 62, "max_per_address": 1 << 62, "implausible_error_ratio": 1e300}}
    return _build(Policy, data, "stored policy")


def load_policy(path: Path | str | None = None) -> tuple[Policy, str]:
    """Return (policy, sha256 of the file's bytes)."""
    path = Path(path) if path else DEFAULT
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read the judge policy {path}: {exc}") from exc
    return parse_policy(raw.decode(), str(path)), hashlib.sha256(raw).hexdigest()
