"""Describe the California housing data (1990 census block groups): the default contract."""

from __future__ import annotations

from mlstack.contract import DataContract, Feature, Ratio, Target

CONTRACT = DataContract(
    name="california_housing",
    title="California house prices (1990 census block groups)",
    notes=(
        "Each record is a census block group (typically 600 to 3,000 people), not a single house; "
        "the model predicts the block group's median house value."
    ),
    data_source="the 1990 U.S. census, California block groups (Pace & Barry, 1997)",
    record_label="block groups",
    features=(
        Feature("longitude", "float", "Longitude", "West-east position of the block group.",
                unit="degrees", minimum=-124.5, maximum=-114.0, default=-118.49),
        Feature("latitude", "float", "Latitude", "South-north position of the block group.",
                unit="degrees", minimum=32.5, maximum=42.0, default=34.26),
        Feature("housing_median_age", "int", "Median house age",
                "Median age of the houses in the block group (the census caps it at 52).",
                unit="years", minimum=0, maximum=100, default=29),
        Feature("total_rooms", "int", "Total rooms", "Rooms in all homes of the block group.",
                unit="rooms", minimum=1, maximum=100_000, default=2127),
        Feature("total_bedrooms", "int", "Total bedrooms",
                "Bedrooms in all homes of the block group; may be left empty (the model imputes it).",
                unit="bedrooms", minimum=0, maximum=50_000, nullable=True, default=435),
        Feature("population", "int", "Population", "People living in the block group.",
                unit="people", minimum=1, maximum=100_000, default=1166),
        Feature("households", "int", "Households", "Households in the block group.",
                unit="households", minimum=1, maximum=50_000, default=409),
        Feature("median_income", "float", "Median income",
                "Median household income (the census caps it at 15, i.e. USD 150,000).",
                unit="tens of thousands of USD", minimum=0.0, maximum=20.0, default=3.5348),
        Feature("ocean_proximity", "category", "Ocean proximity", "Where the block group lies relative to the ocean.",
                categories=("<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND"), default="<1H OCEAN"),
    ),
    target=Target("median_house_value", "Median house value", unit="USD",
                  minimum=1.0, maximum=1_000_000.0, cap=500_001.0),
    prediction="predicted_median_house_value",
    segment="ocean_proximity",
    # An economy that moved on: richer households, housing ten years older (still within range).
    simulated_drift=(("median_income", 1.6, 0.0), ("housing_median_age", 1.0, 10.0)),
    ratios=(
        Ratio("rooms_per_household", "total_rooms", "households"),
        Ratio("bedrooms_per_room", "total_bedrooms", "total_rooms"),
        Ratio("population_per_household", "population", "households"),
    ),
)
