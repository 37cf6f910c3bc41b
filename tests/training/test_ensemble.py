"""Ensembles as a first-class model: save, load, predict (mean of logits), explain, export, serve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from core.data import grouped_split, save_split, scan_image_folder
from core.inference import Predictor
from core.networks import LogitEnsemble, get_model, get_spec, parse_ensemble
from tests.helpers import run_main, run_subprocess, xray_like


def _member(path, seed, arch="resnet18", size=64):
    torch.manual_seed(seed)
    model = get_model(arch)
    spec = get_spec(arch)
    save_checkpoint(path, model, CheckpointMeta(arch=arch, image_size=size, mean=list(spec.mean), std=list(spec.std)))
    return path


@pytest.fixture(scope="module")
def ensemble(image_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    split = root / "split.json"
    save_split(grouped_split(scan_image_folder(image_folder), 0.25, 0.25, seed=0), split, image_folder)
    members = [_member(root / f"m{i}.pth", seed=i) for i in range(3)]
    output = root / "ens" / "best_model.pth"
    result = run_main(
        "training.ensemble",
        "--members",
        *members,
        "--data-dir",
        image_folder,
        "--split-file",
        split,
        "--threshold-goal",
        "youden",
        "--output",
        output,
        "--workers",
        "0",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    return output, members


def test_ensemble_checkpoint_is_the_mean_of_member_logits(ensemble):
    output, members = ensemble
    model, meta = load_checkpoint(output)
    assert meta.arch == "ensemble3:resnet18" and isinstance(model, LogitEnsemble)
    assert [m["path"] for m in meta.train_args["ensemble_of"]] == [str(m) for m in members]
    assert meta.temperature > 0 and 0 < meta.threshold < 1 and "roc_auc" in meta.val_metrics
    inputs = torch.randn(2, 3, 64, 64)
    member_logits = [load_checkpoint(m)[0].eval()(inputs) for m in members]
    with torch.no_grad():
        assert torch.allclose(model.eval()(inputs), torch.stack(member_logits).mean(0), atol=1e-5)


def test_ensemble_serves_explains_and_exports_like_a_single_model(ensemble):
    from core.explain import gradcam

    output, _ = ensemble
    image = xray_like(3, True, 96).convert("RGB")
    torch_predictor = Predictor.from_checkpoint(output, "cpu", backend="torch")
    onnx_predictor = Predictor.from_checkpoint(output, "cpu", backend="onnx")  # exported by the command
    p_torch = torch_predictor.predict_proba([image])[0, 1]
    assert abs(p_torch - onnx_predictor.predict_proba([image])[0, 1]) < 1e-4
    assert torch_predictor.version.startswith("ensemble3:resnet18@")
    heat = gradcam(torch_predictor, image)
    assert heat.shape == (64, 64) and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_members_that_differ_are_refused_in_one_line(tmp_path, image_folder):
    a = _member(tmp_path / "a.pth", 0)
    b = _member(tmp_path / "b.pth", 1, size=32)
    result = run_subprocess(
        "training.ensemble",
        "--members",
        a,
        b,
        "--data-dir",
        image_folder,
        "--split-file",
        tmp_path / "none.json",
        "--output",
        tmp_path / "e.pth",
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "differs from" in result.stderr
    one = run_main(
        "training.ensemble",
        "--members",
        a,
        "--data-dir",
        image_folder,
        "--split-file",
        "x",
        "--output",
        tmp_path / "e.pth",
    )
    assert one.returncode == 2 and "at least two members" in one.stderr


def test_ensemble_names():
    assert parse_ensemble("ensemble3:efficientnet_lite0") == ("efficientnet_lite0", 3)
    assert parse_ensemble("resnet18") is None
    with pytest.raises(ValueError, match="2-16 members"):
        parse_ensemble("ensemble1:resnet18")
    assert get_spec("ensemble2:resnet18").cam_layer.count(",") == 1
