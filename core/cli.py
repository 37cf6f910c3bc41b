"""What every command line shares: one safe ``error:`` line per failure."""

from __future__ import annotations

import argparse
import sys

from core.images import printable


def error_line(error: BaseException | str) -> str:
    """``error: <first line of the message>``, control characters escaped (no ANSI codes reach the terminal)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return f"error: {printable(first)[:400]}"


def report_error(error: BaseException | str) -> None:
    """Print :func:`error_line` to stderr."""
    print(error_line(error), file=sys.stderr)


def report_warning(text: str) -> None:
    """Print ``warning: <text>`` (control characters escaped) to stderr."""
    print(f"warning: {printable(text)}", file=sys.stderr)


BACKENDS = ("auto", "torch", "onnx", "int8")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``: what runs the network (see ``core.inference.Predictor.from_checkpoint``)."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto: ONNX Runtime when the checkpoint has an export, else PyTorch; int8: the accepted quantized "
        "model, only when asked for",
    )
