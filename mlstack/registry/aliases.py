"""Move registry aliases: the one code path, which checks artifacts and writes the audit trail.

Every alias change in the stack (training, promotion, rollback, by hand) goes through
`move_alias`, so none can bypass the artifact check or the `model_events` record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlstack.db.events import EventStore, ModelEvent
from mlstack.db.schema import model_events

if TYPE_CHECKING:  # a client is handed in: reading the audit trail (the status page) never loads MLflow
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"


class MissingArtifacts(RuntimeError):
    """A model version's artifacts cannot be found in the artifact store."""


def read_aliases(client: MlflowClient, model_name: str) -> dict[str, str]:
    """Return alias → version (as str) of a registered model; {} when it is not registered."""
    try:
        model = client.get_registered_model(model_name)
    except Exception as exc:  # an MlflowException, told by its code
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


@dataclass
class Registry:
    """One registered model, the client that reaches it and the audit trail of its moves."""

    client: MlflowClient
    model_name: str
    events: EventStore

    def alias_version(self, alias: str) -> str | None:
        """Return the version an alias points at, as a string (REST gives str, local int)."""
        return read_aliases(self.client, self.model_name).get(alias)

    def aliases(self) -> dict[str, str]:
        """Return every alias of the model → version ({} when the model is not registered)."""
        return read_aliases(self.client, self.model_name)

    def artifacts_present(self, version: str) -> bool:
        """Return True if the version's MLmodel file is listed in the artifact store."""
        import mlflow.artifacts

        uri = self.client.get_model_version_download_uri(self.model_name, version)
        try:
            # mlflow-artifacts:/ URIs resolve through a tracking server: this registry's, not a global one
            files = mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=self.client.tracking_uri)
        except Exception as exc:  # noqa: BLE001 - any store error means "cannot confirm"
            log.warning("cannot list artifacts of %s v%s at %s: %s", self.model_name, version, uri, exc)
            return False
        return any(f.path.rsplit("/", 1)[-1] == "MLmodel" for f in files or [])


def move_alias(registry: Registry, alias: str, version: str | None, *, actor: str, reason: str,
               metrics: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
               dry_run: bool = False) -> dict[str, Any] | None:
    """Point `alias` at `version` (None removes it) and record the move; return the event row.

    A no-op (alias already there) records nothing and returns None. A version whose artifacts
    are missing is refused. The event is committed only if MLflow accepted the move; if the
    commit then fails, the alias is put back.
    """
    version = None if version is None else str(version)
    before = registry.alias_version(alias)
    if before == version:
        return None
    if version is not None and not registry.artifacts_present(version):
        raise MissingArtifacts(
            f"refusing to point {registry.model_name}@{alias} at version {version}: its artifacts are missing"
        )
    action = "set_alias" if version is not None else "remove_alias"
    event = ModelEvent(actor=actor, action=action, model_name=registry.model_name, reason=reason, alias=alias,
                       version_before=before, version_after=version, metrics=metrics or {},
                       details=details or {}, dry_run=dry_run)
    if dry_run:
        return registry.events.append(event)
    moved = False
    try:
        with registry.events.appending(event) as row:
            if version is None:
                registry.client.delete_registered_model_alias(registry.model_name, alias)
            else:
                registry.client.set_registered_model_alias(registry.model_name, alias, version)
            moved = True
    except Exception:
        if moved:  # MLflow moved, the audit row did not commit: undo the move
            log.error("audit write failed after moving %s@%s; restoring version %s", registry.model_name, alias, before)
            if before is None:
                registry.client.delete_registered_model_alias(registry.model_name, alias)
            else:
                registry.client.set_registered_model_alias(registry.model_name, alias, before)
        raise
    log.info("%s@%s: %s -> %s (%s)", registry.model_name, alias, before, version, reason)
    return row


def transition_kinds(model_name: str) -> tuple[Any, dict[str, Any]]:
    """The alias moves that are transitions (not dry runs), and how to tell each kind: one definition."""
    e = model_events.c
    moves = sa.and_(e.model_name == model_name, e.action.in_(("set_alias", "remove_alias")), e.dry_run.is_(False))
    kinds = {"rollback": sa.and_(e.alias == CHAMPION, e.reason.like("rollback from %")),
             "promotion": sa.and_(e.alias == CHAMPION, e.reason.like("judge (event #%")),
             "retirement": sa.and_(e.alias == CHALLENGER, e.version_after.is_(None), e.reason.like("judge (event #%"))}
    return moves, kinds


def transition_events(engine: sa.Engine, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest promotions, retirements and rollbacks (alias moves), each with its `transition` kind."""
    moves, kinds = transition_kinds(model_name)
    kind = sa.case(*((cond, name) for name, cond in kinds.items()), else_=None).label("transition")
    query = (sa.select(model_events, kind).where(moves, sa.or_(*kinds.values()))
             .order_by(model_events.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
