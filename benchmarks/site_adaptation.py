"""Site adaptation over many random draws of reviewed cases: the spread, not one draw.

    python benchmarks/site_adaptation.py --make-site runs/site_bench/site --data-dir ../shared/data/chest_xray/train
    python benchmarks/site_adaptation.py --draws 20 --reviewed 100,300 runs/site_bench/site [--site-head]

``--make-site DIR`` writes our own held-out test split (patients never used in
training or model choice) under ``core.shifts.low_resolution_site``: a shift
that degrades the ranking (held-out ROC-AUC 0.998 -> 0.972), not only the
calibration. Then, on the labelled folder ``DIR`` (``NORMAL/``, ``PNEUMONIA/``):

1. every image is logged once through the real command, ``python -m core.predict --log``,
   into a template review database, and scored once by ``python -m training.evaluate``
   (its per-image raw logit margins);
2. for each size and each of ``--draws`` fixed random draws (seed = draw number), a copy of the
   template gets a review with the true label for the drawn images
   (``db.repository.add_review``), and each rule runs as users run it:

   - ``checkpoint``: nothing changes;
   - ``sample goal``: ``training.calibrate --from-reviews --threshold-goal sensitivity>=0.95
     --override`` (the earlier workflow: the goal met on the sample alone, saved whatever the evidence);
   - ``confident goal (default)``: ``training.calibrate --from-reviews`` with its defaults
     (``sensitivity>=0.95@0.90`` and the guardrails; a refusal leaves the point in force);
   - ``site head`` (with ``--site-head``): ``training.site_head``, used only when it offers promotion;

3. the other images of the folder are scored at the point in force afterwards, read from the
   draw's database. ``training.evaluate`` would give the same figures (same model, same margins,
   same labelling function); re-scoring the margins of step 1 avoids 60 more scoring runs.

It prints, for each rule and size, mean and worst accuracy, sensitivity and
specificity on the other images, how many draws fell below 0.93 sensitivity,
and how many draws changed the point; ``results.json`` beside the databases
keeps every draw. Figures go in docs/site-adaptation.md (never asserted).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SENSITIVITY_FLOOR = 0.93
RULES = ("checkpoint", "sample goal", "confident goal (default)")


def _run(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed: {result.stderr[-2000:]}")
    return result


def make_site(out: Path, data_dir: str, split_file: str) -> None:
    """Write the held-out test split under the low-resolution site shift into ``out/{NORMAL,PNEUMONIA}``."""
    from core.data import load_split
    from core.images import load_image
    from core.labels import CLASS_NAMES
    from core.shifts import low_resolution_site

    records = load_split(split_file, data_dir)["test"]
    for record in records:
        target = out / CLASS_NAMES[record.label] / (Path(record.path).stem + ".png")
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            low_resolution_site(load_image(record.path)).convert("L").save(target)
    print(f"wrote {len(records)} shifted held-out images to {out}")


def _template(site: Path, work: Path) -> tuple[dict[str, str], list[tuple[Path, int, int, float]]]:
    """Log every image into a template database and score it once: ``(env, [(path, label, id, margin)])``."""
    from core.data import scan_image_folder

    template = work / "template.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{template}", "IMAGE_STORE_DIR": str(work / "store")}
    records = scan_image_folder(site)
    cases_file = work / "template.json"
    if cases_file.exists() and template.exists():
        return env, [(Path(p), int(y), int(i), float(m)) for p, y, i, m in json.loads(cases_file.read_text())]
    template.unlink(missing_ok=True)
    logged = _run("-m", "core.predict", "--log", "--json", *[r.path for r in records], env=env).stdout
    ids = [json.loads(line)["prediction_id"] for line in logged.splitlines()]
    report = work / "all.json"
    args = ["--data-dir", str(site), "--no-progress", "--bootstrap", "0", "--output", str(report)]
    _run("-m", "training.evaluate", *args, "--checkpoint-operating-point", env=env)
    margins = {Path(p["path"]).name: p["logit_margin"] for p in json.loads(report.read_text())["predictions"]}
    cases = [(Path(r.path), r.label, i, margins[Path(r.path).name]) for r, i in zip(records, ids, strict=True)]
    cases_file.write_text(json.dumps([[str(p), y, i, m] for p, y, i, m in cases]))
    return env, cases


def _draw_database(template: Path, target: Path, reviewed: list[tuple[Path, int, int, float]]) -> str:
    """A copy of the template (SQLite's backup API) with a true-label review of each drawn case."""
    from db.engine import make_engine, session_scope
    from db.repository import add_review, get_prediction

    target.unlink(missing_ok=True)
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    url = f"sqlite:///{target}"
    engine = make_engine(url)
    with session_scope(engine) as session:
        for _, label, prediction_id, _ in reviewed:
            truth = "PNEUMONIA" if label else "NORMAL"
            agrees = get_prediction(session, prediction_id).predicted_label == truth
            # The simulated site's images are flagged out of domain; the reader confirms they are usable.
            add_review(
                session, prediction_id, "simulated reader", agrees, None if agrees else truth, domain_confirmed=True
            )
    engine.dispose()
    return url


def _point_in_force(url: str) -> Any:
    from service import known_models
    from service.store import open_store

    engine = open_store(url)
    point = known_models.predictor_in_force(engine, _checkpoint_predictor()).point
    engine.dispose()
    return point


@lru_cache(maxsize=1)
def _checkpoint_predictor() -> Any:
    from core.inference import Predictor

    return Predictor.from_checkpoint()


def _figures(calls: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float((calls == labels).mean()),
        "sensitivity": float(calls[labels == 1].mean()),
        "specificity": float(1 - calls[labels == 0].mean()),
    }


def _site_head_calls(url: str, env: dict[str, str], work: Path, rest: list[int], features: np.ndarray) -> Any:
    """Run training.site_head on the draw; the head's calls on ``rest`` when it offers promotion, else None."""
    from core.checkpoint import load_checkpoint
    from core.site_head import head_layer

    output = work / "site_head.pth"
    result = _run("-m", "training.site_head", "--output", str(output), env={**env, "DATABASE_URL": url}, check=False)
    if result.returncode or "promotion offered" not in result.stdout:
        return None
    model, meta = load_checkpoint(output)
    _, layer = head_layer(model)
    weight = (layer.weight[1] - layer.weight[0]).detach().numpy()
    bias = float(layer.bias[1] - layer.bias[0])
    p = 1.0 / (1.0 + np.exp(-(features[rest] @ weight + bias)))
    return (p >= meta.threshold).astype(int)


def run_draws(
    site: Path, work: Path, sizes: list[int], draws: int, site_head: bool, chosen: list[str] | None = None
) -> dict[str, Any]:
    """Every rule on every draw; returns ``{size: {rule: [figures per draw]}}``."""
    env, cases = _template(site, work)
    labels = np.array([c[1] for c in cases])
    margins = np.array([c[3] for c in cases])
    features = None
    if site_head:
        from core.images import load_image
        from core.inference import Predictor
        from core.site_head import network_features

        torch_model = Predictor.from_checkpoint(backend="torch")
        features = network_features(torch_model, [load_image(c[0]) for c in cases])
    checkpoint_point = _checkpoint_predictor().point
    results: dict[str, Any] = {}
    for size in sizes:
        rules = [r for r in ((*RULES, "site head") if site_head else RULES) if chosen is None or r in chosen]
        per_rule: dict[str, list[dict[str, Any]]] = {rule: [] for rule in rules}
        for draw in range(draws):
            started = time.time()
            order = np.random.default_rng(draw).permutation(len(cases))
            reviewed, rest = [cases[i] for i in order[:size]], order[size:]
            for rule in per_rule:
                if rule == "checkpoint":
                    point, changed = checkpoint_point, False
                    calls = (point.p_pneumonia_from_margin(margins[rest]) >= point.threshold).astype(int)
                else:
                    url = _draw_database(work / "template.db", work / "draw.db", reviewed)
                    if rule == "site head":
                        assert features is not None
                        head_calls = _site_head_calls(url, env, work, list(rest), features)
                        changed = head_calls is not None
                        point = checkpoint_point
                        calls = (
                            head_calls
                            if changed
                            else (point.p_pneumonia_from_margin(margins[rest]) >= point.threshold).astype(int)
                        )
                    else:
                        extra = ["--threshold-goal", "sensitivity>=0.95", "--override"] if rule == "sample goal" else []
                        command = ["-m", "training.calibrate", "--from-reviews", "--by", "benchmark", *extra]
                        _run(*command, "--bootstrap", "0", env={**env, "DATABASE_URL": url}, check=False)
                        point = _point_in_force(url)
                        changed = point.change_id is not None
                        calls = (point.p_pneumonia_from_margin(margins[rest]) >= point.threshold).astype(int)
                per_rule[rule].append({"draw": draw, "changed": changed, **_figures(calls, labels[rest])})
            line = " ".join(f"{rule[:10]}={per_rule[rule][-1]['sensitivity']:.3f}" for rule in per_rule)
            print(f"  {size} reviewed, draw {draw}: sensitivity {line} ({time.time() - started:.0f} s)", flush=True)
        results[str(size)] = per_rule
    return results


def print_table(results: dict[str, Any], n_images: int) -> None:
    """Mean and worst figures on the other images, per size and rule."""
    print(f"\nfigures on the other images of the site ({n_images} in all), per rule:")
    print(
        "| reviewed | rule | accuracy mean (worst) | sensitivity mean (worst) | specificity mean (worst) "
        f"| draws < {SENSITIVITY_FLOOR} sens. | draws changed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size, per_rule in results.items():
        for rule, rows in per_rule.items():
            cells = []
            for key in ("accuracy", "sensitivity", "specificity"):
                values = np.array([r[key] for r in rows])
                cells.append(f"{values.mean():.3f} ({values.min():.3f})")
            low = sum(r["sensitivity"] < SENSITIVITY_FLOOR for r in rows)
            changed = sum(r["changed"] for r in rows)
            print(f"| {size} | {rule} | {' | '.join(cells)} | {low} / {len(rows)} | {changed} / {len(rows)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", nargs="?", help="labelled folder (NORMAL/, PNEUMONIA/)")
    parser.add_argument("--make-site", metavar="DIR", help="write the shifted held-out split to DIR and stop")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "chest_xray" / "train"))
    parser.add_argument("--split-file", default=str(REPO / "models" / "split.json"))
    parser.add_argument("--reviewed", default="100,300", help="comma list of reviewed-sample sizes")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--site-head", action="store_true", help="also fit and judge a site head per draw")
    parser.add_argument("--rules", default=None, help="comma list of rules to run (default: all)")
    parser.add_argument("--work", default=None, help="databases and results (default: SITE/../work)")
    args = parser.parse_args()
    if args.make_site:
        make_site(Path(args.make_site), args.data_dir, args.split_file)
        return
    if not args.site:
        parser.error("give the labelled site folder (or --make-site DIR)")
    site = Path(args.site)
    work = Path(args.work) if args.work else site.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.reviewed.split(",")]
    chosen = args.rules.split(",") if args.rules else None
    results = run_draws(site, work, sizes, args.draws, args.site_head, chosen)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print_table(results, sum(1 for p in site.rglob("*") if p.is_file()))


if __name__ == "__main__":
    main()
