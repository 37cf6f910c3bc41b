"""int8 serving: quantized with its own calibration, refused below the bar, raw-pixel input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint
from core.inference import Predictor
from tests.helpers import run_main, xray_like


@pytest.fixture()
def exported(tmp_path, tiny_checkpoint):
    checkpoint = tmp_path / "model.pth"
    shutil.copy(tiny_checkpoint, checkpoint)
    assert run_main("core.onnx_export", checkpoint).returncode == 0
    return checkpoint


def _images(count, size=96, offset=0):
    return [xray_like(offset + seed, seed % 2 == 1, size).convert("RGB") for seed in range(count)]


def test_int8_is_accepted_with_its_own_calibration_and_used_only_when_asked(exported):
    from core.onnx_runtime import int8_path
    from core.quantization import quantize_int8

    validation = _images(24, offset=100)
    labels = [seed % 2 for seed in range(24)]
    record = quantize_int8(exported, _images(16), validation, labels, max_auc_drop=1.0, min_agreement=0.0)
    _, meta = load_checkpoint(exported)
    assert meta.int8 == record and int8_path(exported).is_file()
    assert {"temperature", "threshold", "val_roc_auc", "fp32_val_roc_auc", "agreement"} <= set(record)
    assert Predictor.from_checkpoint(exported, "cpu").precision == "fp32"  # never silently
    quantized = Predictor.from_checkpoint(exported, "cpu", backend="int8")
    assert quantized.version.endswith(" int8") and quantized.point.temperature == pytest.approx(record["temperature"])
    assert quantized.threshold == pytest.approx(record["threshold"])
    assert quantized.predict_proba(validation).shape == (24, 2)


def test_int8_is_refused_below_the_agreement_bar(exported):
    from core.onnx_runtime import int8_path
    from core.quantization import quantize_int8

    validation = _images(24, offset=100)
    labels = [seed % 2 for seed in range(24)]
    with pytest.raises(CheckpointError, match="int8 refused: .* calls agree on"):
        quantize_int8(exported, _images(16), validation, labels, max_auc_drop=-1.0, min_agreement=1.01)
    assert not int8_path(exported).exists() and not load_checkpoint(exported)[1].int8
    with pytest.raises(CheckpointError, match="no accepted int8 model"):
        Predictor.from_checkpoint(exported, "cpu", backend="int8")


def test_matching_threshold_reproduces_the_positive_count():
    from core.quantization import _matching_threshold

    scores = np.array([0.1, 0.4, 0.45, 0.7, 0.9])
    for positives in range(6):
        assert int((scores >= _matching_threshold(scores, positives)).sum()) == positives


@pytest.fixture()
def gray_exported(tmp_path):
    """An exported checkpoint whose channels share one normalisation (mean 0.5, std 0.5), as the shipped one."""
    import torch

    from core.checkpoint import CheckpointMeta, save_checkpoint
    from core.networks import get_model

    torch.manual_seed(0)
    checkpoint = tmp_path / "gray.pth"
    meta = CheckpointMeta(arch="resnet18", image_size=64, mean=[0.5] * 3, std=[0.5] * 3, threshold=0.5)
    save_checkpoint(checkpoint, get_model("resnet18"), meta)
    assert run_main("core.onnx_export", checkpoint).returncode == 0
    return checkpoint


def test_pixel_quantization_only_when_channels_share_one_normalisation():
    from core.quantization import pixel_quantization

    assert pixel_quantization([0.5] * 3, [0.5] * 3) == (pytest.approx(1 / 127.5), 128)
    assert pixel_quantization([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) is None
    assert pixel_quantization([0.5] * 3, [0.5, 0.5, 0.25]) is None


def test_int8_takes_raw_pixels_and_scores_as_the_float_path_does(gray_exported, tmp_path):
    from core.evaluation import score_records
    from core.onnx_runtime import OnnxNetwork, int8_path
    from core.quantization import quantize_int8

    validation = _images(24, offset=100)
    labels = [seed % 2 for seed in range(24)]
    record = quantize_int8(gray_exported, _images(16), validation, labels, max_auc_drop=1.0, min_agreement=0.0)
    assert record["input"] == "uint8 pixels"
    network = OnnxNetwork(int8_path(gray_exported))
    assert network.takes_pixels
    transform = load_checkpoint(gray_exported)[1].eval_transform()
    with pytest.raises(ValueError, match="takes uint8 pixels"):
        network(torch.stack([transform(image) for image in validation]))

    # The same images through the float path of fp32 ONNX: int8 on raw pixels stays close to it.
    quantized = Predictor.from_checkpoint(gray_exported, "cpu", backend="int8")
    fp32 = Predictor.from_checkpoint(gray_exported, "cpu")
    assert quantized.takes_pixels and not fp32.takes_pixels
    int8_logits, fp32_logits = quantized.logits(validation), fp32.logits(validation)
    spread = float(fp32_logits.std())
    assert float((int8_logits - fp32_logits).abs().max()) < 0.25 * spread

    # Folder scoring (a DataLoader of pixel views, an unreadable file among them) gives the same numbers.
    folder = tmp_path / "folder"
    for name in ("NORMAL", "PNEUMONIA"):
        (folder / name).mkdir(parents=True)
    for index, (image, label) in enumerate(zip(validation, labels, strict=True)):
        image.save(folder / ("NORMAL", "PNEUMONIA")[label] / f"{index:02d}.png")
    (folder / "NORMAL" / "broken.png").write_bytes(b"not an image")
    from core.data import scan_image_folder

    records = scan_image_folder(folder)
    predictions, errors = score_records(quantized, records, batch_size=8)
    assert len(errors) == 1 and len(predictions) == 24
    by_name = {Path(p["path"]).name: p["p_pneumonia"] for p in predictions}
    direct = quantized.predict_proba(validation)[:, 1]
    assert np.allclose([by_name[f"{i:02d}.png"] for i in range(24)], direct, atol=1e-6)
