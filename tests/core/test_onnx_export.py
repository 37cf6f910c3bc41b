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


def test_the_export_writes_a_serving_manifest_that_serves_calls_before_the_network_loads(exported):
    from core.onnx_runtime import serving_path

    assert serving_path(exported).is_file()
    served = Predictor.from_checkpoint(exported, "cpu")
    assert "model" not in served.__dict__  # the torch network is not loaded yet
    images = [xray_like(seed, seed % 2 == 1, 96).convert("RGB") for seed in range(6)]
    calls = served.predictions(images)
    assert "model" not in served.__dict__ and served._lazy_network.module is None
    eager = Predictor.from_checkpoint(exported, "cpu", backend="torch").predictions(images)
    assert [c.label for c in calls] == [e.label for e in eager]
    assert max(abs(c.probabilities["PNEUMONIA"] - e.probabilities["PNEUMONIA"]) for c, e in zip(calls, eager)) <= 1e-4
    copy = served.at(served.point)
    assert copy.model is served.model and served._lazy_network.module is not None  # loaded once, shared


def test_a_stale_or_tampered_manifest_falls_back_to_loading_with_torch(exported):
    from core.checkpoint import save_checkpoint
    from core.onnx_runtime import serving_path

    model, meta = load_checkpoint(exported)
    meta.threshold = 0.6
    save_checkpoint(exported, model, meta)  # the checkpoint changed after its manifest was written
    stale = Predictor.from_checkpoint(exported, "cpu")
    assert stale._lazy_network is None and "model" in stale.__dict__ and stale.threshold == 0.6
    text = serving_path(exported).read_text()
    serving_path(exported).write_text(text.replace('"format": 1', '"format": 9'))
    assert Predictor.from_checkpoint(exported, "cpu")._lazy_network is None


def test_the_shipped_model_answers_a_call_without_importing_torch():
    """The dashboard's first call: a fresh interpreter loads the shipped model and predicts; torch stays out."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    code = (
        "import sys\n"
        "from core.inference import Predictor\n"
        "from tests.helpers import xray_like\n"
        "p = Predictor.from_checkpoint(None, 'cpu')\n"
        "r = p.predict_one(xray_like(3, True, 256).convert('RGB'))\n"
        "print(p.backend, p.domain is not None, r.domain_score is not None, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.stdout.split() == ["onnxruntime", "True", "True", "False"], result.stderr[-2000:]
