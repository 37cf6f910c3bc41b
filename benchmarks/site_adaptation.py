"""Site adaptation on a simulated site: before and after recalibrating from 100 reviewed cases.

The simulated site is our own held-out test split (patients never used in
training or model choice) with a realistic shift (``core.shifts.site_shift``:
tighter framing, another exposure curve and window). The script

1. writes the shifted images to ``OUT/site/{NORMAL,PNEUMONIA}``;
2. runs the product's own path on 100 fixed images: ``python -m core.predict --log``
   into a fresh SQLite database, a review with the true label for each through
   ``db.repository.add_review``, then ``python -m training.calibrate --from-reviews``;
3. evaluates the other images with ``python -m training.evaluate`` at the
   checkpoint's operating point and at the one now in force;
4. repeats the fit on 20 random draws of 100 reviewed cases (in-process, from the
   same logits) and prints the mean and range of the figures on the other images.

    python benchmarks/site_adaptation.py --data-dir ../shared/data/chest_xray/train --out runs/site_sim
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data import load_split  # noqa: E402
from core.images import load_image  # noqa: E402
from core.shifts import site_shift  # noqa: E402


def _run(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split-file", default=str(REPO / "models" / "split.json"))
    parser.add_argument("--out", default=str(REPO / "runs" / "site_sim"))
    parser.add_argument("--reviewed", type=int, default=100)
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()

    out = Path(args.out)
    site = out / "site"
    records = load_split(args.split_file, args.data_dir)["test"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(records))
    paths = []
    for index in order:
        record = records[index]
        target = site / ("PNEUMONIA" if record.label else "NORMAL") / Path(record.path).name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            site_shift(load_image(record.path)).convert("L").save(
                target, "PNG" if target.suffix == ".png" else "JPEG", quality=95
            )
        paths.append((target, record.label))
    reviewed, others = paths[: args.reviewed], paths[args.reviewed :]
    other_dir = out / "other"
    for path, _ in others:
        link = other_dir / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path.resolve())

    database = out / "reviews.db"
    database.unlink(missing_ok=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "IMAGE_STORE_DIR": str(out / "store")}
    before = _run("-m", "training.evaluate", "--data-dir", str(other_dir), "--no-progress", "--bootstrap", "0", env=env)
    print("other images, checkpoint operating point:", before.strip())
    logged = _run("-m", "core.predict", "--log", "--json", *[str(p) for p, _ in reviewed], env=env)
    ids = [json.loads(line)["prediction_id"] for line in logged.splitlines()]
    os.environ.update(env)
    from db.engine import make_engine, session_scope
    from db.repository import add_review, get_prediction

    engine = make_engine(env["DATABASE_URL"])
    for prediction_id, (_, label) in zip(ids, reviewed, strict=True):
        truth = "PNEUMONIA" if label else "NORMAL"
        with session_scope(engine) as session:
            called = get_prediction(session, prediction_id).predicted_label
            add_review(session, prediction_id, "simulated reader", called == truth, None if called == truth else truth)
    print(_run("-m", "training.calibrate", "--from-reviews", "--by", "site simulation", env=env).strip())
    after = _run(
        "-m",
        "training.evaluate",
        "--data-dir",
        str(other_dir),
        "--no-progress",
        "--bootstrap",
        "0",
        "--output",
        str(out / "other_after.json"),
        env=env,
    )
    print("other images, site operating point:", after.strip())
    _draws(out / "other_after.json", other_dir, reviewed, args)


def _draws(report_path: Path, other_dir: Path, reviewed: list[tuple[Path, int]], args: argparse.Namespace) -> None:
    """Refit on random draws of reviewed cases among all site images; score the rest."""
    from core.data import scan_image_folder
    from core.evaluation import score_records
    from core.inference import Predictor
    from core.site_adaptation import fit_site_operating_point, performance_at

    predictor = Predictor.from_checkpoint()
    records = scan_image_folder(other_dir.parent / "site")
    scored, _ = score_records(predictor, records, batch_size=64)
    margins = np.array([row["logit_margin"] for row in scored])
    labels = np.array([row["label"] for row in scored])
    results = []
    rng = np.random.default_rng(1)
    for _ in range(args.draws):
        pick = rng.permutation(len(labels))
        fit, rest = pick[: args.reviewed], pick[args.reviewed :]
        point = fit_site_operating_point(margins[fit], labels[fit], "sensitivity>=0.95", min_per_class=5)
        results.append(performance_at(point, margins[rest], labels[rest], bootstrap=0))
    checkpoint = performance_at(predictor.point, margins, labels, bootstrap=0)
    print(
        f"all {len(labels)} site images, checkpoint operating point: "
        + " ".join(f"{k}={checkpoint[k]:.3f}" for k in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece"))
    )
    print(f"{args.draws} draws of {args.reviewed} reviewed cases, figures on the other images (mean, min-max):")
    for key in ("accuracy", "sensitivity", "specificity", "roc_auc", "ece"):
        values = np.array([r[key] for r in results])
        print(f"  {key}: {values.mean():.3f} ({values.min():.3f}-{values.max():.3f})")


if __name__ == "__main__":
    main()
