"""Bring your own data: the diabetes contract drives validation, the form, units, drift and training."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.contracts import get_contract
from mlstack.data import load_dataset, split
from mlstack.frontend.app import amount_filter
from mlstack.frontend.forms import form_fields
from mlstack.monitoring.drift import fast_scores, load_drift_policy, reference_frame, verdict
from mlstack.serving.schemas import schema_document
from mlstack.simulator import drifted, holdout_rows
from mlstack.validation import ValidationError

ROOT = Path(__file__).resolve().parents[2]
DIABETES = ROOT / "data" / "diabetes.csv"


@pytest.fixture(scope="module")
def diabetes():
    return get_contract("diabetes")


def test_the_shipped_file_is_what_the_export_script_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("export", ROOT / "scripts" / "export_sklearn_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["diabetes", str(tmp_path / "d.csv")]) == 0
    assert (tmp_path / "d.csv").read_bytes() == DIABETES.read_bytes()


def test_the_file_passes_its_contract_and_not_the_other(diabetes, contract):
    dataset = load_dataset(DIABETES, diabetes)
    assert len(dataset.frame) == 442 and not dataset.report.errors
    parts = split(dataset.frame, diabetes, seed=42, holdout_fraction=0.2, validation_fraction=0.2)
    assert 70 <= len(parts.holdout) <= 110
    with pytest.raises(ValidationError, match="longitude"):  # the housing contract names what is missing
        load_dataset(DIABETES, contract)


def test_the_form_and_the_units_follow_the_contract(diabetes):
    doc = schema_document(diabetes)
    fields = form_fields(doc)
    assert [f.name for f in fields] == diabetes.feature_names
    assert doc["data_source"].startswith("the diabetes study") and doc["record_label"] == "patients"
    assert amount_filter(diabetes.target.unit)(152.33) == "152.3 progression score"
    assert amount_filter("USD")(452_600.4) == "$452,600"


def test_drift_checks_work_on_the_new_contract(diabetes):
    """With 442 rows, simulated traffic replays ~90 holdout patients: two samples that small differ by up to
    0.25 on these distances without any drift, so a small data set needs a looser column threshold
    (docs/byod.md); 0.35 here."""
    from dataclasses import replace

    policy = replace(load_drift_policy(None)[0], column_threshold=0.35)
    reference = reference_frame(DIABETES, diabetes, 5000, 42, 0.2)
    rows = holdout_rows(DIABETES, diabetes)
    same = rows.sample(1000, replace=True, random_state=1)
    moved = drifted(same, diabetes)
    quiet = verdict(fast_scores(reference, same, diabetes), len(same), len(reference), policy)
    loud = verdict(fast_scores(reference, moved, diabetes), len(moved), len(reference), policy)
    assert not quiet.detected and loud.detected, (quiet.reason, loud.reason)


def test_an_all_numeric_contract_gets_a_seeded_three_way_split(diabetes):
    frame = load_dataset(DIABETES, diabetes).frame
    parts = split(frame, diabetes, seed=42, holdout_fraction=0.2, validation_fraction=0.2)
    sizes = [len(parts.train), len(parts.validation), len(parts.holdout)]
    assert sum(sizes) == 442 and 50 <= sizes[1] <= 95 and 70 <= sizes[2] <= 110, sizes
    other = split(frame, diabetes, seed=7, holdout_fraction=0.2, validation_fraction=0.2)
    assert set(other.holdout.index) != set(parts.holdout.index)  # the seed matters


def test_the_housing_split_is_the_one_it_always_was(contract):
    frame = load_dataset(ROOT / "data" / "housing.csv", contract).frame
    parts = split(frame, contract, seed=42, holdout_fraction=0.2, validation_fraction=0.2)
    assert (len(parts.train), len(parts.validation), len(parts.holdout)) == (13_216, 3_369, 4_055)
