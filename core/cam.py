"""Grad-CAM served without torch: the ONNX export computes it in the forward pass, this scales it.

For the heads we ship (the CAM layer, then at most a clipping activation, a global average
pool and one linear layer) the gradient of logit ``c`` with respect to the CAM layer's
activation ``A_k(i, j)`` is ``W_ck / HW`` where the activation passes the gradient (inside
ReLU6's bounds for EfficientNet-Lite) and zero elsewhere. Grad-CAM's channel weights, the
spatial means of those gradients, are therefore a function of one forward pass:
:func:`core.onnx_export.export_onnx` adds them as the output :data:`CAM_OUTPUT`, and
:func:`grad_cam_heat_map` min-max scales and resizes the result exactly as the ``grad-cam``
package does (``tests/core/test_cam.py`` compares the two on real X-rays).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CAM_OUTPUT = "cam"
"""Output name of the raw Grad-CAM maps ``(N, layers, classes, h, w)`` in an export that has them."""


def _min_max(array: np.ndarray) -> np.ndarray:
    array = array - np.min(array)
    return array / (1e-7 + np.max(array))  # the grad-cam package's epsilon: an all-zero map stays zero


def _upsample(layer: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a float map to ``size`` (width, height).

    The grad-cam package resizes with OpenCV; for upsampling (a CAM grid is always coarser than the
    input) Pillow's bilinear filter gives the same pixels to 1e-7 (``tests/core/test_cam.py``) without
    OpenCV's 0.2-0.4 s import in the server.
    """
    if layer.shape[1] > size[0] or layer.shape[0] > size[1]:
        raise ValueError(f"a CAM map {layer.shape} larger than the input {size} is not upsampled")
    return np.asarray(Image.fromarray(layer, mode="F").resize(size, Image.Resampling.BILINEAR))


def grad_cam_heat_map(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One image's Grad-CAM heat map for one class from its raw maps, scaled as ``grad-cam`` scales them.

    Args:
        raw: ``(layers, h, w)`` weighted activation sums ``sum_k alpha_k A_k`` of each CAM layer (several
            for an ensemble: one per member).
        size: ``(width, height)`` of the network input.

    Returns:
        ``(height, width)`` float32 in [0, 1]: each layer's map rectified, min-max scaled and resized
        bilinearly, then the layers averaged and scaled again.
    """
    layers = [_upsample(_min_max(np.maximum(layer, 0)).astype(np.float32), size) for layer in raw]
    joined = _min_max(np.maximum(np.stack(layers), 0).mean(0))
    return np.clip(np.nan_to_num(joined.astype(np.float32)), 0.0, 1.0)
