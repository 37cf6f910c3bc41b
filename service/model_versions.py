"""Model versions: promotion (logged, one-click rollback) and the checkpoint in force.

Comparing two versions is in :mod:`service.comparison` (it needs scikit-learn; this
module stays light because every page imports it).

The promoted checkpoint is the one the dashboard and the command lines use
when none is named; without a promotion it is the shipped one
(``core.registry.default_checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from core.checkpoint import file_sha256, model_version
from core.registry import default_checkpoint, describe_checkpoint
from db import repository
from service import known_models, store

if TYPE_CHECKING:
    from core.inference import Predictor


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
    """Make a checkpoint the one in use (logged, with a required reason).

    Raises:
        core.checkpoint.CheckpointError: not a usable checkpoint (nothing logged).
        store.ValidationError: no reason, or the checkpoint is the one in use already (nothing logged).
        store.StoreUnavailable: nothing logged.
    """
    if not reason.strip():
        raise store.ValidationError("a reason is required to promote a model version")
    info = describe_checkpoint(checkpoint)
    in_use, _ = checkpoint_in_force(engine)
    if in_use.is_file() and file_sha256(in_use) == info.sha256:
        raise store.ValidationError(f"{info.version} is the version in use already: nothing to promote")
    with store.transaction(engine) as session:
        model = repository.get_or_create_model(session, info.sha256, info.path.name, info.arch)
        row = repository.record_promotion(session, model, str(Path(checkpoint).resolve()), promoted_by, reason)
        session.refresh(row, ["model"])
        return _view(row)


def promotion_history(engine: Engine, limit: int = 50) -> list[PromotionView]:
    """Promotions, newest (in force) first."""
    with store.transaction(engine) as session:
        return [_view(row) for row in repository.promotions(session, limit)]


def rollback(engine: Engine, promoted_by: str) -> PromotionView:
    """Promote again what was in use before the current promotion (the shipped model if nothing was).

    Raises:
        store.ValidationError: there is nothing to roll back.
    """
    history = promotion_history(engine, 2)
    if not history:
        raise store.ValidationError("nothing to roll back: no model has been promoted")
    previous = history[1].checkpoint_path if len(history) > 1 else str(default_checkpoint())
    return promote(engine, previous, promoted_by, f"rollback from {history[0].version}")


def load_predictor_in_force(
    checkpoint: str | Path | None = None,
    device: str = "auto",
    engine: Engine | None = None,
    use_saved_point: bool = True,
    backend: str = "auto",
) -> Predictor:
    """The named checkpoint (else the promoted one, else the default) at the operating point in force.

    Args:
        engine: the review store; the configured one (if any) when ``None``.
        use_saved_point: ``False`` ignores operating points saved in the store.
        backend: see :meth:`core.inference.Predictor.from_checkpoint` (``"int8"`` only when asked for).

    Raises:
        core.checkpoint.CheckpointError: unusable checkpoint.
        store.StoreUnavailable: a configured store cannot be read.
    """
    from core.inference import Predictor  # loads torch: only when a model is loaded

    if engine is None:
        engine = store.configured_store()
    path = Path(checkpoint) if checkpoint else checkpoint_in_force(engine)[0]
    lookup = known_models.operating_point_lookup(engine) if engine is not None and use_saved_point else None
    return Predictor.from_checkpoint(path, device, lookup, backend)


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
