"""Content hashes: the one SHA-256 of a file (model versions, stored images, split files)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path | Any) -> str:
    """Hex SHA-256 of a file, read in chunks by ``hashlib.file_digest``."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
