"""Shared fixtures: tiny generated X-ray-like data sets and real (small) checkpoints.

No test reads the shared training images; everything here is generated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# No background model loads in tests (each AppTest run and each test server would start one);
# tests/pages/test_predict_page.py turns it on to test it.
os.environ.setdefault("PNEUMONIA_MODEL_WARM_UP", "0")
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers import make_image_folder  # noqa: E402


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-image ImageFolder data set (12 patients)."""
    return make_image_folder(tmp_path_factory.mktemp("xrays"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real resnet18 checkpoint (random weights, 64 px input) written by save_checkpoint."""
    import torch

    from core.checkpoint import CheckpointMeta, save_checkpoint
    from core.networks import IMAGENET_MEAN, IMAGENET_STD, get_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    meta = CheckpointMeta(
        arch="resnet18", image_size=64, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), threshold=0.5, temperature=1.5
    )
    save_checkpoint(path, get_model("resnet18"), meta)
    return path


@pytest.fixture(scope="session")
def shipped_checkpoint() -> Path:
    """The model shipped in models/ (real trained weights)."""
    path = REPO_ROOT / "models" / "best_model.pth"
    if not path.exists():
        pytest.fail("models/best_model.pth is missing: the shipped model must be committed")
    return path
