"""Describe a registered model's versions for people: aliases, family, holdout metrics.

Read by `python -m mlstack registry show` and by the web status page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlstack.registry.aliases import read_aliases

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


@dataclass(frozen=True)
class VersionInfo:
    """One model version as the registry describes it (metrics from the tags training writes)."""

    version: str
    created: datetime
    aliases: tuple[str, ...] = ()
    family: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rmse(self) -> float | None:
        return self.metrics.get("holdout_rmse")

    @property
    def mae(self) -> float | None:
        return self.metrics.get("holdout_mae")

    @property
    def r2(self) -> float | None:
        return self.metrics.get("holdout_r2")

    @property
    def family_label(self) -> str:
        return (self.family or "unknown model").replace("_", " ")


def versions(client: MlflowClient, model_name: str) -> list[VersionInfo]:
    """Return every version of `model_name`, newest first ([] when it is not registered)."""
    by_version: dict[str, list[str]] = {}
    # search results carry no aliases: take them from the registered model
    for alias, version in read_aliases(client, model_name).items():
        by_version.setdefault(version, []).append(alias)
    out = []
    for v in client.search_model_versions(f"name='{model_name}'"):
        tags = v.tags or {}
        metrics = {}
        for key in ("holdout_rmse", "holdout_mae", "holdout_r2"):
            try:
                metrics[key] = float(tags[key])
            except (KeyError, ValueError):
                pass
        out.append(VersionInfo(
            version=str(v.version), created=datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
            aliases=tuple(sorted(by_version.get(str(v.version), []))), family=tags.get("model_family"),
            run_id=tags.get("run_id") or v.run_id, metrics=metrics,
        ))
    return sorted(out, key=lambda v: -int(v.version))


def by_alias(infos: list[VersionInfo]) -> dict[str, VersionInfo]:
    """Return alias → version info."""
    return {alias: info for info in infos for alias in info.aliases}
