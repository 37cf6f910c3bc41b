"""Command line: ``python -m core.predict IMAGE [IMAGE ...] [--json] [--log]``.

Each good image is predicted even when others in the same call are bad; bad
ones get one line on stderr and the exit status is 1. The operating point is
the one in force: saved in the review database when one is configured, else
the checkpoint's. ``python -m core.predict`` (the old name) runs this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from core.checkpoint import CheckpointError
from core.cli import add_backend_argument, report_error
from core.images import ImageLoadError, printable, read_image_file
from core.inference import Prediction, Predictor, default_checkpoint
from core.input_checks import load_xray
from db.settings import database_configured
from service import model_versions
from service.predictions import predict_and_log
from service.store import StoreUnavailable, configured_store, open_store


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the prediction command."""
    parser = argparse.ArgumentParser(
        prog="python -m core.predict", description="Classify chest X-rays as NORMAL or PNEUMONIA."
    )
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG)")
    parser.add_argument("--checkpoint", default=None, help=f"checkpoint (default {default_checkpoint()})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--heatmap",
        default=None,
        metavar="PATH",
        help="write a Grad-CAM overlay PNG (a folder when several images are given)",
    )
    add_backend_argument(parser)
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (average of 4 views)")
    parser.add_argument(
        "--log", action="store_true", help="store images and predictions in the review database ($DATABASE_URL)"
    )
    return parser


def _print_text(prediction: Prediction, many: bool) -> None:
    if many:
        print(f"== {printable(prediction.image_name)}")
    print(f"Prediction: {prediction.label}")
    if prediction.warning:
        print(f"warning: {prediction.warning} (out-of-domain score {prediction.domain_score:.2f})")
    print(f"Decision: {prediction.decision}")
    for name, value in prediction.probabilities.items():
        print(f"{name}: {value:.4f}")


def _write_heatmap(predictor: Predictor, image: Image.Image, label: str, source: str, target: str, many: bool) -> None:
    from core.explain import gradcam, overlay

    path = Path(target) / f"{Path(source).stem}_heatmap.png" if many else Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    overlay(image, gradcam(predictor, image, label)).save(path)


def _load(args: argparse.Namespace) -> tuple[Predictor, Any]:
    """The model at the operating point in force, and the store to log to (``None`` without ``--log``).

    The store is opened only when a database is configured or ``--log`` is
    given: the promoted checkpoint (when ``--checkpoint`` is not given) and the
    operating point saved there are used with or without ``--log``.
    """
    if not args.log and not database_configured():
        return Predictor.from_checkpoint(args.checkpoint, args.device, backend=args.backend), None
    engine = open_store() if args.log else configured_store()
    predictor = model_versions.load_predictor_in_force(args.checkpoint, args.device, engine, backend=args.backend)
    return predictor, engine if args.log else None


def _predict_one(predictor: Predictor, engine: Any, path: str, args: argparse.Namespace) -> tuple[Any, dict]:
    if engine is None:
        image = load_xray(path, name=path)
        return predictor.predict_one(image, image_name=path), {}
    logged = predict_and_log(engine, predictor, read_image_file(path), path, channel="cli")
    return logged.result, {"prediction_id": logged.prediction_id}


def main(args: argparse.Namespace) -> int:
    """Predict every image; return the exit status (0 all good, 1 some failed, 2 no model or store)."""
    try:
        predictor, engine = _load(args)
        predictor.tta = args.tta
    except CheckpointError as error:
        report_error(error)
        return 2
    except StoreUnavailable as error:
        report_error(error)
        return 2
    if predictor.domain_problem:
        print(f"warning: no out-of-domain check: {predictor.domain_problem}", file=sys.stderr)
    failures = 0
    many = len(args.images) > 1
    for path in args.images:
        try:
            prediction, extra = _predict_one(predictor, engine, path, args)
            if args.heatmap:
                image = load_xray(path, name=path)
                _write_heatmap(predictor, image, prediction.label, path, args.heatmap, many)
        except (ImageLoadError, ValueError, RuntimeError, OSError) as error:
            # ImageLoadError, and the store's ValidationError / StoreUnavailable: one line, go on.
            report_error(error)
            failures += 1
            continue
        if prediction.warning and args.json:  # the JSON line carries the flag; stderr tells a person
            print(f"warning: {printable(path)}: {prediction.warning}", file=sys.stderr)
        if args.json:
            print(
                json.dumps(
                    {
                        **prediction.to_dict(),
                        "model": predictor.version,
                        "operating_point": predictor.point.origin,
                        **extra,
                    }
                )
            )
        else:
            _print_text(prediction, many=many)
        sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
