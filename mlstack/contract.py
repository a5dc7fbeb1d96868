"""Define the data contract: the one description of features, target and prediction.

Training, batch validation, the request validator, the web form, drift checks and load tests
all read a `DataContract`; no column name is spelled anywhere else. Concrete contracts live in
`mlstack.contracts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Dtype = Literal["float", "int", "category"]


@dataclass(frozen=True)
class Feature:
    """One input column: its type, allowed values and how a person should see it."""

    name: str
    dtype: Dtype
    label: str
    description: str
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    default: float | int | str | None = None

    def __post_init__(self) -> None:
        if self.dtype == "category" and not self.categories:
            raise ValueError(f"categorical feature {self.name!r} needs categories")
        if self.dtype != "category" and self.categories:
            raise ValueError(f"numeric feature {self.name!r} cannot have categories")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"feature {self.name!r}: minimum {self.minimum} > maximum {self.maximum}")

    @property
    def is_numeric(self) -> bool:
        return self.dtype != "category"

    def describe_range(self) -> str:
        """Return the allowed values in words, for error messages and the form."""
        if not self.is_numeric:
            return "one of " + ", ".join(repr(c) for c in self.categories)
        kind = "a whole number" if self.dtype == "int" else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{kind} of at least {self.minimum:g}"
        if self.maximum is not None:
            return f"{kind} of at most {self.maximum:g}"
        return kind


@dataclass(frozen=True)
class Target:
    """The column the model predicts, with its unit and the cap the source data applies."""

    name: str
    label: str
    unit: str
    minimum: float
    maximum: float
    cap: float | None = None


@dataclass(frozen=True)
class Ratio:
    """A derived feature, numerator / denominator, computed inside the model pipeline."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class DataContract:
    """Everything the stack knows about one tabular regression problem."""

    name: str
    title: str
    features: tuple[Feature, ...]
    target: Target
    prediction: str = "prediction"
    segment: str | None = None
    ratios: tuple[Ratio, ...] = ()
    rare_category_min_count: int = 20
    notes: str = ""
    # Where the data comes from (the pages' footer and the result page's note), and what one record is.
    data_source: str = ""
    record_label: str = "records"
    # How `scripts/simulate.py --scenario drift` shifts inputs: (numeric feature, factor, offset).
    simulated_drift: tuple[tuple[str, float, float], ...] = ()
    _index: dict[str, Feature] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"contract {self.name!r} repeats a feature name")
        if self.target.name in names:
            raise ValueError(f"contract {self.name!r}: the target {self.target.name!r} is also a feature")
        self._index.update({f.name: f for f in self.features})
        if self.segment is not None and self.segment not in self._index:
            raise ValueError(f"contract {self.name!r}: segment {self.segment!r} is not a feature")
        for name, _, _ in self.simulated_drift:
            if name not in self._index or not self._index[name].is_numeric:
                raise ValueError(f"contract {self.name!r}: simulated drift needs numeric feature {name!r}")
        for ratio in self.ratios:
            for col in (ratio.numerator, ratio.denominator):
                if col not in self._index or not self._index[col].is_numeric:
                    raise ValueError(f"ratio {ratio.name!r} needs numeric feature {col!r}")

    def feature(self, name: str) -> Feature:
        return self._index[name]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if not f.is_numeric]

    @property
    def columns(self) -> list[str]:
        """Return the columns of a labelled training file: features then target."""
        return [*self.feature_names, self.target.name]

    def example(self) -> dict[str, Any]:
        """Return one valid record built from the features' defaults."""
        return {f.name: f.default for f in self.features}
