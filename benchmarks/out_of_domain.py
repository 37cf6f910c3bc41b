"""Out-of-domain detectors compared, the shipped one's flag rates, and the monitor's alarm rates.

python benchmarks/out_of_domain.py [--data-dir ../shared/data/chest_xray/train] [--per-set 200]

1. Detector comparison: each candidate is fitted on 1,500 training images of ``models/split.json``,
   cut at the 97.5th percentile of the validation part, and its flag rate printed on the held-out
   test part, on shifted copies of test images (``core.shifts``, mild and severe), on far copies
   (rotated, upside down, inverted, shrunk) and on the generated non-X-rays (``core.non_xrays``).
   Candidates: energy (Liu et al. 2020, logits only), Mahalanobis on the pooled penultimate
   features (tied, as the issue's first look; class-conditional, Lee et al. 2018), cosine k-NN on
   them (Sun et al. 2022), Mahalanobis on each block's channel means, several blocks combined.
2. The shipped detector (read from the checkpoint) through ``core.inference``: its flags per set.
3. The monitor (``service.monitoring.window_figures``): windows drawn at random from the test
   part's predictions (in-domain) and from shifted ones; the share of windows that alarm.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import shifts  # noqa: E402
from core.data import load_split  # noqa: E402
from core.domain import CUT_QUANTILE, HEAD_INPUT, FeatureTap, fit_domain  # noqa: E402
from core.images import load_image  # noqa: E402
from core.inference import Predictor  # noqa: E402
from core.non_xrays import non_xray_images  # noqa: E402
from core.registry import REPO_ROOT, default_checkpoint  # noqa: E402

CANDIDATE_LAYERS = ["_blocks.4", "_blocks.7", "_blocks.10", "_blocks.14", "_blocks.15", HEAD_INPUT]
MILD = ["gamma_0.7", "gamma_1.4", "jpeg_30", "rotate_7", "shift_8", "zoom_in_10"]
SEVERE = ["blur_1.5", "noise_8", "combined", "site", "low_res_site", "zoom_out_15"]
FAR: dict[str, Callable[[Image.Image], Image.Image]] = {
    "rotated 90": lambda image: image.rotate(90, expand=True),
    "upside down": lambda image: image.rotate(180),
    "inverted": ImageOps.invert,
    "shrunk to half": lambda image: shifts.zoom_out(image, 0.5),
}


def _features(predictor: Predictor, images: list[Image.Image]) -> dict[str, np.ndarray]:
    """Channel means of every candidate layer, and the logits, in one pass per batch."""
    with predictor.torch_lock, FeatureTap(predictor.model, CANDIDATE_LAYERS) as tap:
        logits = predictor.logits(images).numpy()
        stacked = tap.take()
    out, start = {"logits": logits}, 0
    for name in CANDIDATE_LAYERS:
        width = tap.widths[name]
        out[name] = stacked[:, start : start + width]
        start += width
    return out


def _mahalanobis(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.covariance import LedoitWolf

    fit = LedoitWolf().fit(train)
    return lambda x: (((x - fit.location_) @ fit.precision_) * (x - fit.location_)).sum(1)


def _detectors(train: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Callable[[dict], np.ndarray]]:
    from scipy.special import logsumexp
    from sklearn.covariance import LedoitWolf

    found: dict[str, Callable[[dict], np.ndarray]] = {"energy (logits)": lambda s: -logsumexp(s["logits"], 1)}
    penultimate = train[HEAD_INPUT]
    tied = _mahalanobis(penultimate)
    found["Mahalanobis penultimate, tied"] = lambda s: tied(s[HEAD_INPUT])
    means = [penultimate[labels == c].mean(0) for c in (0, 1)]
    shared = LedoitWolf(assume_centered=True).fit(np.concatenate([penultimate[labels == c] - means[c] for c in (0, 1)]))

    def per_class(s: dict) -> np.ndarray:
        x = s[HEAD_INPUT]
        return np.min([(((x - m) @ shared.precision_) * (x - m)).sum(1) for m in means], 0)

    found["Mahalanobis penultimate, per class"] = per_class
    bank = penultimate / np.linalg.norm(penultimate, axis=1, keepdims=True)

    def knn(s: dict, k: int = 10) -> np.ndarray:
        x = s[HEAD_INPUT] / np.linalg.norm(s[HEAD_INPUT], axis=1, keepdims=True)
        return -np.sort(x @ bank.T, 1)[:, -k]

    found["k-NN (k=10) penultimate"] = knn
    for layer in CANDIDATE_LAYERS[:-1]:
        distance = _mahalanobis(train[layer])
        found[f"Mahalanobis {layer}"] = lambda s, d=distance, n=layer: d(s[n])
    return found


def _combined(train: dict, val: dict, layers: list[str]) -> Callable[[dict], np.ndarray]:
    """Several layers as core.domain combines them: the max of standardised log-distances."""
    joined = np.concatenate([train[n] for n in layers], 1)
    detector = fit_domain(
        joined, np.concatenate([val[n] for n in layers], 1), layers, [train[n].shape[1] for n in layers]
    )
    return lambda s: detector.scores(np.concatenate([s[n] for n in layers], 1))


def _sets(parts: dict, per_set: int) -> dict[str, list[Image.Image]]:
    test = [load_image(r.path) for r in parts["test"]]
    sub = test[:per_set]
    sets = {"held-out test": test}
    sets.update({f"mild: {n}": [shifts.SHIFTS[n](i) for i in sub] for n in MILD})
    sets.update({f"severe: {n}": [shifts.SHIFTS[n](i) for i in sub] for n in SEVERE})
    sets.update({f"far: {n}": [f(i) for i in sub] for n, f in FAR.items()})
    sets["non-X-rays"] = list(non_xray_images().values())
    return sets


def _monitor_rates(predictor: Predictor, sets: dict[str, list[Image.Image]], windows: int) -> None:
    from service.monitoring import Reference, window_figures

    reference = Reference.from_meta(predictor.meta, predictor.point)
    print(f"\n3. Monitor: share of {windows} random windows that raise any alarm (level per test 0.001)")
    print("| stream | window of 50 | window of 150 |")
    print("| --- | --- | --- |")
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    streams = {"held-out test (in domain)": sets["held-out test"]}
    for name in ("mild: jpeg_30", "severe: site", "severe: combined", "severe: low_res_site"):
        streams[name.split(": ")[1] + " (all of the window)"] = sets[name]
    for name, images in streams.items():
        results = predictor.predictions(images)
        p = np.array([r.p_pneumonia for r in results])
        called = np.array([r.label == "PNEUMONIA" for r in results])
        flagged = np.array([bool(r.out_of_domain) for r in results])
        scores = np.array([r.domain_score for r in results], dtype=np.float64)
        rates = []
        for size in (50, 150):
            alarmed = 0
            for _ in range(windows):
                pick = rng.integers(0, len(p), size)
                window = window_figures(
                    now, now + timedelta(days=7), p[pick], called[pick], flagged[pick], scores[pick], reference
                )
                alarmed += bool(window.alarms)
            rates.append(f"{alarmed / windows:.3f}")
        print(f"| {name} | {rates[0]} | {rates[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(REPO_ROOT.parent / "shared/data/chest_xray/train"))
    parser.add_argument("--split-file", default=str(REPO_ROOT / "models/split.json"))
    parser.add_argument("--per-set", type=int, default=200, help="test images per shifted set")
    parser.add_argument("--windows", type=int, default=400, help="random windows per monitor figure")
    args = parser.parse_args()
    started = time.perf_counter()
    parts = load_split(args.split_file, args.data_dir)
    torch_predictor = Predictor.from_checkpoint(default_checkpoint(), "cpu", backend="torch")
    train_records = random.Random(0).sample(parts["train"], min(1500, len(parts["train"])))
    train = _features(torch_predictor, [load_image(r.path) for r in train_records])
    val = _features(torch_predictor, [load_image(r.path) for r in parts["val"]])
    sets = _sets(parts, args.per_set)
    features = {name: _features(torch_predictor, images) for name, images in sets.items()}
    detectors = _detectors(train, np.array([r.label for r in train_records]))
    detectors["Mahalanobis _blocks.14 + _blocks.15 + penultimate (max)"] = _combined(
        train, val, ["_blocks.14", "_blocks.15", HEAD_INPUT]
    )
    detectors["Mahalanobis _blocks.15 + penultimate (max)"] = _combined(train, val, ["_blocks.15", HEAD_INPUT])
    names = list(sets)
    print(
        f"1. Detector comparison: flag rates at the validation {CUT_QUANTILE:.1%} cut "
        f"({len(train_records)} training images)"
    )
    print("| detector | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for label, detector in detectors.items():
        cut = np.quantile(detector(val), CUT_QUANTILE)
        cells = [f"{np.mean(detector(features[n]) > cut):.3f}" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")

    print("\n2. The shipped detector through core.inference (ONNX Runtime), per set")
    predictor = Predictor.from_checkpoint(default_checkpoint(), "cpu")
    assert predictor.domain is not None, predictor.domain_problem
    print(f"({predictor.domain.summary_line()}; backend {predictor.backend})")
    print("| set | images | flagged |")
    print("| --- | --- | --- |")
    for name, images in sets.items():
        flags = [r.out_of_domain for r in predictor.predictions(images)]
        print(f"| {name} | {len(flags)} | {np.mean(flags):.3f} |")
    _monitor_rates(predictor, sets, args.windows)
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
