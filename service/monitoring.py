"""Site monitoring without labels: each window of logged predictions against the model's held-out images.

For every window (default 7 days) of predictions by the model version in force: the count, the
share flagged out of domain, the share called PNEUMONIA and the mean P(PNEUMONIA), the drift of
the out-of-domain scores (two-sample Kolmogorov-Smirnov against the validation images' scores,
whose null distribution is known, so the in-domain alarm rate is the test level), and label-free
*estimates* of sensitivity and specificity from the calibrated probabilities (confidence-based
performance estimation, as NannyML's CBPE: valid only while the calibration holds).

The reference for each figure is the checkpoint's validation images (``CheckpointMeta.domain``:
their logit margins and out-of-domain scores) at the operating point in force. Each test alarms at
:data:`ALARM_LEVEL`; ``benchmarks/monitoring.py`` measures the alarm rate on in-domain and shifted
streams. An alarm recommends a random audit sample, which measures what the estimates only guess.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.checkpoint import CheckpointMeta, model_version
from core.operating_point import OperatingPoint
from db import repository
from db.models import ModelVersion, Prediction
from service.store import read

ALARM_LEVEL = 0.001
"""Per-test level: with four tests a window of in-domain images alarms at most 0.4 % of the time."""
MIN_WINDOW = 30
"""Fewer predictions than this in a window: figures are shown, nothing is tested."""
ESTIMATE_DROP = 0.05
"""An estimated sensitivity or specificity alarms when its whole 95 % interval lies this far below the reference."""
SIMULATIONS = 2000
AUDIT_ADVICE = "review a random audit sample of this window (Review page, random audit) to measure it with labels"


@dataclass(frozen=True)
class Reference:
    """What an in-domain stream looks like: the model's validation images at the operating point in force."""

    n: int
    pneumonia_share: float
    mean_p: float
    sd_p: float
    scores: np.ndarray
    flagged_share: float
    sensitivity: float
    specificity: float

    @classmethod
    def from_meta(cls, meta: CheckpointMeta, point: OperatingPoint) -> Reference:
        """The reference of a checkpoint (``ValueError`` when it has no out-of-domain statistics)."""
        margins = np.asarray(meta.domain.get("reference_margins", []), dtype=np.float64)
        scores = np.asarray(meta.domain.get("reference_scores", []), dtype=np.float64)
        if not len(margins) or not len(scores):
            raise ValueError("this model has no reference statistics; fit them with python -m training.domain")
        p = point.probabilities(np.stack([np.zeros_like(margins), margins], 1))[:, 1]
        called = p >= point.threshold
        sensitivity, specificity = expected_rates(p, called)
        return cls(
            len(p),
            float(called.mean()),
            float(p.mean()),
            float(p.std()),
            scores,
            float((scores > float(meta.domain["cut"])).mean()),
            sensitivity,
            specificity,
        )


@dataclass
class Window:
    """One window's figures and alarms."""

    start: datetime
    end: datetime
    count: int
    flagged: int
    flagged_share: float
    pneumonia_share: float
    mean_p: float
    drift_ks: float | None = None
    drift_p: float | None = None
    estimated_sensitivity: list[float] | None = None
    """``[estimate, low, high]`` (95 %), from calibrated probabilities of the images not flagged."""
    estimated_specificity: list[float] | None = None
    tested: bool = False
    alarms: list[str] = field(default_factory=list)


@dataclass
class MonitorReport:
    """Every window, the reference, and the alarms in one list."""

    model: str
    reference: dict[str, Any]
    windows: list[Window]
    alarms: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``python -m db monitor --json``)."""
        return {
            "model": self.model,
            "reference": self.reference,
            "alarm_level": ALARM_LEVEL,
            "windows": [{**asdict(w), "start": w.start.isoformat(), "end": w.end.isoformat()} for w in self.windows],
            "alarms": self.alarms,
            "note": "sensitivity and specificity are estimates from calibrated probabilities, not measurements",
        }


def parse_window(text: str) -> timedelta:
    """``"7d"``, ``"24h"`` or ``"90m"`` as a duration (``ValueError`` otherwise)."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*([dhm])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window must look like 7d, 24h or 90m, got {str(text)[:20]!r}")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def expected_rates(p: np.ndarray, called: np.ndarray) -> tuple[float, float]:
    """Sensitivity and specificity expected if the probabilities are calibrated (CBPE's point estimate)."""
    positives, negatives = float(p.sum()), float((1 - p).sum())
    sensitivity = float(p[called].sum() / positives) if positives > 0 else float("nan")
    specificity = float((1 - p[~called]).sum() / negatives) if negatives > 0 else float("nan")
    return sensitivity, specificity


