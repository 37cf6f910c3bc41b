"""int8 serving: quantize a checkpoint's ONNX export, fit its own calibration, accept or refuse it.

int8 is an option, never used silently: the quantized model (``<name>.int8.onnx``) gets its own
temperature and threshold fitted on validation, and it is refused unless it keeps the fp32 model's
validation ROC-AUC and calls. Made by ``python -m core.onnx_export CHECKPOINT --int8 ...``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.calibration import fit_temperature
from core.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from core.inference import Predictor, write_serving_files
from core.onnx_runtime import PIXELS_INPUT, OnnxNetwork, int8_path, onnx_path
from core.operating_point import OperatingPoint, checkpoint_operating_point, probability_midway

MAX_AUC_DROP = 0.003
MIN_AGREEMENT = 0.99


class _Batches:
    """ONNX Runtime calibration reader: preprocessed images in batches of 16."""

    def __init__(self, images: list[Any], transform: Any):
        self.batches = [
            {"images": np.stack([transform.array(i) for i in images[s : s + 16]])} for s in range(0, len(images), 16)
        ]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self.batches.pop(0) if self.batches else None


def pixel_quantization(mean: list[float], std: list[float]) -> tuple[float, int] | None:
    """The input scale and zero point that make raw uint8 pixels an int8 model's quantized input.

    The network's input ``(p / 255 - mean) / std`` is ``scale * (p - zero_point)`` with
    ``scale = 1 / (255 std)`` and ``zero_point = 255 mean`` (rounded: at most half a gray level off,
    as the quantizer's own rounding of the input already is).

    Returns:
        ``(scale, zero_point)``, or ``None`` when the channels do not share one mean and one std (one
        per-tensor scale cannot express the normalisation then).
    """
    if len(set(mean)) != 1 or len(set(std)) != 1:
        return None
    return 1.0 / (255.0 * std[0]), min(255, max(0, round(255.0 * mean[0])))


def _take_pixels(path: Path, scale: float, zero_point: int, size: int) -> None:
    """Rewrite a quantized (QDQ) model to take ``(N, H, W, 3)`` uint8 pixels instead of float images.

    Its first step quantizes the normalised float input to uint8; raw pixels are that input already
    once its scale and zero point are the normalisation's own (:func:`pixel_quantization`). The
    float normalisation, the quantize step and ONNX Runtime's transpose to channels-last go: about
    a tenth of a batch's time on two cores (README, Speed).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    quantize = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "images")
    exact: dict[str, np.ndarray] = {
        quantize.input[1]: np.array(scale, np.float32),
        quantize.input[2]: np.array(zero_point, np.uint8),
    }
    for initializer in graph.initializer:
        if initializer.name in exact:
            initializer.CopyFrom(numpy_helper.from_array(exact[initializer.name], initializer.name))
    index = list(graph.node).index(quantize)
    graph.node.remove(quantize)
    to_channels_first = helper.make_node(
        "Transpose", [PIXELS_INPUT], [quantize.output[0]], perm=[0, 3, 1, 2], name="pixels_to_channels_first"
    )
    graph.node.insert(index, to_channels_first)
    graph.input.remove(next(i for i in graph.input if i.name == "images"))
    graph.input.insert(0, helper.make_tensor_value_info(PIXELS_INPUT, TensorProto.UINT8, ["batch", size, size, 3]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _matching_threshold(scores: np.ndarray, positives: int) -> float:
    """The threshold that calls exactly ``positives`` of ``scores`` positive, midway (logit scale) between two."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    cut = len(ordered) - positives
    if cut <= 0:
        return float(ordered[0])
    if cut >= len(ordered):
        return float(min(1.0, np.nextafter(ordered[-1], 2.0)))
    return probability_midway(float(ordered[cut - 1]), float(ordered[cut]))


def quantize_int8(
    checkpoint: str | Path,
    calibration_images: list[Any],
    validation_images: list[Any],
    validation_labels: list[int],
    max_auc_drop: float = MAX_AUC_DROP,
    min_agreement: float = MIN_AGREEMENT,
) -> dict[str, Any]:
    """Quantize the ONNX export to int8, fit its own calibration, and accept or refuse it.

    The int8 model gets its own temperature (fitted on validation) and its own threshold, placed so
    that it calls as many validation images PNEUMONIA as the fp32 model does at its operating point;
    it is refused unless its validation ROC-AUC is within ``max_auc_drop`` of fp32 and its calls agree
    with fp32's on at least ``min_agreement`` of the validation images.

    Returns:
        The record stored in the checkpoint (``meta.int8``).

    Raises:
        CheckpointError: no ONNX export yet (``python -m core.onnx_export`` makes one), or refused,
            with the figures (the int8 file is removed).
    """
    model, meta = load_checkpoint(checkpoint)
    if not meta.onnx_sha256 or not onnx_path(checkpoint).is_file():
        raise CheckpointError(f"{checkpoint} has no ONNX export; run python -m core.onnx_export {checkpoint} first")
    target = write_int8_model(checkpoint, meta, calibration_images)
    fp32 = Predictor(model, meta, onnx=OnnxNetwork(onnx_path(checkpoint))).logits(validation_images)
    int8_network = OnnxNetwork(target)
    int8 = Predictor(model, meta, onnx=int8_network).logits(validation_images)
    record = int8_record(meta, fp32, int8, np.asarray(validation_labels, dtype=int))
    record.update(
        sha256=file_sha256(target),
        input="uint8 pixels" if int8_network.takes_pixels else "float images",
        n_calibration=len(calibration_images),
    )
    drop = record["fp32_val_roc_auc"] - record["val_roc_auc"]
    if drop > max_auc_drop or record["agreement"] < min_agreement:
        target.unlink(missing_ok=True)
        raise CheckpointError(
            f"int8 refused: validation ROC-AUC {record['val_roc_auc']:.4f} vs fp32 {record['fp32_val_roc_auc']:.4f} "
            f"(allowed drop {max_auc_drop}), calls agree on {record['agreement']:.3f} of validation images "
            f"(needed {min_agreement})"
        )
    meta.int8 = record
    save_checkpoint(checkpoint, model, meta)
    write_serving_files(checkpoint, model, meta)  # the checkpoint's hash changed: keep its manifest current
    return record


def write_int8_model(checkpoint: str | Path, meta: Any, calibration_images: list[Any]) -> Path:
    """Static QDQ int8 quantization (per-channel weights) of the ONNX export, calibrated on ``calibration_images``.

    When every channel shares one normalisation (:func:`pixel_quantization`), the int8 model takes raw
    uint8 pixels (:func:`_take_pixels`), so serving it skips the float preprocessing.

    Returns:
        The int8 file (``<name>.int8.onnx``).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = int8_path(checkpoint)
    prepared = target.with_suffix(".prep.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(onnx_path(checkpoint)), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _Batches(list(calibration_images), meta.eval_transform()),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
    prepared.unlink(missing_ok=True)
    pixels = pixel_quantization(meta.mean, meta.std)
    if pixels is not None:
        _take_pixels(target, *pixels, meta.image_size)
    return target


def int8_record(meta: Any, fp32: torch.Tensor, int8: torch.Tensor, labels: np.ndarray) -> dict[str, Any]:
    """The int8 model's own calibration and threshold, and how it compares with fp32 on validation logits."""
    from sklearn.metrics import roc_auc_score

    own = checkpoint_operating_point(meta)
    p_fp32 = own.probabilities(fp32.numpy())[:, 1]
    temperature = fit_temperature(int8, torch.as_tensor(labels))
    p_int8 = OperatingPoint(threshold=0.5, temperature=temperature).probabilities(int8.numpy())[:, 1]
    threshold = _matching_threshold(p_int8, int(np.sum(p_fp32 >= own.threshold)))
    return {
        "temperature": float(temperature),
        "threshold": float(threshold),
        "val_roc_auc": float(roc_auc_score(labels, p_int8)),
        "fp32_val_roc_auc": float(roc_auc_score(labels, p_fp32)),
        "agreement": float(((p_int8 >= threshold) == (p_fp32 >= own.threshold)).mean()),
        "max_probability_change_uncalibrated": float(
            np.abs(torch.softmax(int8, 1)[:, 1].numpy() - torch.softmax(fp32, 1)[:, 1].numpy()).max()
        ),
        "n_validation": len(labels),
    }
