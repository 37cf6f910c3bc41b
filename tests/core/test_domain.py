"""core.domain: the out-of-domain detector, its storage in the checkpoint, and every backend's flag."""

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from core.domain import CUT_QUANTILE, DomainDetector, FeatureTap, fit_domain
from core.images import load_image
from core.inference import Predictor
from core.non_xrays import non_xray_images
from tests.helpers import real_xrays


def _gaussian(rng, n, dims, shift=0.0):
    return rng.normal(shift, 1.0, (n, sum(dims)))


def test_cut_flags_the_stated_share_of_in_domain_features_and_far_ones():
    rng = np.random.default_rng(0)
    dims = [6, 4]
    detector = fit_domain(_gaussian(rng, 800, dims), _gaussian(rng, 800, dims), ["a", "b"], dims)
    fresh = detector.verdicts(_gaussian(rng, 4000, dims))
    share = np.mean([v.out_of_domain for v in fresh])
    assert abs(share - (1 - CUT_QUANTILE)) < 0.012  # the cut's share, on images it was not cut on
    assert all(v.out_of_domain for v in detector.verdicts(_gaussian(rng, 50, dims, shift=3.0)))
    one_layer_moved = _gaussian(rng, 50, dims)
    one_layer_moved[:, 6:] += 4.0  # only the second layer's features move: the max over layers catches it
    assert all(v.out_of_domain for v in detector.verdicts(one_layer_moved))
    percentiles = [v.percentile for v in fresh]
    assert 0.45 < np.median(percentiles) < 0.55 and min(percentiles) >= 0.0 and max(percentiles) <= 1.0


def test_parts_round_trip_and_mismatches_are_refused():
    rng = np.random.default_rng(1)
    detector = fit_domain(_gaussian(rng, 200, [5]), _gaussian(rng, 200, [5]), ["x"], [5])
    again = DomainDetector.from_parts(detector.summary(), detector.state())
    probe = _gaussian(rng, 20, [5])
    assert np.allclose(again.scores(probe), detector.scores(probe), atol=1e-4)
    broken = detector.summary() | {"dims": [4]}
    with pytest.raises(ValueError):
        DomainDetector.from_parts(broken, detector.state())
    with pytest.raises(ValueError):
        detector.scores(np.zeros((2, 7)))
    with pytest.raises(ValueError):
        fit_domain(_gaussian(rng, 10, [5]), _gaussian(rng, 200, [5]), ["x"], [5])


def test_feature_tap_reads_channel_means_of_the_named_layer():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    batch = torch.rand(5, 1, 4, 4)
    with FeatureTap(model, ["0"]) as tap:
        model(batch)
    assert np.allclose(tap.take(), model[0](batch).mean((2, 3)).detach().numpy(), atol=1e-6)
    assert tap.widths == {"0": 3}


def test_statistics_survive_saving_and_stale_ones_are_not_used(shipped_checkpoint, tmp_path):
    model, meta = load_checkpoint(shipped_checkpoint)
    assert meta.domain["layers"] == ["_blocks.15"] and "domain_state" not in meta.to_dict()
    copy = save_checkpoint(tmp_path / "copy.pth", model, meta)
    _, again = load_checkpoint(copy)
    assert again.domain == meta.domain
    assert all(torch.equal(again.domain_state[k], meta.domain_state[k]) for k in meta.domain_state)
    with torch.no_grad():  # other weights: the statistics no longer describe this network's features
        next(model._blocks[15].parameters()).add_(0.1)
    stale = save_checkpoint(tmp_path / "stale.pth", model, meta)
    predictor = Predictor.from_checkpoint(stale, "cpu", backend="torch")
    assert predictor.domain is None and "other weights" in predictor.domain_problem
    result = predictor.predict_one(load_image(real_xrays(1)[0]))
    assert result.out_of_domain is None and result.to_dict()["out_of_domain"] is None


def test_every_backend_gives_the_same_flags(shipped_checkpoint):
    images = [load_image(p) for p in real_xrays(12)] + list(non_xray_images().values())
    flags = {}
    for backend in ("torch", "onnx", "int8"):
        predictor = Predictor.from_checkpoint(shipped_checkpoint, "cpu", backend=backend)
        assert predictor.domain is not None, predictor.domain_problem
        flags[backend] = [r.out_of_domain for r in predictor.predictions(images)]
    assert flags["torch"] == flags["onnx"] == flags["int8"]
    assert flags["torch"][12:] == [True] * (len(images) - 12)  # every generated non-X-ray
    assert sum(flags["torch"][:12]) <= 1  # real held-out X-rays: about 2.5 % are flagged


def test_an_onnx_file_without_features_gives_no_score_rather_than_a_second_pass(shipped_checkpoint, tmp_path):

    from core.checkpoint import file_sha256
    from core.onnx_runtime import onnx_path

    model, meta = load_checkpoint(shipped_checkpoint)
    target = tmp_path / "old.pth"
    example = torch.zeros(1, 3, meta.image_size, meta.image_size)
    torch.onnx.export(
        model,
        (example,),
        str(onnx_path(target)),
        dynamo=False,
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
    )
    meta.onnx_sha256 = file_sha256(onnx_path(target))
    meta.int8 = {}
    save_checkpoint(target, model, meta)
    predictor = Predictor.from_checkpoint(target, "cpu", backend="onnx")
    assert predictor.domain is None and "re-export" in predictor.domain_problem
    assert Predictor.from_checkpoint(target, "cpu", backend="torch").domain is not None  # same pass in torch


def test_meta_without_statistics_has_no_detector():
    assert CheckpointMeta("resnet18", 224, [0.5] * 3, [0.5] * 3).domain_detector() is None


def test_the_onnx_export_returns_the_same_features_as_the_torch_pass(tiny_checkpoint, tmp_path):
    import shutil

    import onnxruntime as ort

    from core.onnx_export import export_onnx

    checkpoint = tmp_path / "tiny.pth"
    shutil.copy(tiny_checkpoint, checkpoint)
    session = ort.InferenceSession(str(export_onnx(checkpoint)), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "features", "cam"]
    model, meta = load_checkpoint(checkpoint)
    batch = torch.rand(3, 3, meta.image_size, meta.image_size)
    with torch.no_grad(), FeatureTap(model, meta.domain.get("layers") or ["layer4"]) as tap:
        model(batch)
    logits, features = session.run(["logits", "features"], {"images": batch.numpy()})
    assert np.allclose(features, tap.take(), atol=1e-4) and features.shape == (3, 512)
