"""core.site_head: the refitted final layer is exactly the logistic regression, and its threshold meets the goal."""

from __future__ import annotations

import numpy as np
import pytest

from core.confident_goals import Goal, lower_bound
from core.inference import Predictor
from core.site_adaptation import NotEnoughCases
from core.site_head import fit_site_head, head_layer, network_features, with_site_head
from tests.helpers import xray_like


@pytest.fixture(scope="module")
def cases(tiny_checkpoint):
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu", backend="torch")
    images = [xray_like(seed, seed % 2 == 1, 80).convert("RGB") for seed in range(120)]
    labels = np.array([seed % 2 for seed in range(120)])
    return predictor, images, labels, network_features(predictor, images)


def test_features_are_the_final_layers_input(cases):
    predictor, images, _, features = cases
    name, layer = head_layer(predictor.model)
    assert name == "fc" and features.shape == (len(images), layer.in_features)
    logits = predictor.logits(images[:4]).numpy()
    by_hand = features[:4] @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    np.testing.assert_allclose(by_hand, logits, rtol=1e-4, atol=1e-4)


def test_the_new_checkpoint_gives_the_regressions_probabilities(cases):
    predictor, images, labels, features = cases
    head = fit_site_head(features, labels, "sensitivity>=0.95", min_per_class=10)
    model, meta = with_site_head(predictor.model, predictor.meta, head, {"fitted_on": "test"})
    fitted = Predictor(model, meta)
    np.testing.assert_allclose(fitted.predict_proba(images)[:, 1], head.p_pneumonia(features), atol=1e-5)
    assert (meta.temperature, meta.threshold, meta.onnx_sha256) == (1.0, head.threshold, "")
    assert meta.train_args["site_head"] == {"fitted_on": "test"}
    assert predictor.meta.threshold == 0.5  # the original is untouched
    separable = ((head.p_pneumonia(features) >= 0.5) == labels).mean()
    assert separable > 0.9  # the cloudy 'pneumonia' pictures are learnable from the features


def test_threshold_meets_a_confident_goal_on_out_of_fold_probabilities(cases):
    _, _, labels, features = cases
    head = fit_site_head(features, labels, "sensitivity>=0.90@0.90", min_per_class=10)
    caught = int((head.out_of_fold[labels == 1] >= head.threshold).sum())
    assert lower_bound(caught, int(labels.sum()), 0.90) >= Goal.parse(head.goal).target
    assert (head.n_normal, head.n_pneumonia) == (60, 60)


def test_too_few_cases_are_refused(cases):
    _, _, labels, features = cases
    with pytest.raises(NotEnoughCases, match="at least 20"):
        fit_site_head(features[:30], labels[:30], "sensitivity>=0.95")
    with pytest.raises(NotEnoughCases, match="review at least"):
        fit_site_head(features[:40], labels[:40], "sensitivity>=0.99@0.95", min_per_class=10)


def test_onnx_predictors_are_refused(tiny_checkpoint, cases):
    predictor, images, _, _ = cases
    onnx_like = Predictor(predictor.model, predictor.meta, onnx=lambda batch: batch)
    with pytest.raises(ValueError, match="PyTorch backend"):
        network_features(onnx_like, images[:2])
