import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import CheckpointMeta, save_checkpoint
from core.explain import gradcam, jet, overlay
from core.inference import Predictor
from core.networks import get_model, get_spec
from tests.helpers import REPO_ROOT, xray_like


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_gradcam_for_every_factory_model(arch, tmp_path):
    spec = get_spec(arch)
    path = save_checkpoint(
        tmp_path / "m.pth",
        get_model(arch),
        CheckpointMeta(arch=arch, image_size=96, mean=list(spec.mean), std=list(spec.std)),
    )
    predictor = Predictor.from_checkpoint(path, "cpu")
    heat = gradcam(predictor, xray_like(1, True, 128).convert("RGB"))
    assert heat.shape == (96, 96) and heat.min() >= 0.0 and heat.max() <= 1.0
    assert not predictor.model.training


def test_overlay_opacity_extremes():
    image = xray_like(2, False, 80).convert("RGB")
    heat = np.zeros((10, 10), np.float32)
    assert np.array_equal(np.asarray(overlay(image, heat, 0.0)), np.asarray(image))
    full = np.asarray(overlay(image, heat, 1.0))
    assert full.shape == (80, 80, 3) and full[..., 2].mean() > full[..., 0].mean()  # jet(0) is blue
    with pytest.raises(ValueError):
        overlay(image, heat, 1.5)


def test_jet_is_matplotlibs_jet_at_every_level():
    from matplotlib import colormaps

    levels = np.arange(256, dtype=np.float32) / 255.0  # what overlay looks up: an 8-bit map
    assert np.abs(jet(levels) - colormaps["jet"](levels)[..., :3]).max() < 1e-12  # float rounding only
    fine = np.linspace(-0.1, 1.1, 5001).astype(np.float32)  # outside [0, 1]: the end colours, as matplotlib
    assert np.abs(jet(fine) - colormaps["jet"](fine)[..., :3]).max() < 1e-12


def test_overlay_draws_what_matplotlibs_jet_drew():
    from matplotlib import colormaps

    image = xray_like(5, True, 90).convert("RGB")
    heat = np.random.default_rng(1).random((7, 7)).astype(np.float32)
    resized = Image.fromarray((heat * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    coloured = colormaps["jet"](np.asarray(resized, dtype=np.float32) / 255.0)[..., :3]
    blended = 0.6 * np.asarray(image, dtype=np.float32) / 255.0 + 0.4 * coloured
    expected = (np.clip(blended, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(overlay(image, heat, 0.4)), expected)


def test_cli_heatmap(tiny_checkpoint, tmp_path):
    source = tmp_path / "x.png"
    xray_like(3, True, 96).save(source)
    out = tmp_path / "cam.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.predict",
            str(source),
            "--heatmap",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (96, 96)


def test_tta_averages_views(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    images = [xray_like(i, True, 96).convert("RGB") for i in range(3)]
    plain = predictor.predict_proba(images)
    predictor.tta = True
    augmented = predictor.predict_proba(images)
    assert not np.allclose(plain, augmented) and np.allclose(augmented, predictor.predict_proba(images))
    assert np.allclose(augmented.sum(1), 1)
