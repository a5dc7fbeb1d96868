"""Validate a batch of records against a data contract and report every violation.

Hard rules (severity "error") reject the batch; soft rules ("warning") are reported and the
batch goes on (missing values the model imputes, the capped target, rare categories).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstack.contract import DataContract, Feature

EXAMPLES = 5


@dataclass(frozen=True)
class Violation:
    """One rule broken by `count` rows (or by the table) in one column."""

    column: str | None
    rule: str
    count: int
    message: str
    examples: tuple[Any, ...] = ()
    severity: str = "error"


@dataclass
class ValidationReport:
    """All violations of one batch, and the typed frame when the batch passed."""

    n_rows: int
    violations: list[Violation] = field(default_factory=list)
    frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "ok": self.ok, "violations": [asdict(v) for v in self.violations]}

    def summary(self) -> str:
        """Return one line per violation, errors first."""
        lines = [f"{self.n_rows} rows: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        for v in [*self.errors, *self.warnings]:
            examples = f" e.g. {', '.join(repr(e) for e in v.examples)}" if v.examples else ""
            lines.append(f"  {v.severity.upper():7} {v.column or '(table)'} [{v.rule}] {v.count} row(s): {v.message}{examples}")
        return "\n".join(lines)


class ValidationError(ValueError):
    """A batch broke hard rules of the contract; `report` says which."""

    def __init__(self, report: ValidationReport, source: str = "batch") -> None:
        self.report = report
        super().__init__(f"{source} failed validation:\n{report.summary()}")


def _examples(values: pd.Series) -> tuple[Any, ...]:
    out = []
    for v in values.drop_duplicates().head(EXAMPLES).tolist():
        out.append(v.item() if isinstance(v, np.generic) else v)
    return tuple(out)


def _numeric(series: pd.Series, feature_name: str, violations: list[Violation]) -> pd.Series:
    """Coerce a column to float64 and report values that are not numbers."""
    if pd.api.types.is_bool_dtype(series):
        violations.append(Violation(feature_name, "dtype", int(series.notna().sum()),
                                    "must be a number, not true/false", _examples(series)))
        return pd.Series(np.nan, index=series.index, dtype="float64")
    coerced = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & coerced.isna()
    if bad.any():
        violations.append(Violation(feature_name, "dtype", int(bad.sum()), "must be a number", _examples(series[bad])))
    return coerced.astype("float64")


def _check_numeric(feature: Feature, values: pd.Series, violations: list[Violation]) -> None:
    present = values.dropna()
    infinite = present[~np.isfinite(present)]
    if len(infinite):
        violations.append(Violation(feature.name, "finite", len(infinite), "must be a finite number", _examples(infinite)))
    finite = present[np.isfinite(present)]
    if feature.dtype == "int":
        fractional = finite[finite != np.round(finite)]
        if len(fractional):
            violations.append(Violation(feature.name, "integer", len(fractional), "must be a whole number",
                                        _examples(fractional)))
    if feature.minimum is not None:
        low = finite[finite < feature.minimum]
        if len(low):
            violations.append(Violation(feature.name, "minimum", len(low), f"must be at least {feature.minimum:g}",
                                        _examples(low)))
    if feature.maximum is not None:
        high = finite[finite > feature.maximum]
        if len(high):
            violations.append(Violation(feature.name, "maximum", len(high), f"must be at most {feature.maximum:g}",
                                        _examples(high)))


def validate_frame(df: pd.DataFrame, contract: DataContract, *, require_target: bool = True) -> ValidationReport:
    """Check `df` against `contract`; return a report (with a typed copy of `df` when it passed)."""
    violations: list[Violation] = []
    report = ValidationReport(n_rows=len(df), violations=violations)
    expected = contract.columns if require_target else contract.feature_names
    allowed = set(contract.columns)

    missing = [c for c in expected if c not in df.columns]
    for col in missing:
        violations.append(Violation(col, "missing_column", report.n_rows, "required column is missing"))
    for col in df.columns:
        if col not in allowed:
            violations.append(Violation(str(col), "unexpected_column", report.n_rows,
                                        f"is not part of the {contract.name} contract"))
    if len(df) == 0:
        violations.append(Violation(None, "no_rows", 0, "the batch has no rows"))

    typed: dict[str, pd.Series] = {}
    for feature in contract.features:
        if feature.name not in df.columns:
            continue
        raw = df[feature.name]
        if feature.is_numeric:
            values = _numeric(raw, feature.name, violations)
            _check_numeric(feature, values, violations)
        else:
            values = raw.astype("string").str.strip()
            unknown = values.notna() & ~values.isin(feature.categories)
            if unknown.any():
                violations.append(Violation(feature.name, "category", int(unknown.sum()),
                                            f"must be {feature.describe_range()}", _examples(values[unknown])))
            counts = values.value_counts()
            rare = [c for c in feature.categories if 0 < counts.get(c, 0) < contract.rare_category_min_count]
            for cat in rare:
                violations.append(Violation(feature.name, "rare_category", int(counts[cat]),
                                            f"category {cat!r} has fewer than {contract.rare_category_min_count} rows;"
                                            " its segment metrics are noisy", (cat,), "warning"))
            values = values.astype(object).where(values.notna(), None)
        nulls = int(raw.isna().sum())
        if nulls:
            if feature.nullable:
                violations.append(Violation(feature.name, "null", nulls, "missing values are imputed by the model",
                                            severity="warning"))
            else:
                violations.append(Violation(feature.name, "null", nulls, "must not be empty"))
        typed[feature.name] = values

    target = contract.target
    if require_target and target.name in df.columns:
        y = _numeric(df[target.name], target.name, violations)
        nulls = int(df[target.name].isna().sum())
        if nulls:
            violations.append(Violation(target.name, "null", nulls, "the target must not be empty"))
        finite = y.dropna()
        bad = finite[~np.isfinite(finite) | (finite < target.minimum) | (finite > target.maximum)]
        if len(bad):
            violations.append(Violation(target.name, "range", len(bad),
                                        f"must be a number from {target.minimum:g} to {target.maximum:g}",
                                        _examples(bad)))
        if target.cap is not None:
            capped = int((finite >= target.cap).sum())
            if capped:
                violations.append(Violation(target.name, "capped", capped,
                                            f"values at the source's cap ({target.cap:g}) are censored; kept in training",
                                            severity="warning"))
        typed[target.name] = y

    if report.ok:
        report.frame = pd.DataFrame(typed, index=df.index)[[c for c in contract.columns if c in typed]]
    return report


def validate_records(records: list[dict[str, Any]], contract: DataContract) -> ValidationReport:
    """Validate feature records (no target) as a batch."""
    return validate_frame(pd.DataFrame.from_records(records), contract, require_target=False)
