"""Command line: ``python -m core.predict IMAGE [IMAGE ...] [--json]``.

Each good image is predicted even when others in the same call are bad; bad
ones get one line on stderr and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.checkpoint import CheckpointError
from core.images import ImageLoadError
from core.input_checks import load_xray
from core.inference import Predictor, default_checkpoint


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the prediction command."""
    parser = argparse.ArgumentParser(
        prog="python -m core.predict", description="Classify chest X-rays as NORMAL or PNEUMONIA."
    )
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG)")
    parser.add_argument("--checkpoint", default=None, help=f"checkpoint (default {default_checkpoint()})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--heatmap", default=None, metavar="PATH",
                        help="write a Grad-CAM overlay PNG (a folder when several images are given)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation (average of 4 views)")
    parser.add_argument("--log", action="store_true",
                        help="store images and predictions in the review database ($DATABASE_URL)")
    return parser


def _print_text(prediction, many: bool) -> None:
    if many:
        print(f"== {prediction.source}")
    print(f"Prediction: {prediction.label}")
    print(f"Confidence: {prediction.confidence:.4f}")
    for name, value in prediction.probabilities.items():
        print(f"{name}: {value:.4f}")


def _write_heatmap(predictor, image, label: str, source: str, target: str, many: bool) -> None:
    from core.explain import gradcam, overlay

    path = Path(target) / f"{Path(source).stem}_heatmap.png" if many else Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    overlay(image, gradcam(predictor, image, label)).save(path)


def main(args: argparse.Namespace) -> int:
    """Predict every image; return the exit status (0 all good, 1 some failed, 2 no model)."""
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
        predictor.tta = args.tta
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    engine = None
    if args.log:  # imported lazily: plain prediction needs no database
        from db.actions import predict_and_log
        from db.engine import init_db, make_engine

        engine = init_db(make_engine())
    failures = 0
    for path in args.images:
        extra = {}
        try:
            if engine is not None:
                if not Path(path).is_file():
                    raise ImageLoadError(f"{path}: file not found")
                logged = predict_and_log(engine, predictor, Path(path).read_bytes(), path, source="cli")
                prediction, extra = logged.result, {"prediction_id": logged.prediction_id}
                if args.heatmap:
                    image = load_xray(Path(path), name=path)
                    _write_heatmap(predictor, image, prediction.label, path, args.heatmap, len(args.images) > 1)
            else:
                image = load_xray(Path(path), name=path)
                prediction = predictor.predict_one(image, source=path)
                if args.heatmap:
                    _write_heatmap(predictor, image, prediction.label, path, args.heatmap, len(args.images) > 1)
        except ImageLoadError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps({**prediction.to_dict(), "model": predictor.version, **extra}))
        else:
            _print_text(prediction, many=len(args.images) > 1)
        sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
