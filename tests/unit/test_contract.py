import pandas as pd
import pytest

from mlstack.contract import DataContract, Feature, Ratio, Target
from mlstack.contracts import get_contract


def test_contract_matches_the_shipped_data(contract, housing):
    assert sorted(housing.columns) == sorted(contract.columns)
    assert contract.target.name == "median_house_value"
    assert contract.segment == "ocean_proximity"


def test_every_feature_has_what_the_form_needs(contract):
    for f in contract.features:
        assert f.label and f.description, f.name
        assert f.default is not None, f.name
        if f.is_numeric:
            assert f.unit and f.minimum is not None and f.maximum is not None, f.name
            assert f.minimum <= f.default <= f.maximum, f.name
        else:
            assert f.default in f.categories


def test_ranges_cover_every_real_value(contract, housing):
    for f in contract.features:
        col = housing[f.name]
        if f.is_numeric:
            assert col.min() >= f.minimum and col.max() <= f.maximum, f.name
        else:
            assert set(col.unique()) <= set(f.categories), f.name
        assert f.nullable or col.notna().all(), f.name


def test_describe_range_reads_naturally(contract):
    assert contract.feature("housing_median_age").describe_range() == "a whole number from 0 to 100"
    assert contract.feature("ocean_proximity").describe_range().startswith("one of '<1H OCEAN'")


def test_example_record_is_valid(contract):
    from mlstack.validation import validate_records

    report = validate_records([contract.example()], contract)
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"features": (Feature("a", "float", "A", "a"), Feature("a", "float", "A", "a"))}, "repeats"),
        ({"features": (Feature("y", "float", "Y", "y"),)}, "also a feature"),
        ({"segment": "nope"}, "segment"),
        ({"ratios": (Ratio("r", "a", "missing"),)}, "ratio"),
    ],
)
def test_inconsistent_contracts_are_refused(kwargs, message):
    base = {"name": "t", "title": "t", "features": (Feature("a", "float", "A", "a"),),
            "target": Target("y", "Y", "u", 0, 1)}
    with pytest.raises(ValueError, match=message):
        DataContract(**{**base, **kwargs})


def test_feature_rules_are_checked():
    with pytest.raises(ValueError, match="needs categories"):
        Feature("c", "category", "C", "c")
    with pytest.raises(ValueError, match="minimum"):
        Feature("n", "float", "N", "n", minimum=2, maximum=1)


def test_unknown_contract_names_the_setting():
    with pytest.raises(ValueError, match="DATA_CONTRACT"):
        get_contract("nope")


def test_no_column_name_literal_outside_the_contract():
    """Column names are spelled once: in the contract module (and data docs/fixtures)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "mlstack"
    names = [f.name for f in get_contract("california_housing").features] + ["median_house_value"]
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent.name == "contracts":
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {n}" for n in names if f'"{n}"' in text or f"'{n}'" in text]
    assert offenders == []


def test_frame_columns_helpers(contract):
    assert contract.numeric_features[:2] == ["longitude", "latitude"]
    assert contract.categorical_features == ["ocean_proximity"]
    assert pd.Index(contract.columns).is_unique
