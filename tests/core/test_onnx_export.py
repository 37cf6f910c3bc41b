"""ONNX Runtime behind Predictor: export, parity with PyTorch, refusal of a stale or swapped file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.checkpoint import CheckpointError, load_checkpoint
from core.inference import Predictor
from tests.helpers import run_main, xray_like


@pytest.fixture()
def exported(tmp_path, tiny_checkpoint):
    checkpoint = tmp_path / "model.pth"
    shutil.copy(tiny_checkpoint, checkpoint)
    result = run_main("core.onnx_export", checkpoint)
    assert result.returncode == 0, result.stderr
    return checkpoint


def test_export_records_its_hash_and_predictor_uses_it(exported):
    _, meta = load_checkpoint(exported)
    assert len(meta.onnx_sha256) == 64 and exported.with_suffix(".onnx").is_file()
    assert Predictor.from_checkpoint(exported, "cpu").backend == "onnxruntime"
    assert Predictor.from_checkpoint(exported, "cpu", backend="torch").backend == "torch"


def test_onnx_matches_pytorch_within_1e_4(exported):
    images = [xray_like(seed, seed % 2 == 1, 96).convert("RGB") for seed in range(12)]
    onnx = Predictor.from_checkpoint(exported, "cpu").predict_proba(images)
    eager = Predictor.from_checkpoint(exported, "cpu", backend="torch").predict_proba(images)
    assert np.abs(onnx - eager).max() <= 1e-4


def test_a_changed_onnx_file_is_refused(exported):
    with open(exported.with_suffix(".onnx"), "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(CheckpointError, match="stale or swapped"):
        Predictor.from_checkpoint(exported, "cpu")


def test_onnx_backend_without_an_export_says_how(tiny_checkpoint):
    with pytest.raises(CheckpointError, match="python -m core.onnx_export"):
        Predictor.from_checkpoint(tiny_checkpoint, "cpu", backend="onnx")


def _images(count, size=96, offset=0):
    return [xray_like(offset + seed, seed % 2 == 1, size).convert("RGB") for seed in range(count)]


def test_int8_is_accepted_with_its_own_calibration_and_used_only_when_asked(exported):
    from core.onnx_export import int8_path, quantize_int8

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
    from core.onnx_export import int8_path, quantize_int8

    validation = _images(24, offset=100)
    labels = [seed % 2 for seed in range(24)]
    with pytest.raises(CheckpointError, match="int8 refused: .* calls agree on"):
        quantize_int8(exported, _images(16), validation, labels, max_auc_drop=-1.0, min_agreement=1.01)
    assert not int8_path(exported).exists() and not load_checkpoint(exported)[1].int8
    with pytest.raises(CheckpointError, match="no accepted int8 model"):
        Predictor.from_checkpoint(exported, "cpu", backend="int8")


def test_matching_threshold_reproduces_the_positive_count():
    from core.onnx_export import _matching_threshold

    scores = np.array([0.1, 0.4, 0.45, 0.7, 0.9])
    for positives in range(6):
        assert int((scores >= _matching_threshold(scores, positives)).sum()) == positives
