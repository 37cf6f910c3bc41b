"""Strict JSON: what the app writes is standard JSON (PostgreSQL and other readers refuse NaN)."""

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
