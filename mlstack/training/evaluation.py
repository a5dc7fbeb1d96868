"""Score a model on the holdout and write the evaluation report (HTML with a residual plot)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlstack.contract import DataContract


@dataclass(frozen=True)
class Metrics:
    """Holdout metrics: overall, and RMSE per segment (with the segment's row count)."""

    rmse: float
    mae: float
    r2: float
    n: int
    segments: dict[str, tuple[int, float]] = field(default_factory=dict)

    def as_mlflow(self, prefix: str = "holdout_") -> dict[str, float]:
        """Return flat metric names for MLflow (segment names made key-safe)."""
        out = {f"{prefix}rmse": self.rmse, f"{prefix}mae": self.mae, f"{prefix}r2": self.r2}
        for seg, (_, rmse) in self.segments.items():
            out[f"{prefix}rmse_{safe_key(seg)}"] = rmse
        return out

    def headline(self) -> dict[str, float]:
        return {"rmse": self.rmse, "mae": self.mae, "r2": self.r2}


def safe_key(text: str) -> str:
    """Return `text` reduced to characters MLflow accepts in metric names."""
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in text).strip("_")
    while "__" in out:
        out = out.replace("__", "_")
    return out or "blank"


def score(y_true: np.ndarray | pd.Series, y_pred: np.ndarray, segments: pd.Series | None = None) -> Metrics:
    """Compute RMSE, MAE, R² and per-segment RMSE."""
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(y_pred, dtype="float64")
    err = p - y
    total = float(np.sum((y - y.mean()) ** 2))
    per_segment: dict[str, tuple[int, float]] = {}
    if segments is not None:
        seg = np.asarray(segments, dtype=object)
        for name in sorted({str(s) for s in seg}):
            mask = seg == name
            per_segment[name] = (int(mask.sum()), float(np.sqrt(np.mean(err[mask] ** 2))))
    return Metrics(
        rmse=float(np.sqrt(np.mean(err**2))),
        mae=float(np.mean(np.abs(err))),
        r2=float(1.0 - np.sum(err**2) / total) if total > 0 else float("nan"),
        n=len(y),
        segments=per_segment,
    )


def residual_plot_png(y_true: np.ndarray, y_pred: np.ndarray, contract: DataContract) -> bytes:
    """Return a PNG: predicted vs actual, and residuals vs predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(y_pred, dtype="float64")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    ax1.scatter(y, p, s=4, alpha=0.35, color="#2563eb")
    lim = [min(y.min(), p.min()), max(y.max(), p.max())]
    ax1.plot(lim, lim, color="#dc2626", lw=1)
    ax1.set_xlabel(f"actual {contract.target.label} ({contract.target.unit})")
    ax1.set_ylabel("predicted")
    ax1.set_title("Predicted vs actual (holdout)")
    ax2.scatter(p, p - y, s=4, alpha=0.35, color="#059669")
    ax2.axhline(0, color="#dc2626", lw=1)
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("residual (predicted - actual)")
    ax2.set_title("Residuals")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(*, title: str, contract: DataContract, metrics: Metrics, candidates: list[dict[str, Any]],
                plot_png: bytes, facts: dict[str, Any]) -> str:
    """Return a self-contained HTML evaluation report."""
    unit = contract.target.unit
    metric_rows = [["RMSE", f"{metrics.rmse:,.0f} {unit}"], ["MAE", f"{metrics.mae:,.0f} {unit}"],
                   ["R²", f"{metrics.r2:.4f}"], ["holdout rows", f"{metrics.n:,}"]]
    segment_rows = [[seg, f"{n:,}", f"{rmse:,.0f}"] for seg, (n, rmse) in metrics.segments.items()]
    candidate_rows = [[c["family"], c["stage"], f"{c['validation_rmse']:,.0f}", f"{c['seconds']:.1f}",
                       ", ".join(f"{k}={v}" for k, v in c["params"].items())] for c in candidates]
    fact_rows = [[k, v] for k, v in facts.items()]
    img = base64.b64encode(plot_png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#111827}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #d1d5db;padding:.3rem .6rem;text-align:left}}
th{{background:#f3f4f6}}img{{max-width:100%}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(contract.title)}. {html.escape(contract.notes)}</p>
<h2>Holdout metrics</h2>{_table(["metric", "value"], metric_rows)}
<h2>RMSE by {html.escape(contract.segment or "segment")}</h2>{_table(["segment", "rows", f"RMSE ({unit})"], segment_rows)}
<h2>Residuals</h2><img alt="Predicted vs actual and residual plots" src="data:image/png;base64,{img}">
<h2>Candidates (validation split)</h2>{_table(["family", "stage", "validation RMSE", "seconds", "parameters"], candidate_rows)}
<h2>Lineage</h2>{_table(["fact", "value"], fact_rows)}
</body></html>
"""
