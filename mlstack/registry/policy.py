"""Decide which alias a newly trained model gets, and promote a champion. One module, one policy.

- The first model becomes `champion`.
- A later model that beats the champion on the same holdout (RMSE lower by more than
  PROMOTION_MIN_IMPROVEMENT, relative) becomes `challenger`, unless the current challenger is
  better still; it does not replace the champion: live A/B evaluation decides that.
- Otherwise it is registered with no alias.
- When the champion changes, the old champion keeps the alias `previous_champion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlstack.registry.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, Registry, move_alias


@dataclass(frozen=True)
class Incumbent:
    """A model holding an alias, scored on the candidate's holdout."""

    alias: str
    version: str
    rmse: float


@dataclass(frozen=True)
class RegistrationDecision:
    alias: str | None
    reason: str


def decide_registration(candidate_rmse: float, champion: Incumbent | None, challenger: Incumbent | None,
                        min_improvement: float = 0.0) -> RegistrationDecision:
    """Return the alias a new model earns by its holdout RMSE (pure; no I/O)."""
    if champion is None:
        return RegistrationDecision(CHAMPION, "first model: there is no champion yet")
    threshold = champion.rmse * (1.0 - min_improvement)
    if not candidate_rmse < threshold:
        return RegistrationDecision(
            None,
            f"does not beat champion v{champion.version}: RMSE {candidate_rmse:,.1f} >= {threshold:,.1f}"
            + (f" (champion {champion.rmse:,.1f} less {min_improvement:.1%})" if min_improvement else ""),
        )
    if challenger is not None and not candidate_rmse < challenger.rmse:
        return RegistrationDecision(
            None,
            f"beats champion v{champion.version} but not challenger v{challenger.version}: "
            f"RMSE {candidate_rmse:,.1f} >= {challenger.rmse:,.1f}",
        )
    return RegistrationDecision(
        CHALLENGER,
        f"beats champion v{champion.version} on the same holdout: RMSE {candidate_rmse:,.1f} < {champion.rmse:,.1f}",
    )


def apply_registration(registry: Registry, version: str, decision: RegistrationDecision, *, actor: str,
                       metrics: dict[str, Any], details: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Carry out a registration decision through `move_alias`; return the events written."""
    if decision.alias == CHAMPION:
        return set_champion(registry, version, actor=actor, reason=decision.reason, metrics=metrics, details=details)
    if decision.alias == CHALLENGER:
        row = move_alias(registry, CHALLENGER, version, actor=actor, reason=decision.reason, metrics=metrics,
                         details=details)
        return [row] if row else []
    return []


def set_champion(registry: Registry, version: str, *, actor: str, reason: str, metrics: dict[str, Any],
                 details: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Make `version` the champion; the old champion becomes `previous_champion`.

    The champion is moved first, so the registry is never without one. A challenger alias on
    the same version is removed (it has been promoted).
    """
    rows = []
    old = registry.alias_version(CHAMPION)
    if old == str(version):
        return rows
    rows.append(move_alias(registry, CHAMPION, version, actor=actor, reason=reason, metrics=metrics, details=details))
    if old is not None:
        rows.append(move_alias(registry, PREVIOUS_CHAMPION, old, actor=actor,
                               reason=f"v{old} replaced as champion by v{version}", metrics=metrics, details=details))
    if registry.alias_version(CHALLENGER) == str(version):
        rows.append(move_alias(registry, CHALLENGER, None, actor=actor,
                               reason=f"v{version} promoted to champion", metrics=metrics, details=details))
    return [r for r in rows if r]