def estimated_intervals(p: np.ndarray, called: np.ndarray, seed: int = 0) -> tuple[list[float], list[float]]:
    """``[estimate, low, high]`` for sensitivity and specificity: labels drawn from the calibrated probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.random((SIMULATIONS, len(p))) < p
    tp = (labels & called).sum(1)
    tn = (~labels & ~called).sum(1)
    positives, negatives = labels.sum(1), (~labels).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(positives > 0, tp / np.maximum(positives, 1), np.nan)
        spec = np.where(negatives > 0, tn / np.maximum(negatives, 1), np.nan)
    point = expected_rates(p, called)
    out = []
    for estimate, draws in zip(point, (sens, spec), strict=True):
        draws = draws[~np.isnan(draws)]
        low, high = np.quantile(draws, [0.025, 0.975]) if len(draws) else (np.nan, np.nan)
        out.append([round(float(estimate), 4), round(float(low), 4), round(float(high), 4)])
    return out[0], out[1]


def window_figures(
    start: datetime,
    end: datetime,
    p: np.ndarray,
    called: np.ndarray,
    flagged: np.ndarray,
    scores: np.ndarray,
    reference: Reference,
) -> Window:
    """Figures and alarms of one window (arrays: one entry per prediction; ``scores`` may hold NaN)."""
    from scipy.stats import binomtest, ks_2samp

    n = len(p)
    window = Window(
        start,
        end,
        n,
        int(flagged.sum()),
        round(float(flagged.mean()), 4) if n else 0.0,
        round(float(called.mean()), 4) if n else 0.0,
        round(float(p.mean()), 4) if n else 0.0,
    )
    known = scores[~np.isnan(scores)]
    if len(known):
        test = ks_2samp(known, reference.scores)
        window.drift_ks, window.drift_p = round(float(test.statistic), 4), float(test.pvalue)
    usable = ~flagged
    if usable.sum():
        window.estimated_sensitivity, window.estimated_specificity = estimated_intervals(p[usable], called[usable])
    if n < MIN_WINDOW:
        return window
    window.tested = True
    name = f"{start:%Y-%m-%d %H:%M}"
    expected = max(reference.flagged_share, 1e-3)
    if binomtest(window.flagged, n, expected, alternative="greater").pvalue < ALARM_LEVEL:
        window.alarms.append(
            f"out of domain: {window.flagged_share:.1%} of {n} flagged in the window from {name} "
            f"(held-out images: {reference.flagged_share:.1%})"
        )
    if binomtest(int(called.sum()), n, reference.pneumonia_share).pvalue < ALARM_LEVEL:
        window.alarms.append(
            f"PNEUMONIA share: {window.pneumonia_share:.1%} of {n} in the window from {name} "
            f"(held-out images: {reference.pneumonia_share:.1%})"
        )
    z = (float(p.mean()) - reference.mean_p) / max(reference.sd_p / np.sqrt(n), 1e-9)
    from scipy.stats import norm

    if 2 * norm.sf(abs(z)) < ALARM_LEVEL:
        window.alarms.append(
            f"mean P(PNEUMONIA): {window.mean_p:.3f} in the window from {name} "
            f"(held-out images: {reference.mean_p:.3f})"
        )
    if window.drift_p is not None and len(known) >= MIN_WINDOW and window.drift_p < ALARM_LEVEL:
        window.alarms.append(
            f"feature drift: KS {window.drift_ks:.2f} (p = {window.drift_p:.1e}) between the window from {name} "
            "and the held-out images' out-of-domain scores"
        )
    for figure, estimate, ref in (
        ("sensitivity", window.estimated_sensitivity, reference.sensitivity),
        ("specificity", window.estimated_specificity, reference.specificity),
    ):
        if estimate is not None and usable.sum() >= MIN_WINDOW and estimate[2] < ref - ESTIMATE_DROP:
            window.alarms.append(
                f"estimated {figure}: {estimate[0]:.3f} (95 % {estimate[1]:.3f}-{estimate[2]:.3f}) in the window "
                f"from {name}, below the held-out estimate {ref:.3f}; an estimate that assumes calibration holds"
            )
    return window


def monitor(
    engine: Engine,
    meta: CheckpointMeta,
    sha256: str,
    point: OperatingPoint,
    window: timedelta = timedelta(days=7),
    since: datetime | None = None,
) -> MonitorReport:
    """Windows of the predictions logged by the model version ``sha256``, with their alarms.

    Raises:
        ValueError: the model has no reference statistics.
    """
    reference = Reference.from_meta(meta, point)

    def action(session: Session) -> list[tuple[datetime, float, str, bool | None, float | None]]:
        query = (
            select(
                Prediction.created_at,
                Prediction.p_pneumonia,
                Prediction.predicted_label,
                Prediction.out_of_domain,
                Prediction.domain_score,
            )
            .join(ModelVersion)
            .where(ModelVersion.sha256 == sha256, Prediction.channel != repository.TRAINING_DATA_CHANNEL)
            .order_by(Prediction.created_at)
        )
        if since is not None:
            query = query.where(Prediction.created_at >= since.astimezone(UTC).replace(tzinfo=None))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in session.execute(query)]

    rows = read(engine, action)
    windows = []
    if rows:
        first = (
            _aware(since)
            if since is not None
            else _aware(rows[0][0]).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        moments = np.array([(_aware(r[0]) - first).total_seconds() for r in rows])
        index = np.floor(moments / window.total_seconds()).astype(int)
        p = np.array([r[1] for r in rows], dtype=np.float64)
        called = np.array([r[2] == "PNEUMONIA" for r in rows])
        flagged = np.array([bool(r[3]) for r in rows])
        scores = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
        for k in sorted(set(index.tolist())):
            chosen = index == k
            start = first + k * window
            windows.append(
                window_figures(
                    start, start + window, p[chosen], called[chosen], flagged[chosen], scores[chosen], reference
                )
            )
    alarms = [
        {"window": w.start.isoformat(), "alarm": text, "recommendation": AUDIT_ADVICE}
        for w in windows
        for text in w.alarms
    ]
    summary = {
        "images": reference.n,
        "flagged_share": round(reference.flagged_share, 4),
        "pneumonia_share": round(reference.pneumonia_share, 4),
        "mean_p": round(reference.mean_p, 4),
        "estimated_sensitivity": round(reference.sensitivity, 4),
        "estimated_specificity": round(reference.specificity, 4),
    }
    return MonitorReport(model_version(meta.arch, sha256), summary, windows, alarms)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive UTC times, PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def monitor_in_force(
    engine: Engine, window: timedelta = timedelta(days=7), since: datetime | None = None
) -> MonitorReport:
    """:func:`monitor` for the checkpoint and operating point in force (loads the checkpoint's metadata)."""
    from core.checkpoint import read_checkpoint
    from core.hashing import file_sha256
    from core.operating_point import operating_point_in_force
    from service.known_models import operating_point_lookup
    from service.model_versions import checkpoint_in_force

    path, _why = checkpoint_in_force(engine)
    meta = CheckpointMeta.from_dict(read_checkpoint(path)["meta"])
    sha256 = file_sha256(path)
    point = operating_point_in_force(meta, sha256, operating_point_lookup(engine))
    return monitor(engine, meta, sha256, point, window, since)


def parse_since(text: str | None) -> datetime | None:
    """``YYYY-MM-DD`` (or an ISO time) as an aware UTC time; ``None`` passes through."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since must be a date like 2026-12-01, got {text[:30]!r}") from None
    return _aware(moment)
