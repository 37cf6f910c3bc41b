"""Class names and label parsing shared by every part of the project."""

from __future__ import annotations

CLASS_NAMES: tuple[str, str] = ("NORMAL", "PNEUMONIA")
"""Index 0 is NORMAL (negative), index 1 is PNEUMONIA (positive)."""

NORMAL, PNEUMONIA = 0, 1

UNUSABLE = "UNUSABLE"
"""A reviewer's answer that the image is not a usable chest X-ray: it leaves every figure and training set."""


def parse_label(value: str | int) -> int:
    """Turn a class name (any case, surrounding spaces allowed) or index into 0/1.

    Args:
        value: ``"NORMAL"``, ``"pneumonia"``, ``0`` or ``1``.

    Returns:
        The class index.

    Raises:
        ValueError: for anything else, with a one-line message.
    """
    if isinstance(value, bool):
        raise ValueError(f"label must be NORMAL or PNEUMONIA, got {value!r}")
    if isinstance(value, int):
        if value in (NORMAL, PNEUMONIA):
            return value
        raise ValueError(f"label index must be 0 or 1, got {value}")
    name = str(value).strip().upper()
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name)
    raise ValueError(f"label must be NORMAL or PNEUMONIA, got {str(value)[:40]!r}")
