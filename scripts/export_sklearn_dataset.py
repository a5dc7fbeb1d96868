#!/usr/bin/env python3
"""Write a data set that scikit-learn ships as a CSV in a contract's column names (no download).

    scripts/export_sklearn_dataset.py diabetes data/diabetes.csv

The worked example of docs/byod.md: map the source's columns to the names the data contract
(mlstack/contracts/diabetes.py) defines, write the file, and check it against the contract.
Idempotent: the same rows in the same order every time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# source column → contract column, per data set
DATASETS = {
    "diabetes": {
        "loader": "load_diabetes",
        "columns": {"age": "age", "sex": "sex", "bmi": "bmi", "bp": "blood_pressure", "s1": "total_cholesterol",
                    "s2": "ldl", "s3": "hdl", "s4": "cholesterol_hdl_ratio", "s5": "log_triglycerides",
                    "s6": "blood_sugar", "target": "disease_progression"},
        "ints": ["age", "sex"],
    },
}


def export(name: str, out: Path) -> int:
    """Write data set `name` to `out`; return the number of rows."""
    import sklearn.datasets

    spec = DATASETS[name]
    frame = getattr(sklearn.datasets, spec["loader"])(scaled=False, as_frame=True).frame
    frame = frame.rename(columns=spec["columns"])[list(spec["columns"].values())]
    for column in spec["ints"]:
        frame[column] = frame[column].round().astype("int64")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    rows = export(args.name, args.out)

    from mlstack.contracts import get_contract
    from mlstack.data import load_dataset

    dataset = load_dataset(args.out, get_contract(args.name))  # raises, naming each column and rule, if it does not fit
    print(f"wrote {rows} rows to {args.out} (sha256 {dataset.sha256[:12]}); it passes the {args.name} contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
