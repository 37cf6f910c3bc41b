"""Grad-CAM from the ONNX export (core.cam) against the grad-cam package on the torch network: the same maps."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.cam import grad_cam_heat_map
from core.checkpoint import CheckpointMeta, save_checkpoint
from core.explain import _torch_gradcam, gradcam
from core.images import load_image
from core.inference import Predictor
from core.networks import get_model, get_spec
from tests.helpers import REPO_ROOT, real_xrays, run_main, xray_like

ONE_COLOUR_STEP = 1 / 255
"""The overlay's 8-bit colour map: a difference below this draws the same pixels."""


def _differences(served: Predictor, eager: Predictor, images: list) -> list[float]:
    """Largest pixel difference of each image's and class's map, ONNX against the grad-cam package."""
    return [
        float(np.abs(served.grad_cam(image, name) - _torch_gradcam(eager, image, name)).max())
        for image in images
        for name in served.class_names
    ]


def test_the_shipped_export_draws_the_grad_cam_packages_maps_on_real_xrays(shipped_checkpoint):
    served = Predictor.from_checkpoint(shipped_checkpoint, "cpu")
    eager = Predictor.from_checkpoint(shipped_checkpoint, "cpu", backend="torch")
    assert served.serves_grad_cam and not eager.serves_grad_cam
    images = [load_image(p) for p in real_xrays(3, "NORMAL") + real_xrays(3, "PNEUMONIA")]
    differences = _differences(served, eager, images)
    # Equal to float precision, except where an activation sits on ReLU6's edge (6.00003 in torch, 5.99999
    # after ONNX folds the batch norm into the convolution): its gradient flips, shifting the map by < 0.003.
    assert np.median(differences) < 1e-4 and max(differences) < ONE_COLOUR_STEP, differences
    maps = [served.grad_cam(image, "PNEUMONIA") for image in images]
    assert all(m.shape == (224, 224) and m.max() > 0.99 and m.std() > 0.05 for m in maps)  # not flat
    assert max(np.abs(maps[0] - m).max() for m in maps[1:]) > 0.2  # each image its own map


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "ensemble2:efficientnet_lite0"])
def test_every_factory_architecture_exports_the_same_grad_cam(arch, tmp_path):
    """ResNet pools its CAM layer directly, Lite clips it with ReLU6 first, an ensemble averages its members."""
    import torch

    torch.manual_seed(1)
    spec = get_spec(arch)
    meta = CheckpointMeta(arch=arch, image_size=96, mean=list(spec.mean), std=list(spec.std))
    path = save_checkpoint(tmp_path / "m.pth", get_model(arch).eval(), meta)
    result = run_main("core.onnx_export", path)
    assert result.returncode == 0, result.stderr
    served = Predictor.from_checkpoint(path, "cpu")
    eager = Predictor.from_checkpoint(path, "cpu", backend="torch")
    images = [xray_like(seed, seed % 2 == 0, 128).convert("RGB") for seed in range(3)]
    assert served.serves_grad_cam
    assert max(_differences(served, eager, images)) < ONE_COLOUR_STEP
    assert max(served.grad_cam(image, name).max() for image in images for name in served.class_names) > 0.99


def test_scaling_follows_the_grad_cam_package():
    from pytorch_grad_cam.utils.image import scale_cam_image

    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, 7, 7)).astype(np.float32)  # two layers, as an ensemble of two gives
    per_layer = [scale_cam_image(np.maximum(layer, 0)[None], (224, 224))[0] for layer in raw]
    expected = scale_cam_image(np.maximum(np.stack(per_layer), 0).mean(0)[None])[0]
    assert np.abs(grad_cam_heat_map(raw, (224, 224)) - expected).max() < 1e-6
    assert not grad_cam_heat_map(-np.abs(raw), (224, 224)).any()  # nothing positive: an all-zero map, no NaN


@pytest.mark.parametrize(("shape", "size"), [((7, 7), (224, 224)), ((7, 7), (240, 240)), ((10, 13), (300, 260))])
def test_upsampling_gives_opencvs_pixels(shape, size):
    """The grad-cam package resizes with OpenCV; the server upsamples with Pillow, to the same pixels."""
    import cv2

    from core.cam import _upsample

    layer = np.random.default_rng(2).random(shape).astype(np.float32)
    assert np.abs(_upsample(layer, size) - cv2.resize(layer, size)).max() < 1e-6
    with pytest.raises(ValueError, match="larger than the input"):
        _upsample(layer, (5, 5))  # downsampling would filter differently: refused, not silently different


def test_older_exports_without_the_cam_output_fall_back_to_the_grad_cam_package(tmp_path):
    """An export from before core.cam: calls from ONNX, the heat map from torch as before."""
    import onnx

    from core.checkpoint import file_sha256, load_checkpoint
    from core.onnx_runtime import onnx_path

    checkpoint = tmp_path / "model.pth"
    shutil.copy(REPO_ROOT / "models" / "best_model.pth", checkpoint)
    graph = onnx.load(REPO_ROOT / "models" / "best_model.onnx")
    kept = [output for output in graph.graph.output if output.name != "cam"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, onnx_path(checkpoint))
    model, meta = load_checkpoint(checkpoint)
    meta.onnx_sha256 = file_sha256(onnx_path(checkpoint))
    save_checkpoint(checkpoint, model, meta)
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    assert predictor.backend == "onnxruntime" and not predictor.serves_grad_cam
    image = xray_like(4, True, 256).convert("RGB")
    shipped = Predictor.from_checkpoint(REPO_ROOT / "models" / "best_model.pth", "cpu")
    assert np.abs(gradcam(predictor, image, "PNEUMONIA") - gradcam(shipped, image, "PNEUMONIA")).max() < 1e-4


def test_the_shipped_model_draws_a_heat_map_without_importing_torch():
    code = (
        "import sys\n"
        "from core.explain import gradcam, overlay\n"
        "from core.inference import Predictor\n"
        "from tests.helpers import xray_like\n"
        "p = Predictor.from_checkpoint(None, 'cpu')\n"
        "image = xray_like(3, True, 256).convert('RGB')\n"
        "heat = gradcam(p, image)\n"
        "overlay(image, heat)\n"
        "gone = [m for m in ('torch', 'pytorch_grad_cam', 'cv2', 'matplotlib') if m in sys.modules]\n"
        "print(heat.shape, round(float(heat.max()), 2), gone)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "(224, 224) 1.0 []", result.stderr[-2000:]
