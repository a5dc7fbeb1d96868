import numpy as np
import pandas as pd

from mlstack.features import RatioFeatures, model_input, preprocessor, ratio_specs


def test_ratios_handle_zero_and_missing_denominators(contract):
    df = pd.DataFrame({"total_rooms": [10.0, 5.0, 4.0], "households": [2.0, 0.0, np.nan],
                       "total_bedrooms": [2.0, 1.0, np.nan], "population": [6.0, 3.0, 2.0]})
    out = RatioFeatures(ratio_specs(contract)).fit(df).transform(df)
    assert out["rooms_per_household"].tolist()[0] == 5.0
    assert np.isnan(out["rooms_per_household"].iloc[1]) and np.isnan(out["rooms_per_household"].iloc[2])
    assert out["bedrooms_per_room"].iloc[0] == 0.2
    assert list(RatioFeatures(ratio_specs(contract)).fit(df).get_feature_names_out())[-3:] == [
        "rooms_per_household", "bedrooms_per_room", "population_per_household"]


def test_preprocessor_imputes_and_encodes_unknown_categories(contract, sample):
    x = model_input(sample, contract)
    pre = preprocessor(contract, scale=True).fit(x)
    odd = x.head(2).copy()
    odd.loc[odd.index[0], "total_bedrooms"] = np.nan
    odd.loc[odd.index[1], "ocean_proximity"] = "UNSEEN"
    out = pre.transform(odd)
    assert out.shape[0] == 2 and np.isfinite(out).all()


def test_model_input_types(contract, sample):
    x = model_input(sample, contract)
    assert list(x.columns) == contract.feature_names
    assert all(x[c].dtype == np.float64 for c in contract.numeric_features)
