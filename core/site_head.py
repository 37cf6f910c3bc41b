"""A site head: the network's last linear layer refitted as a logistic regression on reviewed cases.

The cheap alternative to fine-tuning: the convolutional features stay as they
are; only the final layer is refitted on this site's reviewed images, with
scikit-learn's cross-validated, L2-regularised ``LogisticRegressionCV`` on
standardised features. The fitted regression is folded back into the layer, so
the result is an ordinary checkpoint of the same architecture (a new model
version, compared and promoted like any other). Its probabilities come from the
regression itself (temperature 1); its threshold meets the goal with the
stated confidence on the cross-validated (out-of-fold) probabilities.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.checkpoint import CheckpointError, CheckpointMeta
from core.inference import Predictor
from core.site_adaptation import check_counts, threshold_between_cases

CV_FOLDS = 5
C_GRID = 10
"""Regularisation strengths tried by ``LogisticRegressionCV`` (log-spaced 1e-4 .. 1e4)."""


def head_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The network's final linear layer (its name and module).

    Raises:
        CheckpointError: the model has no single final layer (an ensemble has one per member).
    """
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if len(linears) != 1:
        raise CheckpointError(f"a site head needs one final linear layer; this model has {len(linears)}")
    return linears[0]


def network_features(predictor: Predictor, images: Sequence[Image.Image]) -> np.ndarray:
    """The inputs of the final layer (pooled features, ``(N, D)``) for ``images``, through the PyTorch model.

    Raises:
        ValueError: the predictor runs ONNX Runtime (load it with ``backend="torch"``).
    """
    if predictor.onnx is not None or predictor.tta:
        raise ValueError("network features need the PyTorch backend without TTA (backend='torch', tta=False)")
    _, layer = head_layer(predictor.model)
    captured: list[torch.Tensor] = []

    def keep_input(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0].detach().float().cpu())

    with predictor.torch_lock:  # the hook sits on the shared model (see Predictor.torch_lock)
        handle = layer.register_forward_pre_hook(keep_input)
        try:
            predictor.logits(images)
        finally:
            handle.remove()
    return torch.cat(captured).numpy()


@dataclass(frozen=True)
class SiteHead:
    """A fitted site head: the final layer's new weights, its threshold, and the evidence for it."""

    weight: np.ndarray
    """``(D,)``: the PNEUMONIA-minus-NORMAL logit per feature."""
    bias: float
    threshold: float
    goal: str
    regularisation: float
    """The ``C`` that ``LogisticRegressionCV`` chose (inverse L2 strength, on standardised features)."""
    out_of_fold: np.ndarray = field(repr=False)
    """Cross-validated P(PNEUMONIA) of every fitted case (each from a regression fitted without it)."""
    n_normal: int = 0
    n_pneumonia: int = 0

    def p_pneumonia(self, features: np.ndarray) -> np.ndarray:
        """P(PNEUMONIA) the head gives ``features``."""
        return 1.0 / (1.0 + np.exp(-(np.asarray(features, dtype=np.float64) @ self.weight + self.bias)))


def fit_site_head(features: np.ndarray, labels: np.ndarray, goal: str, min_per_class: int = 20) -> SiteHead:
    """Fit the head on reviewed cases and place its threshold for ``goal`` on out-of-fold probabilities.

    Raises:
        core.site_adaptation.NotEnoughCases: too few cases of a class, or too few to show the goal's confidence.
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels, dtype=int)
    check_counts(labels, min_per_class)
    folds = StratifiedKFold(n_splits=min(CV_FOLDS, int(np.bincount(labels).min())), shuffle=True, random_state=0)
    searched = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=C_GRID, cv=folds, scoring="neg_log_loss", max_iter=5000, l1_ratios=(0,), use_legacy_attributes=False
        ),
    ).fit(features, labels)
    chosen = float(searched[-1].C_)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=chosen, max_iter=5000))
    out_of_fold = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
    threshold = threshold_between_cases(labels, out_of_fold, goal)
    scaler, regression = searched[0], searched[-1]  # LogisticRegressionCV refits on every case at the chosen C
    weight = regression.coef_[0] / scaler.scale_
    bias = float(regression.intercept_[0] - np.sum(regression.coef_[0] * scaler.mean_ / scaler.scale_))
    return SiteHead(
        weight, bias, threshold, goal, chosen, out_of_fold, int((labels == 0).sum()), int((labels == 1).sum())
    )


def with_site_head(
    model: nn.Module, meta: CheckpointMeta, head: SiteHead, provenance: dict[str, Any]
) -> tuple[nn.Module, CheckpointMeta]:
    """A copy of the network whose final layer is ``head``, and its metadata (temperature 1, the head's threshold).

    The two logits become ``(0, w . x + b)``, so their margin is the regression's logit and the
    checkpoint's softmax is the regression's probability.
    """
    fitted = copy.deepcopy(model).cpu().eval()
    _, layer = head_layer(fitted)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[1] = torch.as_tensor(head.weight, dtype=layer.weight.dtype)
        layer.bias[1] = head.bias
    new_meta = copy.deepcopy(meta)
    new_meta.threshold = float(head.threshold)
    new_meta.temperature = 1.0
    new_meta.threshold_goal = head.goal
    new_meta.onnx_sha256 = ""  # the export beside the old file is not this network's
    new_meta.int8 = {}
    new_meta.train_args = {**meta.train_args, "site_head": provenance}
    new_meta.val_metrics = {}  # the old network's validation figures are not this head's
    new_meta.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    return fitted, new_meta
