"""Many dashboard sessions share one loaded model: predictions and heat maps from 8 threads at once must
equal what one thread computes for the same image (real weights, the shipped checkpoint)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.explain import gradcam
from core.inference import Predictor
from tests.helpers import xray_like

THREADS = 8
ROUNDS = 3


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_predictions_and_heat_maps_from_8_threads_equal_single_thread(shipped_checkpoint, backend):
    predictor = Predictor.from_checkpoint(shipped_checkpoint, "cpu", backend=backend)
    images = [xray_like(seed, seed % 2 == 0, 256).convert("RGB") for seed in range(THREADS)]
    alone = [(predictor.predict_proba([image])[0], gradcam(predictor, image)) for image in images]
    assert max(np.abs(alone[0][1] - heat).max() for _, heat in alone[1:]) > 0.05  # the maps differ by image

    def session(index: int) -> list[tuple[np.ndarray, np.ndarray]]:
        image = images[index]
        # Each session holds its own operating-point copy of the one shared model, as the pages do.
        own = predictor.at(predictor.point)
        return [(own.predict_proba([image])[0], gradcam(own, image)) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(session, range(THREADS)))
    for index, runs in enumerate(together):
        proba, heat = alone[index]
        for run_proba, run_heat in runs:
            np.testing.assert_allclose(run_proba, proba, atol=1e-5)
            assert np.abs(run_heat - heat).max() < 1e-4, f"image {index}: heat map from another image"


def test_operating_point_copies_share_the_models_lock(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    assert predictor.at(predictor.point).torch_lock is predictor.torch_lock
