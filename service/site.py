"""Site adaptation use cases: the model on this site's reviewed cases, and a site operating point from them.

Ground truth for a reviewed image is its resolved label (majority of the
reviewers' latest calls; ties left out). A model version is never judged or
calibrated on reviewed images it was fine-tuned on. Images are re-scored from the image
store with the loaded model, so the figures hold for the operating point in
force now, not the one in force when each prediction was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from core.labels import parse_label
from core.operating_point import OperatingPoint, checkpoint_operating_point
from core.site_adaptation import SiteProposal, is_comparison_case, performance_at, propose_site_operating_point
from db import repository
from service import known_models, reviews, store
from service.reviews import ReviewedCase

if TYPE_CHECKING:  # torch (``core.data``, ``core.evaluation``) loads inside the functions that score
    from core.inference import Predictor


@dataclass
class ReviewedScores:
    """Reviewed cases of one model version, with the model's raw logit margins."""

    cases: list[ReviewedCase]
    labels: np.ndarray
    margins: np.ndarray
    skipped: list[str] = field(default_factory=list)
    """One line per case whose stored image could not be read."""
    left_out_by_score: int = 0
    """Cases left out because the uncertainty queue chose them (the most uncertain are no site sample)."""

    @property
    def sample_note(self) -> str:
        """Which cases the figures use, in one line."""
        used = f"{len(self.cases)} resolved reviewed case(s) chosen at random (audit) or outside the queue"
        if not self.left_out_by_score:
            return used
        return f"{used}; {self.left_out_by_score} chosen by the uncertainty queue left out (not a site sample)"

    @property
    def review_ids(self) -> list[int]:
        """Every review that contributed a resolved label."""
        return sorted({i for case in self.cases for i in case.review_ids})


def trained_on(predictor: Predictor) -> set[str]:
    """Content hashes of the reviewed images this model version was fine-tuned on (never used to judge it)."""
    provenance = predictor.meta.train_args.get("reviewed_provenance") or {}
    return set(provenance.get("train_sha256", []))


def score_reviewed_cases(
    engine: Engine, predictor: Predictor, progress: Any = None, comparison_only: bool = False
) -> ReviewedScores:
    """Score the resolved reviewed images with this model version.

    Images reviewed under any version count (the truth is about the image, and
    each is re-scored here), except those this version was fine-tuned on.

    Args:
        comparison_only: only the fixed comparison part (no version is ever trained on it).

    Raises:
        db.store.StoreUnavailable: the store cannot be read.
    """
    excluded = trained_on(predictor)
    eligible = [
        c
        for c in reviews.reviewed_cases(engine)
        if c.image_sha256 not in excluded and (not comparison_only or is_comparison_case(c.image_sha256))
    ]
    cases = [c for c in eligible if not c.chosen_by_score]  # the queue ranks by uncertainty: a biased sample
    from core.data import ImageRecord
    from core.evaluation import score_records

    records = [ImageRecord(str(c.image_path), parse_label(c.label), c.image_sha256) for c in cases]
    scored, skipped = score_records(predictor, records, batch_size=32, progress=progress)
    by_path = {row["path"]: row for row in scored}
    kept = [c for c in cases if str(c.image_path) in by_path]
    labels = np.array([parse_label(c.label) for c in kept], dtype=int)
    margins = np.array([by_path[str(c.image_path)]["logit_margin"] for c in kept], dtype=float)
    return ReviewedScores(kept, labels, margins, skipped, len(eligible) - len(cases))


def site_performance(engine: Engine, predictor: Predictor, bootstrap: int = 1000) -> dict[str, Any]:
    """Figures of the operating point in force on this site's reviewed cases (JSON-ready)."""
    scores = score_reviewed_cases(engine, predictor)
    figures = performance_at(predictor.point, scores.margins, scores.labels, bootstrap)
    figures.update({"model_version": predictor.version, "skipped": scores.skipped, "sample": scores.sample_note})
    return figures


def propose(
    engine: Engine, predictor: Predictor, goal: str, min_per_class: int, bootstrap: int = 1000
) -> tuple[SiteProposal, ReviewedScores]:
    """A site operating point fitted on the reviewed cases, with before / cross-validated after figures.

    Raises:
        core.site_adaptation.NotEnoughCases: too few resolved cases of a class.
    """
    scores = score_reviewed_cases(engine, predictor)
    proposal = propose_site_operating_point(
        predictor.point, scores.margins, scores.labels, goal, min_per_class, bootstrap
    )
    return proposal, scores


def save_proposal(
    engine: Engine,
    predictor: Predictor,
    proposal: SiteProposal,
    scores: ReviewedScores,
    changed_by: str,
    reason: str,
    override: bool = False,
) -> int:
    """Store a proposal as the operating point in force (a logged threshold change); returns its id.

    Args:
        override: save although :meth:`SiteProposal.problems` speaks against it (recorded with the change).

    Raises:
        db.store.ValidationError: no reason given, or problems and no override. Nothing is saved.
    """
    if not reason.strip():
        raise store.ValidationError("a reason is required to change the operating point")
    problems = proposal.problems()
    if problems and not override:
        raise store.ValidationError("refused: " + "; ".join(problems) + " (override explicitly to save anyway)")
    metrics = {
        **proposal.figures(),
        "review_ids": scores.review_ids,
        "n_cases": len(scores.cases),
        "source": "reviewed cases",
        "override": bool(problems),
    }
    if problems:
        reason = f"OVERRIDE ({'; '.join(problems)}): {reason.strip()}"[:2000]
    return known_models.save_operating_point(
        engine,
        predictor,
        proposal.point,
        changed_by,
        metrics,
        reason,
    )


def saved_points(engine: Engine, predictor: Predictor) -> list[tuple[int, OperatingPoint]]:
    """Every operating point saved for this model version, newest first, as ``(change id, point)``."""

    def read(session: Any) -> list[tuple[int, OperatingPoint]]:
        model = repository.get_or_create_model(
            session, predictor.checkpoint_sha256, Path(predictor.checkpoint_path).name, predictor.meta.arch
        )
        return [
            (
                change.id,
                OperatingPoint(
                    threshold=change.threshold,
                    temperature=predictor.meta.temperature if change.temperature is None else change.temperature,
                    bias=change.bias or 0.0,
                    goal=change.goal or "",
                ),
            )
            for change in repository.threshold_history(session, model)
        ]

    with store.transaction(engine) as session:
        return read(session)


def restore_point(
    engine: Engine, predictor: Predictor, changed_by: str, reason: str, change_id: int | None = None
) -> int:
    """Put the checkpoint's own operating point (``change_id=None``) or an earlier saved one back in force,
    as one logged threshold change; returns its id.

    Raises:
        db.store.ValidationError: no reason or name, or no such saved point for this model. Nothing is saved.
    """
    if not reason.strip():
        raise store.ValidationError("a reason is required to change the operating point")
    if change_id is None:
        point, source = checkpoint_operating_point(predictor.meta), "checkpoint"
    else:
        earlier = dict(saved_points(engine, predictor))
        if change_id not in earlier:
            raise store.ValidationError(f"no saved operating point #{change_id} for {predictor.version}")
        point, source = earlier[change_id], f"threshold change #{change_id}"
    restored = OperatingPoint(
        threshold=point.threshold,
        temperature=point.temperature,
        bias=point.bias,
        goal=f"restored: {point.goal}"[:64],
    )
    return known_models.save_operating_point(
        engine, predictor, restored, changed_by, {"source": source, "restored": True}, reason
    )
