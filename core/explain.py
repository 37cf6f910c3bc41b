"""Explanations: Grad-CAM heat maps for the predicted class, overlaid on the X-ray.

An ONNX export made since :mod:`core.cam` computes Grad-CAM in its forward pass, so a
served model draws heat maps without torch. Otherwise the maintained ``grad-cam``
package runs on the torch network; the target layer comes from the model factory's
spec, so every architecture the factory builds is covered.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.inference import Predictor


def gradcam(predictor: Predictor, image: Image.Image, class_name: str | None = None) -> np.ndarray:
    """Grad-CAM map for one image.

    Args:
        predictor: a loaded model.
        image: RGB PIL image.
        class_name: class to explain (default: the predicted one).

    Returns:
        ``(H, W)`` float array in [0, 1] at the model's input resolution.
    """
    if class_name is None:
        class_name = predictor.predict_one(image).label
    if predictor.serves_grad_cam:  # the same map, from the ONNX file: no torch, no lock, one forward pass
        return predictor.grad_cam(image, class_name)
    return _torch_gradcam(predictor, image, class_name)


def _torch_gradcam(predictor: Predictor, image: Image.Image, class_name: str) -> np.ndarray:
    """Grad-CAM by the ``grad-cam`` package on the predictor's torch network (see :func:`gradcam`)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.networks import get_spec

    target = predictor.class_names.index(class_name)
    tensor = predictor.input_tensor(image).unsqueeze(0).to(predictor.device)
    # An ensemble names every member's last stage: grad-cam averages their maps, all driven by the averaged logits.
    layers = [predictor.model.get_submodule(name) for name in get_spec(predictor.meta.arch).cam_layer.split(",")]
    # The model is shared by every session: its hooks must see only this image's pass (see Predictor.torch_lock).
    with predictor.torch_lock, GradCAM(model=predictor.model, target_layers=layers) as cam:
        heat = cam(input_tensor=tensor, targets=[ClassifierOutputTarget(target)])[0]
        predictor.model.eval()
    heat = np.nan_to_num(heat.astype(np.float32))
    return np.clip(heat, 0.0, 1.0)


JET_SEGMENTS: dict[str, tuple[tuple[float, float], ...]] = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}
"""Matplotlib's "jet" as (position, value) knots per channel (``matplotlib._cm._jet_data``)."""
_JET_LEVELS = 256


def _jet_table() -> np.ndarray:
    positions = np.linspace(0.0, 1.0, _JET_LEVELS)
    channels = []
    for name in ("red", "green", "blue"):
        knots = np.asarray(JET_SEGMENTS[name])
        channels.append(np.interp(positions, knots[:, 0], knots[:, 1]))
    return np.stack(channels, axis=-1)


_JET_TABLE = _jet_table()


def jet(values: np.ndarray) -> np.ndarray:
    """Matplotlib's "jet" colours (RGB in [0, 1]) of values in [0, 1], the same 256-level table and lookup.

    Written out rather than imported: matplotlib's import (0.15-0.4 s) was the largest part of the
    server's first heat map. ``tests/core/test_explain.py`` checks every level against matplotlib.
    """
    index = (np.asarray(values, dtype=np.float32) * _JET_LEVELS).astype(int)  # matplotlib's lookup
    return _JET_TABLE[np.clip(index, 0, _JET_LEVELS - 1)]


def overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.4) -> Image.Image:
    """Blend a heat map (jet colours) over the image at its own size.

    Args:
        opacity: 0 shows only the X-ray, 1 only the heat map.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError("opacity must lie in [0, 1]")
    base = image.convert("RGB")
    resized = Image.fromarray((heat * 255).astype(np.uint8)).resize(base.size, Image.Resampling.BILINEAR)
    coloured = jet(np.asarray(resized, dtype=np.float32) / 255.0)
    blended = (1 - opacity) * np.asarray(base, dtype=np.float32) / 255.0 + opacity * coloured
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
