"""The operating point: how logits become calibrated probabilities and a call.

One :class:`OperatingPoint` holds the calibration (temperature and a bias on the
logit margin) and the decision threshold in force for a model version.
:func:`operating_point_in_force` is the one function every entry point (CLI,
dashboard, evaluation, calibration) asks for it: a saved site operating point
from the review database when there is one, else the checkpoint's own.
:func:`label_at_threshold` is the one place a probability becomes a class name.

``core`` never imports ``db``: callers that have a database hand in a
``lookup`` (see ``service.operating_point_lookup``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.labels import CLASS_NAMES

CHECKPOINT = "checkpoint"
DATABASE = "database"
PROPOSED = "proposed"
"""A site operating point fitted for preview: not saved, not in force."""


def label_at_threshold(p_pneumonia: float, threshold: float) -> str:
    """The class name for a calibrated P(PNEUMONIA): PNEUMONIA when ``p >= threshold``."""
    return CLASS_NAMES[1] if p_pneumonia >= threshold else CLASS_NAMES[0]


def logit(p: float) -> float:
    """``log(p / (1 - p))``, with ``p`` kept inside (0, 1) so saturated probabilities stay finite."""
    q = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(np.log(q / (1 - q)))


def probability_midway(a: float, b: float) -> float:
    """The probability halfway between ``a`` and ``b`` on the logit scale (a threshold with equal margins)."""
    middle = (logit(a) + logit(b)) / 2
    return float(1 / (1 + np.exp(-middle)))


def validate_calibration(threshold: Any, temperature: Any, bias: Any = 0.0) -> tuple[float, float, float]:
    """Check types and ranges of an operating point; returns the three floats.

    Raises:
        ValueError: a non-number, a threshold outside [0, 1], a temperature
            that is not positive and finite, or a non-finite bias.
    """
    values = []
    for name, value in (("threshold", threshold), ("temperature", temperature), ("bias", bias)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {str(value)[:40]!r}")
        values.append(float(value))
    threshold, temperature, bias = values
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if not 0.01 <= temperature <= 100.0:
        raise ValueError(f"temperature must lie in [0.01, 100], got {temperature}")
    return threshold, temperature, bias


@dataclass(frozen=True)
class OperatingPoint:
    """Calibration and decision threshold of one model version.

    Calibrated ``P(PNEUMONIA) = sigmoid((z1 - z0) / temperature + bias)`` for
    logits ``(z0, z1)``; with ``bias = 0`` this is plain temperature scaling.
    """

    threshold: float
    temperature: float = 1.0
    bias: float = 0.0
    origin: str = CHECKPOINT
    """``"checkpoint"`` (fitted on validation at training time) or ``"database"`` (saved later)."""
    goal: str = ""
    change_id: int | None = None
    """Id of the saved threshold change when ``origin`` is ``"database"``."""

    def __post_init__(self) -> None:
        validate_calibration(self.threshold, self.temperature, self.bias)

    def p_pneumonia_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated P(PNEUMONIA) from raw logit margins ``z1 - z0``."""
        scaled = np.asarray(margin, dtype=np.float64) / self.temperature + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(scaled, -80.0, 80.0)))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated ``(N, 2)`` probabilities (columns NORMAL, PNEUMONIA) from raw ``(N, 2)`` logits."""
        logits = np.asarray(logits, dtype=np.float64)
        p = self.p_pneumonia_from_margin(logits[:, 1] - logits[:, 0])
        return np.stack([1.0 - p, p], axis=1)

    def label(self, p_pneumonia: float) -> str:
        """The call at this operating point's threshold."""
        return label_at_threshold(p_pneumonia, self.threshold)

    def describe(self) -> str:
        """One line for captions and reports."""
        where = {DATABASE: "saved site operating point", PROPOSED: "proposed, not saved"}.get(self.origin, "checkpoint")
        bias = f", bias {self.bias:+.3f}" if self.bias else ""
        return f"threshold {self.threshold:.3f}, temperature {self.temperature:.3f}{bias} ({where})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in reports."""
        return {
            "threshold": self.threshold,
            "temperature": self.temperature,
            "bias": self.bias,
            "origin": self.origin,
            "goal": self.goal,
            "change_id": self.change_id,
        }


OperatingPointLookup = Callable[[str, float], "OperatingPoint | None"]
"""Given a checkpoint's SHA-256 and its own temperature, the saved operating point for it, or ``None``.

(A threshold saved without a calibration keeps the checkpoint's temperature.)"""


def checkpoint_operating_point(meta: Any) -> OperatingPoint:
    """The operating point a checkpoint carries (``meta``: :class:`core.checkpoint.CheckpointMeta`)."""
    return OperatingPoint(
        threshold=float(meta.threshold),
        temperature=float(meta.temperature),
        origin=CHECKPOINT,
        goal=str(meta.threshold_goal),
    )


def operating_point_in_force(
    meta: Any, checkpoint_sha256: str, lookup: OperatingPointLookup | None = None
) -> OperatingPoint:
    """The operating point in force for a model version.

    Args:
        meta: the checkpoint's metadata.
        checkpoint_sha256: the model version's identity.
        lookup: the review database's saved operating points, when one is configured.

    Returns:
        The saved one when ``lookup`` has one for this version, else the checkpoint's.
    """
    saved = lookup(checkpoint_sha256, float(meta.temperature)) if lookup is not None else None
    return saved if saved is not None else checkpoint_operating_point(meta)


def decision_text(p_pneumonia: float, threshold: float, label: str) -> str:
    """The call with the numbers behind it, in words a clinician reads.

    ``"P(PNEUMONIA) 0.527 is below the threshold 0.773: NORMAL"``; the call always follows from the
    numbers shown (never a "confidence" below one half for the class called).
    """
    relation = "is at or above" if p_pneumonia >= threshold else "is below"
    return f"P(PNEUMONIA) {p_pneumonia:.3f} {relation} the threshold {threshold:.3f}: {label}"
