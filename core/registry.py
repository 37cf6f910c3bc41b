"""The model versions on disk: every checkpoint in the models folder, described without loading its weights."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.checkpoint import CheckpointError, CheckpointMeta, file_sha256, model_version, read_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "models" / "best_model.pth"


def default_checkpoint() -> Path:
    """The shipped checkpoint, or ``$PNEUMONIA_CHECKPOINT`` when set."""
    return Path(os.environ.get("PNEUMONIA_CHECKPOINT", DEFAULT_CHECKPOINT))


def models_dir() -> Path:
    """``$PNEUMONIA_MODELS_DIR`` or ``models/`` at the repository root."""
    return Path(os.environ.get("PNEUMONIA_MODELS_DIR", REPO_ROOT / "models"))


@dataclass(frozen=True)
class CheckpointInfo:
    """One registered checkpoint."""

    path: Path
    sha256: str
    arch: str
    created_at: str
    report_path: Path | None
    """Its held-out evaluation report (``<name>.json`` beside it), if any."""

    @property
    def version(self) -> str:
        """``arch@sha12``."""
        return model_version(self.arch, self.sha256)


def describe_checkpoint(path: str | Path) -> CheckpointInfo:
    """Identity and metadata of a checkpoint file (weights are read, not built).

    Raises:
        CheckpointError: not a usable checkpoint.
    """
    path = Path(path)
    meta = CheckpointMeta.from_dict(read_checkpoint(path)["meta"])
    report = path.with_suffix(".json")
    return CheckpointInfo(path, file_sha256(path), meta.arch, meta.created_at, report if report.exists() else None)


def list_checkpoints(folder: str | Path | None = None) -> list[CheckpointInfo]:
    """Checkpoints in the models folder (``*.pth`` and ``*/best_model.pth``); unusable files are skipped."""
    root = Path(folder) if folder is not None else models_dir()
    found = []
    for path in sorted({*root.glob("*.pth"), *root.glob("*/best_model.pth")}):
        try:
            found.append(describe_checkpoint(path))
        except CheckpointError:
            continue
    return found
