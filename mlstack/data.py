"""Load a labelled CSV, fingerprint it, and split it into train, validation and holdout.

The split is by a seeded hash of each row's feature values, not by a shuffled position: a row
stays on the same side when rows are added or reordered, so every model's holdout metrics are
comparable, and duplicate rows can never straddle train and holdout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlstack.contract import DataContract
from mlstack.validation import ValidationError, ValidationReport, Violation, validate_frame

# Hash buckets per row; fractions are resolved to 1/10,000.
BUCKETS = 10_000


class DataError(ValueError):
    """The data file cannot be read as a table."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV as given (no type coercion beyond pandas' own); raise DataError if unreadable."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        return pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV: {exc}") from exc


@dataclass(frozen=True)
class Dataset:
    """A validated, typed table and where it came from."""

    frame: pd.DataFrame
    path: Path
    sha256: str
    report: ValidationReport


def load_dataset(path: Path, contract: DataContract) -> Dataset:
    """Read and validate a labelled CSV; raise ValidationError naming every broken rule."""
    raw = read_csv(path)
    if raw.shape[1] == 0:
        report = ValidationReport(0, [Violation(None, "no_rows", 0, "the file has no header and no rows")])
        raise ValidationError(report, str(path))
    report = validate_frame(raw, contract)
    if not report.ok:
        raise ValidationError(report, str(path))
    assert report.frame is not None
    return Dataset(frame=report.frame, path=path, sha256=file_sha256(path), report=report)


def _row_buckets(df: pd.DataFrame, contract: DataContract, seed: int, salt: str) -> np.ndarray:
    key = hashlib.sha256(f"{seed}:{salt}".encode()).hexdigest()[:16]
    hashes = pd.util.hash_pandas_object(df[contract.feature_names], index=False, hash_key=key).to_numpy(dtype="uint64")
    if not contract.categorical_features:
        # pandas applies hash_key to text columns only: without one, the seed and the salt would not
        # matter (the validation split would be empty). Mix the key in here; contracts with a text
        # column keep exactly the split they always had, so their registered holdouts stay comparable.
        hashes = pd.util.hash_array(hashes ^ np.uint64(int(key, 16)))
    return (hashes % BUCKETS).astype("int64")


@dataclass(frozen=True)
class Split:
    """Train (for fitting), validation (for model selection) and holdout (for the registry)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def train_full(self) -> pd.DataFrame:
        """Return train + validation, for the final refit."""
        return pd.concat([self.train, self.validation])

    def holdout_sha256(self, contract: DataContract) -> str:
        """Fingerprint the holdout rows (order-free): equal fingerprints mean comparable metrics."""
        hashes = np.sort(pd.util.hash_pandas_object(self.holdout[contract.columns], index=False).to_numpy())
        return hashlib.sha256(hashes.tobytes()).hexdigest()


def split(df: pd.DataFrame, contract: DataContract, *, seed: int, holdout_fraction: float,
          validation_fraction: float) -> Split:
    """Split rows by seeded hash; `validation_fraction` is taken from what is left after the holdout."""
    holdout = _row_buckets(df, contract, seed, "holdout") < round(holdout_fraction * BUCKETS)
    validation = ~holdout & (_row_buckets(df, contract, seed, "validation") < round(validation_fraction * BUCKETS))
    return Split(train=df[~holdout & ~validation], validation=df[validation], holdout=df[holdout])
