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
