"""The X-ray plausibility check, on generated non-X-rays and on the real training X-rays."""

import random

import pytest

from core.images import load_image
from core.input_checks import NotAnXrayError, load_xray, xray_problem
from tests.helpers import REPO_ROOT, non_xrays, xray_like

SHARED_TRAIN = REPO_ROOT.parent / "shared" / "data" / "chest_xray" / "train"


@pytest.mark.parametrize("name", list(non_xrays()))
def test_generated_non_xrays_are_refused(name):
    assert xray_problem(non_xrays()[name]) is not None


def test_xray_like_images_pass():
    for seed in range(20):
        assert xray_problem(xray_like(seed, seed % 2 == 1, 224).convert("RGB")) is None


def test_load_xray_refuses_with_reason(tmp_path):
    path = tmp_path / "photo.png"
    non_xrays()["landscape"].save(path)
    with pytest.raises(NotAnXrayError, match="colour"):
        load_xray(path, name="photo.png")


@pytest.mark.skipif(not SHARED_TRAIN.is_dir(), reason="shared training X-rays not beside the repository")
def test_false_refusals_on_real_training_xrays_below_one_percent():
    paths = sorted(p for p in SHARED_TRAIN.rglob("*.jpeg"))
    sample = random.Random(0).sample(paths, min(600, len(paths)))
    refused = [p.name for p in sample if xray_problem(load_image(p)) is not None]
    assert len(refused) / len(sample) < 0.01, refused[:10]
