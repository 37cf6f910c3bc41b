"""Shared fixtures: tiny generated X-ray-like data sets and real (small) checkpoints.

No test reads the shared training images; everything here is generated.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def xray_like(seed: int, pneumonia: bool, size: int = 64) -> Image.Image:
    """A grayscale chest-X-ray-like picture: dark lungs in a bright body, cloudy when 'pneumonia'."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 30)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.08, size * 0.05, size * 0.92, size * 1.1), fill=170)
    for left in (0.18, 0.55):
        draw.ellipse((size * left, size * 0.18, size * (left + 0.27), size * 0.85), fill=60)
    if pneumonia:
        for _ in range(4):
            x, y = rng.uniform(0.2, 0.75) * size, rng.uniform(0.3, 0.75) * size
            r = rng.uniform(0.06, 0.12) * size
            draw.ellipse((x - r, y - r, x + r, y + r), fill=150)
    noise = rng.normal(0, 8, (size, size))
    array = np.clip(np.asarray(image.filter(ImageFilter.GaussianBlur(size / 40)), float) + noise, 0, 255)
    return Image.fromarray(array.astype(np.uint8), mode="L")


def make_image_folder(root: Path, per_class: int = 12, size: int = 64, images_per_patient: int = 2) -> Path:
    """Write an ImageFolder tree with Kermany-style names (several images per patient)."""
    for label, folder in enumerate(("NORMAL", "PNEUMONIA")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            patient = i // images_per_patient
            if label:
                name = f"person{patient + 100}_bacteria_{i}.jpeg"
            else:
                name = f"IM-{patient + 1:04d}-{i:04d}.jpeg"
            xray_like(i + 1000 * label, bool(label), size).save(root / folder / name)
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-image ImageFolder data set (12 patients)."""
    return make_image_folder(tmp_path_factory.mktemp("xrays"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real resnet18 checkpoint (random weights, 64 px input) written by save_checkpoint."""
    import torch

    from core.checkpoint import CheckpointMeta, save_checkpoint
    from core.models import IMAGENET_MEAN, IMAGENET_STD, get_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    meta = CheckpointMeta(arch="resnet18", image_size=64, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD),
                          threshold=0.5, temperature=1.5)
    save_checkpoint(path, get_model("resnet18"), meta)
    return path


@pytest.fixture(scope="session")
def shipped_checkpoint() -> Path:
    """The model shipped in models/ (real trained weights)."""
    path = REPO_ROOT / "models" / "best_model.pth"
    if not path.exists():
        pytest.fail("models/best_model.pth is missing: the shipped model must be committed")
    return path
