import pandas as pd

from mlstack.data import file_sha256, split
from tests.conftest import DATA

SHIPPED_SHA = "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e"


def test_shipped_data_is_the_documented_file():
    assert file_sha256(DATA) == SHIPPED_SHA


def _split(df, contract, seed=42):
    return split(df, contract, seed=seed, holdout_fraction=0.2, validation_fraction=0.2)


def test_split_fractions_and_disjointness(contract, housing):
    parts = _split(housing, contract)
    n = len(housing)
    assert abs(len(parts.holdout) / n - 0.2) < 0.02
    assert abs(len(parts.validation) / (n - len(parts.holdout)) - 0.2) < 0.02
    idx = [set(p.index) for p in (parts.train, parts.validation, parts.holdout)]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
    assert sum(len(i) for i in idx) == n


def test_holdout_is_stable_across_runs_reordering_and_added_rows(contract, housing):
    first = _split(housing, contract)
    shuffled = _split(housing.sample(frac=1.0, random_state=7), contract)
    assert first.holdout_sha256(contract) == shuffled.holdout_sha256(contract)
    # Adding rows never moves an existing row across the split.
    grown = pd.concat([housing, housing.head(500).assign(median_income=lambda d: d.median_income + 0.01)])
    grown = grown.reset_index(drop=True)
    again = _split(grown, contract)
    old_keys = set(map(tuple, first.holdout[contract.feature_names].astype(str).values))
    new_keys = set(map(tuple, again.holdout[contract.feature_names].astype(str).values))
    assert old_keys <= new_keys


def test_seed_changes_the_split(contract, housing):
    assert _split(housing, contract, 1).holdout_sha256(contract) != _split(housing, contract, 2).holdout_sha256(contract)


def test_duplicate_rows_land_on_the_same_side(contract, housing):
    doubled = pd.concat([housing, housing]).reset_index(drop=True)
    parts = _split(doubled, contract)
    hold = set(map(tuple, parts.holdout[contract.feature_names].astype(str).values))
    train = set(map(tuple, parts.train_full[contract.feature_names].astype(str).values))
    assert not (hold & train)
