"""Fit a site head on the reviewed cases and compare it with the version in use before promotion is offered.

    python -m training.site_head --output models/site_head.pth [--goal sensitivity>=0.95@0.90]

The final layer of the model in use is refitted as a logistic regression on
the network's features of this site's reviewed images (``core.site_head``) and
saved as a new model version. It is fitted on the reviewed cases outside the
fixed comparison part (``core.site_adaptation.is_comparison_case``) and not
chosen by the uncertainty queue; then both versions are scored on the
comparison part, each at its own operating point, with paired bootstrap
intervals. Promotion is offered only when the head is not worse there with
95 % confidence and the part holds enough cases; the command never promotes.
Exit status 0 (fitted, whatever the verdict), 2 (nothing fitted: one line why).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import CheckpointError, save_checkpoint
from core.cli import report_error
from core.images import ImageLoadError, load_image
from core.labels import parse_label
from core.site_adaptation import NotEnoughCases, is_comparison_case
from service.comparison import compare_on_reviewed, promotion_verdict
from service.model_versions import load_predictor_in_force
from service.reviews import reviewed_cases
from service.store import StoreUnavailable, open_store


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the site-head command."""
    parser = argparse.ArgumentParser(prog="python -m training.site_head", description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="where the new checkpoint goes (e.g. models/site_head.pth)")
    parser.add_argument("--checkpoint", default=None, help="the version to start from (default: the one in use)")
    parser.add_argument("--goal", default="sensitivity>=0.95@0.90", help="threshold goal, with a confidence")
    parser.add_argument("--min-per-class", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="overrides $DATABASE_URL")
    parser.add_argument("--bootstrap", type=int, default=1000)
    return parser


def _difference_line(comparison: dict[str, Any]) -> str:
    parts = []
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc"):
        entry = comparison["difference_b_minus_a"].get(key)
        if entry and entry["difference"] is not None:
            ci = entry["ci"]
            interval = f" ({ci[0]:+.3f} to {ci[1]:+.3f})" if ci else ""
            parts.append(f"{key} {entry['difference']:+.3f}{interval}")
    return "paired difference site head - in use: " + ", ".join(parts)


def main(args: argparse.Namespace) -> int:
    """Fit, save and compare; returns the exit status."""
    from core.site_head import fit_site_head, network_features, with_site_head

    try:
        engine = open_store(args.database_url)
        current = load_predictor_in_force(args.checkpoint, "cpu", engine, backend="torch")
        fit_cases = [
            c for c in reviewed_cases(engine) if not is_comparison_case(c.image_sha256) and not c.chosen_by_score
        ]
        images = [load_image(c.image_path) for c in fit_cases]
        labels = np.array([parse_label(c.label) for c in fit_cases], dtype=int)
        head = fit_site_head(network_features(current, images), labels, args.goal, args.min_per_class)
        provenance = {
            "fitted_on": f"{len(fit_cases)} reviewed cases ({head.n_pneumonia} PNEUMONIA, {head.n_normal} NORMAL)",
            "from_version": current.version,
            "goal": args.goal,
            "regularisation_C": head.regularisation,
            "review_ids": sorted({i for c in fit_cases for i in c.review_ids}),
        }
        model, meta = with_site_head(current.model, current.meta, head, provenance)
        meta.train_args["reviewed_provenance"] = {"train_sha256": sorted(c.image_sha256 for c in fit_cases)}
        output = save_checkpoint(args.output, model, meta)
        fitted = load_predictor_in_force(output, "cpu", engine, backend="torch")
        comparison = compare_on_reviewed(engine, current, fitted, args.bootstrap)
    except (StoreUnavailable, CheckpointError, ImageLoadError, NotEnoughCases, OSError, ValueError) as error:
        report_error(error)
        return 2
    print(f"wrote {output}: {fitted.version}, fitted on {provenance['fitted_on']}, threshold {head.threshold:.4f}")
    if comparison.get("n"):
        print(_difference_line(comparison))
    offered, why = promotion_verdict(comparison)
    print(f"promotion {why}")
    if offered:
        print(f"promote it on the Metrics page (Model versions) once a reviewer agrees: {Path(output).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
