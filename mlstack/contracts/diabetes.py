"""Describe the diabetes progression data (Efron et al., 2004): the worked example of bringing your own data.

442 patients, ten baseline measurements, and a quantitative measure of disease progression one
year later. scikit-learn ships the data; `scripts/export_sklearn_dataset.py diabetes` writes
`data/diabetes.csv` with these column names. Switch the stack to it with DATA_CONTRACT=diabetes,
DATA_PATH=data/diabetes.csv and MODEL_NAME=diabetes-progression in .env (see docs/byod.md).
"""

from __future__ import annotations

from mlstack.contract import DataContract, Feature, Target

CONTRACT = DataContract(
    name="diabetes",
    title="Diabetes progression one year ahead",
    notes=("Each record is one patient at baseline; the model predicts a quantitative measure of disease "
           "progression one year later (25 to 346 in the study; higher is worse)."),
    data_source="the diabetes study of Efron, Hastie, Johnstone and Tibshirani (2004), as shipped by scikit-learn",
    record_label="patients",
    features=(
        Feature("age", "int", "Age", "Age at baseline.", unit="years", minimum=0, maximum=120, default=50),
        Feature("sex", "int", "Sex", "Sex as coded in the study (1 or 2; the source does not say which is which).",
                minimum=1, maximum=2, default=1),
        Feature("bmi", "float", "Body mass index", "Body mass index.", unit="kg/m²", minimum=10.0, maximum=70.0,
                default=25.7),
        Feature("blood_pressure", "float", "Blood pressure", "Average (mean arterial) blood pressure.",
                unit="mm Hg", minimum=40.0, maximum=200.0, default=93.0),
        Feature("total_cholesterol", "float", "Total cholesterol", "Total serum cholesterol (tc).",
                unit="mg/dL", minimum=50.0, maximum=400.0, default=186.0),
        Feature("ldl", "float", "LDL", "Low-density lipoproteins.", unit="mg/dL", minimum=20.0, maximum=300.0,
                default=113.0),
        Feature("hdl", "float", "HDL", "High-density lipoproteins.", unit="mg/dL", minimum=10.0, maximum=150.0,
                default=48.0),
        Feature("cholesterol_hdl_ratio", "float", "Cholesterol / HDL", "Total cholesterol divided by HDL (tch).",
                minimum=1.0, maximum=15.0, default=4.0),
        Feature("log_triglycerides", "float", "Log triglycerides", "Natural log of serum triglycerides (ltg).",
                minimum=2.0, maximum=8.0, default=4.62),
        Feature("blood_sugar", "float", "Blood sugar", "Blood sugar level (glu).", unit="mg/dL", minimum=40.0,
                maximum=200.0, default=91.0),
    ),
    target=Target("disease_progression", "Disease progression", unit="progression score", minimum=1.0,
                  maximum=500.0),
    prediction="predicted_disease_progression",
    # A heavier, older population with higher blood sugar than the study's.
    simulated_drift=(("bmi", 1.25, 0.0), ("age", 1.0, 12.0), ("blood_sugar", 1.3, 0.0)),
)
