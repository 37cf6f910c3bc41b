import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError
from core.inference import Predictor, predict_image
from tests.helpers import xray_like


def test_predict_proba_follows_sklearn_conventions(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    images = [xray_like(i, i % 2 == 1).convert("RGB") for i in range(5)]
    proba = predictor.predict_proba(images)
    assert proba.shape == (5, 2)
    assert np.allclose(proba.sum(1), 1.0)
    labels = predictor.predict(images)
    assert labels == ["PNEUMONIA" if p >= predictor.threshold else "NORMAL" for p in proba[:, 1]]


def test_temperature_is_applied(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    image = [xray_like(0, True).convert("RGB")]
    logits = predictor.logits(image)
    expected = np.exp(logits.numpy() / 1.5)
    expected /= expected.sum(1, keepdims=True)
    assert np.allclose(predictor.predict_proba(image), expected, atol=1e-6)


def test_predict_image_from_path_bytes_and_pil(tiny_checkpoint, tmp_path):
    image = xray_like(3, False)
    path = tmp_path / "x.png"
    image.save(path)
    by_path = predict_image(path, checkpoint=tiny_checkpoint, device="cpu")
    by_bytes = predict_image(path.read_bytes(), checkpoint=tiny_checkpoint, device="cpu")
    by_pil = predict_image(image, checkpoint=tiny_checkpoint, device="cpu")
    assert by_path.p_pneumonia == pytest.approx(by_bytes.p_pneumonia) == pytest.approx(by_pil.p_pneumonia)
    assert by_path.label in ("NORMAL", "PNEUMONIA")
    assert by_path.confidence == pytest.approx(by_path.probabilities[by_path.label])


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError):
        Predictor.from_checkpoint(tmp_path / "none.pth")


def test_shipped_model_answers_consistently(shipped_checkpoint):
    """The shipped weights load and give a valid, threshold-consistent, calibrated answer."""
    predictor = Predictor.from_checkpoint(shipped_checkpoint, "cpu")
    assert predictor.meta.class_names == ["NORMAL", "PNEUMONIA"]
    assert 0.0 < predictor.threshold < 1.0 and predictor.meta.temperature > 0
    assert predictor.meta.split.get("summary", {}).get("test", {}).get("images", 0) > 0
    result = predictor.predict_one(xray_like(1, True, 224).convert("RGB"))
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    logits = predictor.logits([xray_like(1, True, 224).convert("RGB")])
    expected = torch.softmax(logits / predictor.meta.temperature, dim=1)[0, 1].item()
    assert result.p_pneumonia == pytest.approx(expected, abs=1e-6)
    assert result.label == ("PNEUMONIA" if result.p_pneumonia >= predictor.threshold else "NORMAL")


def test_shipped_model_separates_real_xrays(shipped_checkpoint):
    """On 30 + 30 real X-rays of the held-out test part of its split, the classes are well separated."""
    from sklearn.metrics import roc_auc_score

    from core.data import load_split
    from core.images import load_image
    from tests.helpers import REPO_ROOT, skip_unless_available

    shared = REPO_ROOT.parent / "shared" / "data" / "chest_xray" / "train"
    skip_unless_available(shared.is_dir(), "the shared training X-rays", "put shared/ beside the repository")
    test = load_split(REPO_ROOT / "models" / "split.json", shared)["test"]
    picked = [r for r in test if r.label == 0][:30] + [r for r in test if r.label == 1][:30]
    predictor = Predictor.from_checkpoint(shipped_checkpoint, "cpu")
    scores = predictor.predict_proba([load_image(r.path) for r in picked])[:, 1]
    assert roc_auc_score([r.label for r in picked], scores) > 0.95


def test_predict_image_refuses_what_is_not_an_xray(tiny_checkpoint):
    from PIL import Image

    from core.input_checks import NotAnXrayError

    for image in (Image.new("RGB", (300, 300), "black"), Image.new("RGB", (300, 300), (200, 30, 30))):
        with pytest.raises(NotAnXrayError):
            predict_image(image, checkpoint=tiny_checkpoint, device="cpu")
