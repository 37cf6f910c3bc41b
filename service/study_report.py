"""A reader study's report: design, MRMC results, ROC curves, and the items a reporting checklist asks for.

JSON for machines, Markdown for people, and a self-contained HTML page with the ROC curves as inline
SVG (no script, nothing fetched). The checklist items follow CLAIM (Mongan et al., Radiology: AI 2020)
and TRIPOD-AI: data source, reference standard, case selection, readers, missing reads.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.mrmc import analyse
from service import reader_studies
from service.reader_studies import CALL_CUT, RATINGS
from service.store import ValidationError


def roc_points(truth: list[int] | np.ndarray, scores: list[float] | np.ndarray) -> list[list[float]]:
    """Empirical ROC curve ``[[fpr, tpr], ...]`` from (0, 0) to (1, 1), one point per distinct score."""
    truth, scores = np.asarray(truth), np.asarray(scores, dtype=np.float64)
    points = [[0.0, 0.0]]
    for cut in sorted(set(scores.tolist()), reverse=True):
        called = scores >= cut
        points.append([float(called[truth == 0].mean()), float(called[truth == 1].mean())])
    return points


def build_report(engine: Engine, name: str) -> dict[str, Any]:
    """The report of a complete study as one JSON-ready object.

    Raises:
        ValidationError: the study is missing or incomplete.
    """
    study = reader_studies.get_study(engine, name)
    ratings = reader_studies.study_ratings(engine, name)
    progress = reader_studies.progress(engine, name)
    truth, ai = reader_studies.ai_scores(engine, name)
    try:
        results: dict[str, dict[str, Any]] = {"auc": analyse(ratings).as_dict(ratings)}
    except ValueError as error:  # e.g. every reader rated alike in both sessions: no variance to test against
        raise ValidationError(str(error)) from None
    for endpoint in ("sensitivity", "specificity"):
        try:
            results[endpoint] = analyse(ratings, endpoint, float(CALL_CUT)).as_dict(ratings)
        except ValueError as error:  # a small study can leave one binary endpoint flat; the AUC still stands
            results[endpoint] = {"endpoint": endpoint, "not_testable": str(error), "comparisons": []}
    curves: dict[str, Any] = {}
    for m, modality in enumerate(ratings.modalities):
        for r, reader in enumerate(ratings.readers):
            curves.setdefault(reader, {})[modality] = roc_points(ratings.truth, ratings.values[m, r])
    from core.mrmc import empirical_auc

    ai_truth, ai_scores = np.asarray(truth), np.asarray(ai)
    return {
        "study": study.name,
        "made": datetime.now(UTC).isoformat(timespec="seconds"),
        "design": {
            "created_by": study.created_by,
            "created_at": study.created_at.isoformat(timespec="seconds"),
            "readers": study.readers,
            "cases": study.cases,
            "normal": study.normal,
            "pneumonia": study.pneumonia,
            "washout_days": study.washout_days,
            "sessions": "each reader read every case unaided (image only), then aided (AI call, P(PNEUMONIA), "
            "heat map) after the washout, each session in an order shuffled for that reader",
            "rating_scale": {str(k): v for k, v in RATINGS.items()},
            "call": f"PNEUMONIA from rating {CALL_CUT}",
        },
        "checklist": {
            "data_source": "images logged in this review store (dashboard uploads, command-line predictions)",
            "reference_standard": "adjudicated label (an adjudicator's final label with a reason)"
            if study.reference == "adjudicated"
            else "adjudicated label, else the majority of reviewers' latest calls",
            "case_selection": "random draw from the resolved cases, stratified by reference label, frozen when "
            "the study was made",
            "missing_reads": 0,
            "washout_overrides": {p.reader: p.overrides for p in progress},
            "ai": "the model's stored prediction for each case, as shown in the aided session",
        },
        "modalities": {m: {"auc": results["auc"]["modalities"][m]["auc"]} for m in ratings.modalities},
        "results": results,
        "ai_auc": empirical_auc(ai_scores[ai_truth == 1], ai_scores[ai_truth == 0]),
        "roc": {"readers": curves, "ai": roc_points(ai_truth, ai_scores)},
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (user text is escaped: names are shown as written, never as markup)."""
    design, auc = report["design"], report["results"]["auc"]
    lines = [
        f"# Reader study {_md(report['study'])}",
        "",
        "## Design",
        f"- Readers ({len(design['readers'])}): {', '.join(_md(r) for r in design['readers'])}",
        f"- Cases: {design['cases']} ({design['normal']} NORMAL, {design['pneumonia']} PNEUMONIA)",
        f"- Washout: {design['washout_days']} days; {design['sessions']}",
        "- Ratings: " + "; ".join(f"{k} {v}" for k, v in design["rating_scale"].items()) + f" ({design['call']})",
        "",
        "## Checklist (CLAIM / TRIPOD-AI items)",
    ]
    lines += [f"- {key.replace('_', ' ')}: {_md(str(value))}" for key, value in report["checklist"].items()]
    lines += ["", "## Results", "", "| endpoint | comparison | difference | 95 % CI | F or chi-square | df | p |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for endpoint, result in report["results"].items():
        for comparison in result.get("comparisons", []):
            statistic = comparison.get("F", comparison.get("chi2", ""))
            lines.append(
                f"| {endpoint} | {' - '.join(comparison['modalities'])} ({comparison['method']}) | "
                f"{comparison['difference']:.4f} | {comparison['ci'][0]:.4f} to {comparison['ci'][1]:.4f} | "
                f"{_num(statistic)} | {_num(comparison.get('df', ''))} | {_num(comparison['p_value'])} |"
            )
    lines += [
        f"\n{endpoint}: not testable: {result['not_testable']}."
        for endpoint, result in report["results"].items()
        if "not_testable" in result
    ]
    lines += ["", f"AI alone on the same cases: AUC {report['ai_auc']:.4f}.", ""]
    modalities = auc.get("modalities", {})
    if modalities:
        lines.append("| modality | mean AUC |")
        lines.append("| --- | --- |")
        lines += [f"| {m} | {_num(v.get('auc', ''))} |" for m, v in modalities.items()]
    return "\n".join(lines) + "\n"


def report_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: the Markdown text in <pre> and one inline-SVG ROC chart per reader."""
    charts = []
    for reader, curves in report["roc"]["readers"].items():
        charts.append(
            f"<figure><figcaption>{html.escape(reader)}</figcaption>"
            + _svg({**curves, "AI": report["roc"]["ai"]})
            + "</figure>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>Reader study report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}figure{display:inline-block}</style>"
        f"<pre>{html.escape(report_markdown(report))}</pre>{''.join(charts)}"
    )


COLOURS = {"unaided": "#1f77b4", "aided": "#d62728", "AI": "#7f7f7f"}


def _svg(curves: dict[str, list[list[float]]], side: int = 260) -> str:
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{side}' height='{side}' viewBox='0 0 {side} {side}'>"]
    parts.append(f"<rect width='{side}' height='{side}' fill='white' stroke='#999'/>")
    parts.append(f"<line x1='0' y1='{side}' x2='{side}' y2='0' stroke='#ccc' stroke-dasharray='4'/>")
    for y, (name, points) in enumerate(curves.items()):
        path = " ".join(f"{x * side:.1f},{(1 - t) * side:.1f}" for x, t in points)
        colour = COLOURS.get(name, "#2ca02c")
        parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='2'/>")
        parts.append(
            f"<text x='{side - 80}' y='{side - 10 - 14 * y}' fill='{colour}' font-size='12'>{html.escape(name)}</text>"
        )
    return "".join(parts) + "</svg>"


def _md(text: str) -> str:
    """Escape Markdown's special characters so names and reasons show as written."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>" else c for c in text)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
