import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointMeta
from core.operating_point import (
    CHECKPOINT,
    DATABASE,
    OperatingPoint,
    label_at_threshold,
    operating_point_in_force,
    validate_calibration,
)


def test_label_at_threshold_is_inclusive():
    assert label_at_threshold(0.7, 0.7) == "PNEUMONIA"
    assert label_at_threshold(0.6999, 0.7) == "NORMAL"


def test_plain_temperature_matches_softmax():
    logits = torch.tensor([[0.3, 2.0], [1.5, -1.0], [0.0, 0.0]])
    point = OperatingPoint(threshold=0.5, temperature=1.7)
    expected = torch.softmax(logits / 1.7, dim=1).numpy()
    assert np.allclose(point.probabilities(logits.numpy()), expected, atol=1e-6)


def test_bias_moves_probability_on_the_logit_scale():
    point = OperatingPoint(threshold=0.5, temperature=2.0, bias=-1.0)
    p = point.p_pneumonia_from_margin(np.array([4.0]))[0]
    assert p == pytest.approx(1 / (1 + np.exp(-(4.0 / 2.0 - 1.0))))


@pytest.mark.parametrize(
    "threshold, temperature, bias",
    [
        (1.5, 1.0, 0.0),
        (-0.1, 1.0, 0.0),
        (float("nan"), 1.0, 0.0),
        ("0.5", 1.0, 0.0),
        (0.5, 0.0, 0.0),
        (0.5, -1.0, 0.0),
        (0.5, float("inf"), 0.0),
        (0.5, 1.0, float("nan")),
        (True, 1.0, 0.0),
    ],
)
def test_bad_values_are_refused(threshold, temperature, bias):
    with pytest.raises(ValueError):
        validate_calibration(threshold, temperature, bias)
    with pytest.raises(ValueError):
        OperatingPoint(threshold=threshold, temperature=temperature, bias=bias)


def test_in_force_prefers_the_saved_point():
    meta = CheckpointMeta(
        arch="resnet18",
        image_size=64,
        mean=[0.5] * 3,
        std=[0.2] * 3,
        threshold=0.3,
        temperature=1.2,
        threshold_goal="youden",
    )
    own = operating_point_in_force(meta, "a" * 64)
    assert (own.threshold, own.temperature, own.origin, own.goal) == (0.3, 1.2, CHECKPOINT, "youden")
    saved = OperatingPoint(threshold=0.9, temperature=2.0, bias=0.5, origin=DATABASE, change_id=7)
    asked = []

    def lookup(sha, temperature):
        asked.append(sha)
        assert temperature == 1.2
        return saved if sha == "b" * 64 else None

    assert operating_point_in_force(meta, "b" * 64, lookup) is saved
    assert operating_point_in_force(meta, "a" * 64, lookup).origin == CHECKPOINT
    assert asked == ["b" * 64, "a" * 64]


def test_decision_text_states_the_numbers_behind_the_call():
    from core.operating_point import decision_text

    assert decision_text(0.5274, 0.773, "NORMAL") == "P(PNEUMONIA) 0.527 is below the threshold 0.773: NORMAL"
    assert (
        decision_text(0.773, 0.773, "PNEUMONIA") == "P(PNEUMONIA) 0.773 is at or above the threshold 0.773: PNEUMONIA"
    )
