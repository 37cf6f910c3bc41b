"""Where the database and stored images live: one setting each, from the environment."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """``$PNEUMONIA_DATA_DIR`` or ``data/`` at the repository root."""
    return Path(os.environ.get("PNEUMONIA_DATA_DIR", REPO_ROOT / "data"))


def database_url() -> str:
    """``$DATABASE_URL`` or a SQLite file ``reviews.db`` in :func:`data_dir`."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir() / 'reviews.db'}"


def image_store_dir() -> Path:
    """``$IMAGE_STORE_DIR`` or ``images/`` in :func:`data_dir`: where uploaded image bytes are kept."""
    return Path(os.environ.get("IMAGE_STORE_DIR", data_dir() / "images"))


def sqlite_busy_timeout() -> float:
    """Seconds a SQLite writer waits for the lock (``$SQLITE_BUSY_TIMEOUT``, default 30)."""
    return float(os.environ.get("SQLITE_BUSY_TIMEOUT", "30"))


def database_configured() -> bool:
    """True when ``$DATABASE_URL`` is set or the default SQLite file exists (a plain CLI run never creates one)."""
    return bool(os.environ.get("DATABASE_URL")) or (data_dir() / "reviews.db").exists()


def evaluation_roots() -> list[Path]:
    """Folders the dashboard may evaluate: ``$PNEUMONIA_EVAL_ROOTS`` (``os.pathsep``-separated), else the data dir."""
    raw = os.environ.get("PNEUMONIA_EVAL_ROOTS", "")
    roots = [Path(part) for part in raw.split(os.pathsep) if part.strip()]
    return roots or [data_dir()]


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in {"1", "true", "yes", "on"}


def blind_read_default() -> bool:
    """Review cases blind first (the model's output hidden until the reviewer calls): ``$PNEUMONIA_BLIND_READ``."""
    return _flag("PNEUMONIA_BLIND_READ", False)


def adjudicate_model_disagreements() -> bool:
    """Also send a case to adjudication when a reviewer disagrees with the model, not only with another reviewer
    (``$PNEUMONIA_ADJUDICATE_MODEL_DISAGREEMENT``)."""
    return _flag("PNEUMONIA_ADJUDICATE_MODEL_DISAGREEMENT", False)


def adjudicators() -> set[str]:
    """Identities with the adjudicator role: ``$PNEUMONIA_ADJUDICATORS``, comma-separated, compared case-insensitively
    (with sign-in configured these are the signed-in e-mail addresses)."""
    raw = os.environ.get("PNEUMONIA_ADJUDICATORS", "")
    return {part.strip().casefold() for part in raw.split(",") if part.strip()}


def typed_adjudicators_allowed() -> bool:
    """Accept a typed (unverified) name as an adjudicator: ``$PNEUMONIA_TYPED_ADJUDICATORS=1``.

    Off by default: anyone can type a name, so the adjudicator role needs sign-in unless a single-user
    machine says otherwise.
    """
    return _flag("PNEUMONIA_TYPED_ADJUDICATORS", False)


def audit_fraction() -> float:
    """Share of review-queue picks drawn at random instead of by uncertainty: ``$PNEUMONIA_AUDIT_FRACTION``
    (default 0.2, within [0, 1]; a bad value falls back to the default)."""
    try:
        value = float(os.environ.get("PNEUMONIA_AUDIT_FRACTION", "0.2"))
    except ValueError:
        return 0.2
    return value if 0.0 <= value <= 1.0 else 0.2
