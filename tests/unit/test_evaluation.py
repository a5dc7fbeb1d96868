import numpy as np
import pandas as pd
import pytest

from mlstack.training.evaluation import report_html, residual_plot_png, safe_key, score


def test_score_metrics_and_segments():
    y = np.array([100.0, 200.0, 300.0, 400.0])
    p = np.array([110.0, 190.0, 300.0, 440.0])
    m = score(y, p, pd.Series(["A", "A", "B", "B"]))
    assert m.rmse == pytest.approx(np.sqrt((100 + 100 + 0 + 1600) / 4))
    assert m.mae == pytest.approx(15.0)
    assert m.r2 == pytest.approx(1 - 1800 / 50_000)
    assert m.segments["A"] == (2, pytest.approx(10.0))
    assert "holdout_rmse_a" in m.as_mlflow()


def test_safe_key():
    assert safe_key("<1H OCEAN") == "1h_ocean"
    assert safe_key("NEAR BAY") == "near_bay"


def test_report_is_self_contained_html(contract):
    y = np.linspace(1e5, 5e5, 50)
    png = residual_plot_png(y, y * 1.05, contract)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    page = report_html(title="t <x>", contract=contract, metrics=score(y, y * 1.05), candidates=[
        {"family": "linear", "stage": "baseline", "validation_rmse": 1.0, "seconds": 0.1, "params": {"a": 1}}],
        plot_png=png, facts={"git commit": "abc"})
    assert "t &lt;x&gt;" in page and "data:image/png;base64," in page and "http" not in page.split("<body>")[1]
