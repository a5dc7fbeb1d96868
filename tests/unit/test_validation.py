import numpy as np
import pytest

from mlstack.data import load_dataset
from mlstack.validation import validate_frame, validate_records


def rules(report):
    return {(v.column, v.rule, v.severity) for v in report.violations}


def test_real_data_passes_with_its_quirks_reported(contract, housing):
    report = validate_frame(housing, contract)
    assert report.ok
    by_rule = {(v.column, v.rule): v for v in report.warnings}
    assert by_rule[("total_bedrooms", "null")].count == 207
    assert by_rule[("median_house_value", "capped")].count == 965
    assert by_rule[("ocean_proximity", "rare_category")].count == 5
    assert report.frame is not None and report.frame.shape == (20640, 10)
    assert report.frame["housing_median_age"].dtype == np.float64


def test_missing_and_extra_columns(contract, sample):
    df = sample.drop(columns=["median_income"]).assign(colour="red")
    report = validate_frame(df, contract)
    assert not report.ok
    assert ("median_income", "missing_column", "error") in rules(report)
    assert ("colour", "unexpected_column", "error") in rules(report)
    assert report.frame is None


def test_wrong_dtype_names_column_count_and_examples(contract, sample):
    df = sample.astype({"population": object})
    df.loc[[3, 7, 9], "population"] = ["many", "n/a", "many"]
    report = validate_frame(df, contract)
    (v,) = [v for v in report.errors if v.rule == "dtype"]
    assert (v.column, v.count) == ("population", 3)
    assert set(v.examples) == {"many", "n/a"}


def test_out_of_range_values_both_sides(contract, sample):
    sample.loc[0, "latitude"] = 10.0
    sample.loc[1, "latitude"] = 99.0
    sample.loc[2, "median_income"] = -1
    report = validate_frame(sample, contract)
    found = {(v.column, v.rule, v.count) for v in report.errors}
    assert {("latitude", "minimum", 1), ("latitude", "maximum", 1), ("median_income", "minimum", 1)} <= found


def test_non_integer_count_and_infinity(contract, sample):
    sample["total_rooms"] = sample["total_rooms"].astype(float)
    sample.loc[0, "total_rooms"] = 10.5
    sample.loc[1, "households"] = np.inf
    report = validate_frame(sample, contract)
    assert ("total_rooms", "integer", "error") in rules(report)
    assert ("households", "finite", "error") in rules(report)


def test_unknown_category_and_non_nullable_nulls(contract, sample):
    sample.loc[0, "ocean_proximity"] = "MOON"
    sample.loc[1, "households"] = None
    report = validate_frame(sample, contract)
    assert ("ocean_proximity", "category", "error") in rules(report)
    assert ("households", "null", "error") in rules(report)


def test_target_rules(contract, sample):
    sample.loc[0, "median_house_value"] = -5
    sample.loc[1, "median_house_value"] = None
    report = validate_frame(sample, contract)
    assert ("median_house_value", "range", "error") in rules(report)
    assert ("median_house_value", "null", "error") in rules(report)


def test_no_rows(contract, sample):
    report = validate_frame(sample.iloc[0:0], contract)
    assert ("no_rows" in {v.rule for v in report.errors}) and not report.ok


def test_every_violation_is_reported_at_once(contract, sample):
    sample.loc[0, "latitude"] = 99.0
    sample.loc[1, "ocean_proximity"] = "MOON"
    df = sample.drop(columns=["households"])
    report = validate_frame(df, contract)
    assert {v.rule for v in report.errors} >= {"maximum", "category", "missing_column"}
    text = report.summary()
    assert "latitude [maximum] 1 row(s): must be at most 42" in text
    assert "households [missing_column]" in text


def test_records_without_target(contract):
    good = contract.example()
    bad = {**good, "housing_median_age": "old"}
    report = validate_records([good, bad], contract)
    assert [(v.column, v.rule) for v in report.errors] == [("housing_median_age", "dtype")]


@pytest.mark.parametrize(
    "content, rule",
    [
        ("", "no_rows"),
        ("longitude,latitude\n", "missing_column"),
    ],
)
def test_load_dataset_rejects_bad_files(contract, tmp_path, content, rule):
    from mlstack.validation import ValidationError

    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValidationError) as info:
        load_dataset(path, contract)
    assert rule in {v.rule for v in info.value.report.errors}
    assert str(path) in str(info.value)


def test_load_dataset_missing_file(contract, tmp_path):
    from mlstack.data import DataError

    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope.csv", contract)
