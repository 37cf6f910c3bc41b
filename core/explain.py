"""Explanations: Grad-CAM heat maps for the predicted class, overlaid on the X-ray.

An ONNX export made since :mod:`core.cam` computes Grad-CAM in its forward pass, so a
served model draws heat maps without torch. Otherwise the maintained ``grad-cam``
package runs on the torch network; the target layer comes from the model factory's
spec, so every architecture the factory builds is covered.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
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


def overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.4) -> Image.Image:
    """Blend a heat map (jet colours) over the image at its own size.

    Args:
        opacity: 0 shows only the X-ray, 1 only the heat map.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError("opacity must lie in [0, 1]")
    base = image.convert("RGB")
    resized = Image.fromarray((heat * 255).astype(np.uint8)).resize(base.size, Image.Resampling.BILINEAR)
    coloured = colormaps["jet"](np.asarray(resized, dtype=np.float32) / 255.0)[..., :3]
    blended = (1 - opacity) * np.asarray(base, dtype=np.float32) / 255.0 + opacity * coloured
    return Image.fromarray((np.clip(blended, 0, 1) * 255).astype(np.uint8))
