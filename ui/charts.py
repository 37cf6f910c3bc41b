"""Plotly figures for the dashboard, built from stored per-image scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Imported here, in full, before any figure is built. Plotly's validators read pandas from sys.modules
# without importing it; while one session's thread was importing pandas, another session's figure met
# the half-initialised module and drew a traceback (seen with four reviewers on two replicas at once).
import pandas  # noqa: F401
import plotly.graph_objects as go
from PIL import Image

from core.labels import CLASS_NAMES


def roc_figure(
    fpr: Sequence[float],
    tpr: Sequence[float],
    thresholds: Sequence[float],
    auc: float | None,
    point: tuple[float, float] | None = None,
) -> go.Figure:
    """Interactive ROC curve; ``point`` marks the current operating point (FPR, TPR)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=list(fpr),
            y=list(tpr),
            mode="lines",
            name=f"ROC (AUC {auc:.3f})" if auc else "ROC",
            customdata=list(thresholds),
            hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<br>threshold %{customdata:.3f}",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance", hoverinfo="skip"
        )
    )
    if point is not None:
        fig.add_trace(
            go.Scatter(
                x=[point[0]], y=[point[1]], mode="markers", marker={"size": 12, "color": "red"}, name="threshold"
            )
        )
    fig.update_layout(
        xaxis_title="1 - specificity (FPR)",
        yaxis_title="sensitivity (TPR)",
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"x": 0.55, "y": 0.1},
    )
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]]) -> go.Figure:
    """Confusion matrix ``[[TN, FP], [FN, TP]]`` as an annotated heat map."""
    z = np.asarray(matrix)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"predicted {c}" for c in CLASS_NAMES],
            y=[f"true {c}" for c in CLASS_NAMES],
            text=z,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis={"autorange": "reversed"})
    return fig


def reliability_bins(labels: Sequence[int], scores: Sequence[float], bins: int = 10) -> list[dict[str, float]]:
    """Equal-count bins of predicted P(PNEUMONIA): mean prediction, observed rate, its Wilson 95 % interval, n.

    Equal-width bins left a few images in the sparse middle, whose observed rate jumped between 0 and 1;
    with equal counts every point rests on about ``len(scores) / bins`` images, and says how many.
    """
    from core.agreement import wilson

    y, p = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if not len(p):
        return []
    groups = np.array_split(np.argsort(p, kind="stable"), min(bins, len(p)))
    rows = []
    for group in groups:
        observed = wilson(int(y[group].sum()), len(group))
        rows.append(
            {
                "predicted": float(p[group].mean()),
                "observed": float(observed.value),
                "low": float(observed.low),
                "high": float(observed.high),
                "n": len(group),
            }
        )
    return rows


def reliability_figure(labels: Sequence[int], curves: dict[str, Sequence[float]], bins: int = 10) -> go.Figure:
    """Reliability diagram: observed PNEUMONIA rate (with its 95 % interval) against mean predicted probability."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect", hoverinfo="skip"
        )
    )
    for name, scores in curves.items():
        rows = reliability_bins(labels, scores, bins)
        fig.add_trace(
            go.Scatter(
                x=[r["predicted"] for r in rows],
                y=[r["observed"] for r in rows],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [r["high"] - r["observed"] for r in rows],
                    "arrayminus": [r["observed"] - r["low"] for r in rows],
                },
                mode="lines+markers",
                name=f"{name} ({len(rows)} bins of about {rows[0]['n'] if rows else 0} images)",
                customdata=[r["n"] for r in rows],
                hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f}<br>n=%{customdata}",
            )
        )
    fig.update_layout(
        xaxis_title="predicted P(PNEUMONIA)",
        yaxis_title="observed fraction PNEUMONIA (95 % interval)",
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def roc_overlay_figure(curves: dict[str, dict[str, list[float]]]) -> go.Figure:
    """Several ROC curves on one chart (``{name: {"fpr", "tpr"}}``)."""
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=name))
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="chance", hoverinfo="skip"
        )
    )
    fig.update_layout(
        xaxis_title="1 - specificity (FPR)",
        yaxis_title="sensitivity (TPR)",
        height=400,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def xray_figure(image: Image.Image, title: str = "") -> go.Figure:
    """The X-ray at its stored resolution in an image figure: scroll to zoom, drag to pan, double-click to reset.

    The pixels travel as one PNG (``binary_string``), so a large radiograph stays sharp when zoomed.
    """
    import plotly.express as px

    width, height = image.size
    fig = px.imshow(np.asarray(image), binary_string=True)
    fig.update_layout(
        dragmode="pan",
        margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0},
        height=int(min(900, max(400, height))),
        title=title or None,
    )
    fig.update_xaxes(visible=False, range=[0, width])
    fig.update_yaxes(visible=False, range=[height, 0], scaleanchor="x")
    return fig


VIEWER_CONFIG = {"scrollZoom": True, "displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
"""Plotly config of the X-ray viewer: mouse-wheel zoom, no selection tools."""
