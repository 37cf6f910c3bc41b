"""Model versions known to the store and the operating point in force for each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.checkpoint import model_version
from core.operating_point import DATABASE, OperatingPoint, OperatingPointLookup, operating_point_in_force
from db import repository
from db.models import ModelVersion
from service.store import read, transaction

if TYPE_CHECKING:  # the model itself is loaded by the caller; importing it here would pull in torch
    from core.inference import Predictor


@dataclass(frozen=True)
class ModelInfo:
    """A model version known to the store."""

    id: int
    sha256: str
    name: str
    arch: str

    @property
    def version(self) -> str:
        """``arch@sha12``, as shown everywhere."""
        return model_version(self.arch, self.sha256)


def model_row(session: Session, predictor: Predictor) -> ModelVersion:
    """The store's row for the predictor's model version, created on first use (inside a use case's transaction)."""
    return repository.get_or_create_model(
        session, predictor.checkpoint_sha256, Path(predictor.checkpoint_path).name, predictor.meta.arch
    )


def register_model(engine: Engine, predictor: Predictor) -> ModelInfo:
    """Make sure the predictor's model version is in the store; returns it."""

    def action(session: Session) -> ModelInfo:
        row = model_row(session, predictor)
        return ModelInfo(row.id, row.sha256, row.name, row.arch)

    return read(engine, action)


def list_models(engine: Engine) -> list[ModelInfo]:
    """Every model version in the store, newest first."""
    return read(engine, lambda s: [ModelInfo(m.id, m.sha256, m.name, m.arch) for m in repository.list_models(s)])


def operating_point_lookup(engine: Engine) -> OperatingPointLookup:
    """A lookup for :func:`core.operating_point.operating_point_in_force` backed by this store."""

    def lookup(sha256: str, checkpoint_temperature: float) -> OperatingPoint | None:
        def action(session: Session) -> OperatingPoint | None:
            change = repository.latest_threshold_change(session, sha256)
            if change is None:
                return None
            temperature = checkpoint_temperature if change.temperature is None else change.temperature
            return OperatingPoint(
                threshold=change.threshold,
                temperature=temperature,
                bias=change.bias or 0.0,
                origin=DATABASE,
                goal=change.goal or "",
                change_id=change.id,
            )

        return read(engine, action)

    return lookup


def predictor_in_force(engine: Engine, predictor: Predictor) -> Predictor:
    """The loaded model at the operating point in force for its version (the store's, else the checkpoint's)."""
    point = operating_point_in_force(predictor.meta, predictor.checkpoint_sha256, operating_point_lookup(engine))
    return predictor.at(point)


def save_operating_point(
    engine: Engine,
    predictor: Predictor,
    point: OperatingPoint,
    changed_by: str,
    metrics: dict[str, Any],
    reason: str = "",
) -> int:
    """Log ``point`` (threshold and calibration) as the one in force for the predictor's model version.

    Returns:
        The threshold change's id.
    """
    with transaction(engine) as session:
        model = model_row(session, predictor)
        change = repository.record_threshold_change(
            session,
            model,
            point.threshold,
            changed_by,
            metrics,
            reason,
            temperature=point.temperature,
            bias=point.bias,
            goal=point.goal,
        )
        return change.id
