"""The seed-spread table: each recipe's mean and range over its seeds, on validation, the clean test sample
and every stress perturbation, so a recipe is chosen on evidence rather than on one draw.

    python -m training.spread runs/seeds/*/seed*  [--json out.json]

Each run folder holds ``train_log.jsonl`` (``training.train``) and ``stress.json``
(``training.evaluate --stress --output``); the recipe is the folder's parent name
(``training/seeds.sh`` lays them out so).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from core.cli import report_error

FIGURES = ("accuracy", "roc_auc", "sensitivity", "specificity", "ece")


@dataclass(frozen=True)
class RunFigures:
    """One trained seed: validation ROC-AUC, clean test figures, and figures per perturbation."""

    recipe: str
    run: str
    val_roc_auc: float
    clean: dict[str, float]
    stress: dict[str, dict[str, float]]


def read_run(folder: Path) -> RunFigures:
    """Figures of one run folder.

    Raises:
        OSError, ValueError, KeyError, CheckpointError: a missing or malformed log, report or checkpoint.
    """
    report = json.loads((folder / "stress.json").read_text())
    log = folder / "train_log.jsonl"
    if log.exists():
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        val_roc_auc = float(([row for row in rows if row.get("best")] or rows)[-1]["roc_auc"])
    else:  # not trained as one (an ensemble): its checkpoint's validation figure
        from core.checkpoint import load_checkpoint

        val_roc_auc = float(load_checkpoint(folder / "best_model.pth")[1].val_metrics["roc_auc"])
    stress = {name: {k: float(entry[k]) for k in FIGURES} for name, entry in report.get("stress", {}).items()}
    return RunFigures(
        folder.parent.name,
        folder.name,
        val_roc_auc,
        {k: float(report[k]) for k in FIGURES},
        stress,
    )


@dataclass(frozen=True)
class Spread:
    """Mean and range over seeds."""

    mean: float
    low: float
    high: float
    n: int

    def text(self) -> str:
        """``"0.912 (0.880-0.951)"``; one seed: the value alone."""
        if self.n == 1:
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ({self.low:.3f}-{self.high:.3f})"


def spread(values: list[float]) -> Spread:
    """Mean, minimum and maximum of ``values``."""
    return Spread(mean(values), min(values), max(values), len(values))


def recipe_table(runs: list[RunFigures]) -> dict[str, dict[str, Spread]]:
    """Per recipe: validation ROC-AUC, clean test figures, the mean and the worst over the perturbations.

    ``stress_mean_*`` averages a seed's figure over the perturbations it was scored on;
    ``stress_worst_specificity`` is its lowest specificity under any of them (the failure
    seen on new patients: NORMAL children called PNEUMONIA), ``stress_worst_sensitivity``
    its lowest sensitivity (the clinical goal is >= 0.95: missed pneumonia).
    """
    by_recipe: dict[str, list[RunFigures]] = defaultdict(list)
    for run in runs:
        by_recipe[run.recipe].append(run)
    table: dict[str, dict[str, Spread]] = {}
    for recipe, seeds in sorted(by_recipe.items()):
        row = {"val_roc_auc": spread([s.val_roc_auc for s in seeds])}
        for figure in FIGURES:
            row[f"test_{figure}"] = spread([s.clean[figure] for s in seeds])
        stressed = [s for s in seeds if s.stress]
        if stressed:
            for figure in ("roc_auc", "sensitivity", "specificity", "ece"):
                row[f"stress_mean_{figure}"] = spread([mean(v[figure] for v in s.stress.values()) for s in stressed])
            for figure in ("sensitivity", "specificity"):
                row[f"stress_worst_{figure}"] = spread([min(v[figure] for v in s.stress.values()) for s in stressed])
        table[recipe] = row
    return table


def perturbation_table(runs: list[RunFigures], figure: str = "specificity") -> dict[str, dict[str, Spread]]:
    """Per perturbation and recipe: ``figure`` over the seeds."""
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        cells["clean"][run.recipe].append(run.clean[figure])
        for name, figures in run.stress.items():
            cells[name][run.recipe].append(figures[figure])
    return {name: {recipe: spread(v) for recipe, v in row.items()} for name, row in cells.items()}


def markdown(runs: list[RunFigures]) -> str:
    """Both tables as Markdown."""
    table = recipe_table(runs)
    columns = sorted({key for row in table.values() for key in row}, key=_column_order)
    seeds: dict[str, int] = defaultdict(int)
    for run in runs:
        seeds[run.recipe] += 1
    lines = [
        "| recipe | seeds | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for recipe, row in table.items():
        cells = [row[c].text() if c in row else "" for c in columns]
        lines.append(f"| {recipe} | {seeds[recipe]} | " + " | ".join(cells) + " |")
    recipes = list(table)
    for figure in ("specificity", "sensitivity"):
        lines += [
            "",
            f"| {figure} under | " + " | ".join(recipes) + " |",
            "| --- | " + " | ".join("---" for _ in recipes) + " |",
        ]
        for name, row in perturbation_table(runs, figure).items():
            lines.append(f"| {name} | " + " | ".join(row[r].text() if r in row else "" for r in recipes) + " |")
    return "\n".join(lines)


def _column_order(name: str) -> tuple[int, str]:
    prefixes = ("val_", "test_", "stress_mean", "stress_worst")
    return next((i for i, p in enumerate(prefixes) if name.startswith(p)), len(prefixes)), name


def as_json(runs: list[RunFigures]) -> dict[str, Any]:
    """The recipe table as plain numbers."""
    return {
        recipe: {key: {"mean": s.mean, "min": s.low, "max": s.high, "seeds": s.n} for key, s in row.items()}
        for recipe, row in recipe_table(runs).items()
    }


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m training.spread``."""
    parser = argparse.ArgumentParser(prog="python -m training.spread", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (recipe/seedN), each with train_log.jsonl and stress.json")
    parser.add_argument("--json", default=None, help="also write the recipe table as JSON")
    return parser


def main(args: argparse.Namespace) -> int:
    """Print the tables; returns the exit status."""
    try:
        runs = [read_run(Path(folder)) for folder in args.runs]
    except (OSError, ValueError, KeyError) as error:  # CheckpointError is a ValueError
        report_error(f"cannot read a run: {error}")
        return 2
    print(markdown(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(as_json(runs), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
