"""Build model inputs from contract features: derived ratios, imputation, encoding.

Everything here runs inside the fitted model pipeline, so a served model takes raw contract
features and training and serving can never disagree on a transformation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlstack.contract import DataContract


class RatioFeatures(TransformerMixin, BaseEstimator):
    """Append numerator/denominator columns; a zero or missing denominator gives NaN (imputed later)."""

    def __init__(self, ratios: tuple[tuple[str, str, str], ...] = ()) -> None:
        self.ratios = ratios

    def fit(self, X: pd.DataFrame, y: object = None) -> RatioFeatures:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        for name, numerator, denominator in self.ratios:
            num = pd.to_numeric(out[numerator], errors="coerce").astype("float64")
            den = pd.to_numeric(out[denominator], errors="coerce").astype("float64")
            out[name] = (num / den.where(den > 0)).astype("float64")
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([*self.feature_names_in_, *(r[0] for r in self.ratios)], dtype=object)


def ratio_specs(contract: DataContract) -> tuple[tuple[str, str, str], ...]:
    return tuple((r.name, r.numerator, r.denominator) for r in contract.ratios)


def preprocessor(contract: DataContract, *, scale: bool) -> Pipeline:
    """Return ratios → (impute, optionally scale) numerics + one-hot categories."""
    numeric_cols = [*contract.numeric_features, *(r.name for r in contract.ratios)]
    numeric_steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    columns = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric_cols),
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), contract.categorical_features),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("ratios", RatioFeatures(ratio_specs(contract))), ("columns", columns)])


def model_input(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """Return the feature columns typed as the model signature expects (numerics as float64)."""
    out = frame[contract.feature_names].copy()
    for name in contract.numeric_features:
        out[name] = out[name].astype("float64")
    for name in contract.categorical_features:
        out[name] = out[name].astype(object)
    return out
