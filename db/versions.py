"""Model versions side by side: promotion (logged, one-click rollback) and paired comparison.

The promoted checkpoint is the one the dashboard and the command lines use
when none is named; without a promotion it is the shipped one
(``core.inference.default_checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.checkpoint import file_sha256, model_version
from core.evaluation import predictions_at, report_operating_point
from core.inference import Predictor, default_checkpoint
from core.metrics import paired_bootstrap_difference, roc_points
from core.registry import describe_checkpoint
from core.site_adaptation import figures_with_intervals
from db import actions, repository
from db.site import score_reviewed_cases


@dataclass(frozen=True)
class PromotionView:
    """One promotion as shown in the history."""

    id: int
    version: str
    checkpoint_path: str
    promoted_by: str
    reason: str
    created_at: datetime
    sha256: str


def _view(row: Any) -> PromotionView:
    return PromotionView(
        row.id,
        model_version(row.model.arch, row.model.sha256),
        row.checkpoint_path,
        row.promoted_by,
        row.reason,
        row.created_at,
        row.model.sha256,
    )


def promote(engine: Engine, checkpoint: str | Path, promoted_by: str, reason: str = "") -> PromotionView:
    """Make a checkpoint the one in use (logged).

    Raises:
        core.checkpoint.CheckpointError: not a usable checkpoint (nothing logged).
        actions.ValidationError, actions.StoreUnavailable: nothing logged.
    """
    info = describe_checkpoint(checkpoint)
    with actions.transaction(engine) as session:
        model = repository.get_or_create_model(session, info.sha256, info.path.name, info.arch)
        row = repository.record_promotion(session, model, str(Path(checkpoint).resolve()), promoted_by, reason)
        session.refresh(row, ["model"])
        return _view(row)


def promotion_history(engine: Engine, limit: int = 50) -> list[PromotionView]:
    """Promotions, newest (in force) first."""
    with actions.transaction(engine) as session:
        return [_view(row) for row in repository.promotions(session, limit)]


def rollback(engine: Engine, promoted_by: str) -> PromotionView:
    """Promote again what was in use before the current promotion (the shipped model if nothing was).

    Raises:
        actions.ValidationError: there is nothing to roll back.
    """
    history = promotion_history(engine, 2)
    if not history:
        raise actions.ValidationError("nothing to roll back: no model has been promoted")
    previous = history[1].checkpoint_path if len(history) > 1 else str(default_checkpoint())
    return promote(engine, previous, promoted_by, f"rollback from {history[0].version}")


def load_predictor_in_force(
    checkpoint: str | Path | None = None,
    device: str = "auto",
    engine: Engine | None = None,
    use_saved_point: bool = True,
) -> Predictor:
    """The named checkpoint (else the promoted one, else the default) at the operating point in force.

    Args:
        engine: the review store; the configured one (if any) when ``None``.
        use_saved_point: ``False`` ignores operating points saved in the store.

    Raises:
        core.checkpoint.CheckpointError: unusable checkpoint.
        actions.StoreUnavailable: a configured store cannot be read.
    """
    if engine is None:
        engine = actions.configured_store()
    path = Path(checkpoint) if checkpoint else checkpoint_in_force(engine)[0]
    lookup = actions.operating_point_lookup(engine) if engine is not None and use_saved_point else None
    return Predictor.from_checkpoint(path, device, lookup)


def checkpoint_in_force(engine: Engine | None = None) -> tuple[Path, str]:
    """The checkpoint to use when none is named, and a line saying why.

    The newest promotion when its file is still there with the same hash;
    otherwise the shipped checkpoint (the line says what was wrong).
    """
    fallback = default_checkpoint()
    if engine is None:
        return fallback, "default checkpoint"
    history = promotion_history(engine, 1)
    if not history:
        return fallback, "default checkpoint"
    current = history[0]
    path = Path(current.checkpoint_path)
    if not path.is_file():
        return fallback, f"default checkpoint: the promoted {current.version} is missing ({path})"
    if file_sha256(path) != current.sha256:
        return fallback, f"default checkpoint: {path} changed since {current.version} was promoted"
    return path, f"promoted {current.version} by {current.promoted_by}"


# ---------------------------------------------------------------- comparison


def _side(labels: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: int) -> dict[str, Any]:
    calls = (scores >= threshold).astype(int)
    figures = figures_with_intervals(labels, calls, scores, bootstrap)
    figures["roc"] = roc_points(labels, scores) if len(set(labels.tolist())) == 2 else None
    return figures


def _paired(labels: np.ndarray, a: np.ndarray, ta: float, b: np.ndarray, tb: float, bootstrap: int) -> dict[str, Any]:
    return {
        "n": int(len(labels)),
        "a": _side(labels, a, ta, bootstrap),
        "b": _side(labels, b, tb, bootstrap),
        "difference_b_minus_a": paired_bootstrap_difference(
            labels, (a >= ta).astype(int), a, (b >= tb).astype(int), b, bootstrap
        ),
    }


def compare_on_reviewed(engine: Engine, a: Predictor, b: Predictor, bootstrap: int = 1000) -> dict[str, Any]:
    """Both versions on the same held-out reviewed cases (the fixed comparison part), each at its operating point."""
    first = score_reviewed_cases(engine, a, comparison_only=True)
    second = score_reviewed_cases(engine, b, comparison_only=True)
    common = sorted({c.image_sha256 for c in first.cases} & {c.image_sha256 for c in second.cases})
    if not common:
        return {"n": 0}
    index_a = {c.image_sha256: i for i, c in enumerate(first.cases)}
    index_b = {c.image_sha256: i for i, c in enumerate(second.cases)}
    labels = np.array([first.labels[index_a[h]] for h in common])
    pa = a.point.p_pneumonia_from_margin(np.array([first.margins[index_a[h]] for h in common]))
    pb = b.point.p_pneumonia_from_margin(np.array([second.margins[index_b[h]] for h in common]))
    return _paired(labels, pa, a.threshold, pb, b.threshold, bootstrap)


def compare_on_reports(
    a: Predictor, report_a: dict[str, Any], b: Predictor, report_b: dict[str, Any], bootstrap: int = 1000
) -> dict[str, Any]:
    """Both versions on the images their held-out reports share, re-scored at each one's operating point."""
    rescored_a = predictions_at(report_a.get("predictions", []), a.point, report_operating_point(report_a))
    rescored_b = predictions_at(report_b.get("predictions", []), b.point, report_operating_point(report_b))
    rows_a = {p["path"]: p for p in rescored_a}
    rows_b = {p["path"]: p for p in rescored_b}
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        return {"n": 0}
    labels = np.array([rows_a[p]["label"] for p in common])
    pa = np.array([rows_a[p]["p_pneumonia"] for p in common])
    pb = np.array([rows_b[p]["p_pneumonia"] for p in common])
    return _paired(labels, pa, a.threshold, pb, b.threshold, bootstrap)
