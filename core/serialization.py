"""What the app writes for other programs: strict JSON (no NaN) and spreadsheet-safe CSV cells."""

from __future__ import annotations

import math
from typing import Any


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (strict JSON; shown as "n/a")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is a formula to a spreadsheet (OWASP's list)."""


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_unguarded(text: str) -> str:
    """The original text of a cell written by :func:`csv_safe`."""
    return text[1:] if text.startswith("'") and text[1:2] in FORMULA_PREFIXES else text
