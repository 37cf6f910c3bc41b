"""Print the comparison table of training runs (validation figures only) as Markdown.

python -m training.summarize runs/resnet18 runs/lite0 ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.checkpoint import CheckpointError, load_checkpoint


def row(run: Path) -> str:
    """One Markdown table row for a run folder."""
    _, meta = load_checkpoint(run / "best_model.pth")
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    v, a = meta.val_metrics, meta.train_args
    recipe = ", ".join(
        filter(
            None,
            [
                a["model"],
                "ImageNet" if a.get("pretrained") else "scratch",
                f"freeze {a['freeze_stages']}" if a.get("freeze_stages") else "",
                "hflip" if a.get("hflip") else "no flip",
                a.get("balance", ""),
                f"smoothing {a['label_smoothing']}" if a.get("label_smoothing") else "",
            ],
        )
    )
    return (
        f"| {run.name} | {recipe} | {len(log)} | {log[-1]['seconds'] / 60:.0f} | {meta.epoch} | "
        f"{v['roc_auc']:.4f} | {v['accuracy']:.4f} | {v['sensitivity']:.4f} | {v['specificity']:.4f} | "
        f"{v.get('ece_uncalibrated', float('nan')):.4f} → {v['ece']:.4f} | {meta.threshold:.3f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    print(
        "| run | recipe | epochs | minutes | best epoch | val ROC-AUC | val accuracy | val sensitivity | "
        "val specificity | val ECE (raw → calibrated) | threshold |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        try:
            print(row(Path(run)))
        except (CheckpointError, OSError, KeyError) as error:
            print(f"error: {run}: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
