"""Out-of-domain score: how far an image's network features lie from the training images'.

The score is computed from features taken in the same forward pass as the call (forward hooks
on the PyTorch model, extra outputs of the ONNX and int8 files): the channel means of a few
layers (:func:`feature_layers`). For each layer, the squared Mahalanobis distance to the
training images' features under a Ledoit-Wolf covariance (Lee et al., NeurIPS 2018, with one
Gaussian per layer); each layer's log-distance is standardised by the held-out validation
images' (median and spread), and the score is the largest of them. The cut is a quantile of the
validation images' scores, so the share of in-domain images flagged is known by construction
and checked on the test part. ``docs/out-of-domain.md`` has the comparison that chose this.

The statistics travel in the checkpoint: the JSON-able summary in ``CheckpointMeta.domain``
and the arrays in the checkpoint's ``domain_state`` tensors (``core.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

METHOD = "mahalanobis-layers-max"
CUT_QUANTILE = 0.975
"""Share of validation images below the cut: about 2.5 % of in-domain images are flagged."""
REFERENCE_POINTS = 201
"""Quantiles of the validation scores kept for percentiles and monitoring."""
HEAD_INPUT = "head_input"
"""The layer name that stands for the input of the final linear layer (the pooled penultimate features)."""
WARNING = "outside the images this model was trained on: adult, other view, not a chest X-ray, or another scanner"
"""What a flagged image's call is shown behind."""


@dataclass(frozen=True)
class DomainVerdict:
    """One image's out-of-domain score and flag."""

    score: float
    """The largest standardised log-distance over the layers (0 is a typical validation image)."""
    out_of_domain: bool
    percentile: float
    """Share of the validation images (in-domain) scoring lower, in [0, 1]."""


@dataclass
class DomainDetector:
    """Per-layer Gaussian statistics of the training features, and the cut.

    Use :func:`fit_domain` to make one and :meth:`to_checkpoint` / :meth:`from_checkpoint` to
    keep it with the checkpoint.
    """

    layers: list[str]
    locations: list[np.ndarray]
    precisions: list[np.ndarray]
    centres: list[float]
    spreads: list[float]
    cut: float
    reference: np.ndarray
    """:data:`REFERENCE_POINTS` quantiles of the validation images' scores."""
    fitted_on: dict[str, Any]
    network_sha256: str = ""
    """Hash of the weights the features came from: other weights make the statistics stale."""

    @property
    def dims(self) -> list[int]:
        """Feature width of each layer, in the order the features are concatenated."""
        return [len(location) for location in self.locations]

    def layer_distances(self, features: np.ndarray) -> np.ndarray:
        """``(N, L)`` squared Mahalanobis distances of concatenated features ``(N, sum(dims))``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != sum(self.dims):
            raise ValueError(f"features of width {sum(self.dims)} expected, got shape {features.shape}")
        out = np.empty((len(features), len(self.layers)))
        start = 0
        for index, (location, precision) in enumerate(zip(self.locations, self.precisions, strict=True)):
            centred = features[:, start : start + len(location)] - location
            out[:, index] = ((centred @ precision) * centred).sum(axis=1)
            start += len(location)
        return out

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Out-of-domain scores ``(N,)``: higher is further from the training images."""
        logs = np.log(np.maximum(self.layer_distances(features), 1e-12))
        return np.max((logs - np.asarray(self.centres)) / np.asarray(self.spreads), axis=1)

    def verdicts(self, features: np.ndarray) -> list[DomainVerdict]:
        """A :class:`DomainVerdict` per image."""
        scores = self.scores(features)
        percentiles = np.interp(scores, self.reference, np.linspace(0, 1, len(self.reference)))
        return [DomainVerdict(float(s), bool(s > self.cut), float(p)) for s, p in zip(scores, percentiles, strict=True)]

    def summary_line(self) -> str:
        """One line for reports: the method, layers and cut."""
        share = 100 * (1 - CUT_QUANTILE)
        return f"Mahalanobis on {', '.join(self.layers)}; flags scores above {self.cut:.3f} ({share:g} % of validation)"

    def summary(self) -> dict[str, Any]:
        """The JSON-able part kept in ``CheckpointMeta.domain``."""
        return {
            "method": METHOD,
            "layers": list(self.layers),
            "dims": self.dims,
            "centres": [float(c) for c in self.centres],
            "spreads": [float(s) for s in self.spreads],
            "cut": float(self.cut),
            "cut_quantile": CUT_QUANTILE,
            "reference": [float(r) for r in self.reference],
            "fitted_on": dict(self.fitted_on),
            "network_sha256": self.network_sha256,
        }

    def state(self) -> dict[str, torch.Tensor]:
        """The arrays, as float32 tensors for the checkpoint's ``domain_state``."""
        import torch

        out = {}
        for index, (location, precision) in enumerate(zip(self.locations, self.precisions, strict=True)):
            out[f"location.{index}"] = torch.from_numpy(np.asarray(location, dtype=np.float32))
            out[f"precision.{index}"] = torch.from_numpy(np.asarray(precision, dtype=np.float32))
        return out

    @classmethod
    def from_parts(cls, summary: dict[str, Any], state: dict[str, Any]) -> DomainDetector:
        """Rebuild from :meth:`summary` and :meth:`state` (as read back from a checkpoint).

        Raises:
            ValueError: the parts do not fit together.
        """
        if summary.get("method") != METHOD:
            raise ValueError(f"unknown out-of-domain method {str(summary.get('method'))[:40]!r}")
        layers = list(summary["layers"])
        locations = [np.asarray(state[f"location.{i}"], dtype=np.float64) for i in range(len(layers))]
        precisions = [np.asarray(state[f"precision.{i}"], dtype=np.float64) for i in range(len(layers))]
        if [len(x) for x in locations] != list(summary["dims"]) or any(
            p.shape != (len(x), len(x)) for x, p in zip(locations, precisions, strict=True)
        ):
            raise ValueError("out-of-domain statistics do not match their layer widths")
        return cls(
            layers=layers,
            locations=locations,
            precisions=precisions,
            centres=[float(c) for c in summary["centres"]],
            spreads=[float(s) for s in summary["spreads"]],
            cut=float(summary["cut"]),
            reference=np.asarray(summary["reference"], dtype=np.float64),
            fitted_on=dict(summary.get("fitted_on", {})),
            network_sha256=str(summary.get("network_sha256", "")),
        )


def fit_domain(
    train_features: np.ndarray,
    reference_features: np.ndarray,
    layers: Sequence[str],
    dims: Sequence[int],
    fitted_on: dict[str, Any] | None = None,
    network_sha256: str = "",
) -> DomainDetector:
    """Fit the per-layer Gaussians on training features and the standardisation and cut on held-out ones.

    Args:
        train_features: ``(N, sum(dims))`` concatenated channel means of the training images.
        reference_features: the same for held-out in-domain images (validation), never the training ones:
            the cut must reflect images the network was not fitted on.
        layers: the layer names, in concatenation order; ``dims`` their widths.

    Raises:
        ValueError: too few images for the statistics.
    """
    from sklearn.covariance import LedoitWolf

    if len(train_features) < 50 or len(reference_features) < 50:
        raise ValueError("the out-of-domain statistics need at least 50 training and 50 held-out images")
    train = np.asarray(train_features, dtype=np.float64)
    locations, precisions, start = [], [], 0
    for width in dims:
        estimate = LedoitWolf().fit(train[:, start : start + width])
        locations.append(estimate.location_)
        precisions.append(estimate.precision_)
        start += width
    detector = DomainDetector(
        list(layers), locations, precisions, [0.0] * len(dims), [1.0] * len(dims), 0.0, np.zeros(2), {}
    )
    logs = np.log(np.maximum(detector.layer_distances(reference_features), 1e-12))
    detector.centres = [float(c) for c in np.median(logs, axis=0)]
    detector.spreads = [float(max(s, 1e-6)) for s in logs.std(axis=0)]
    scores = detector.scores(reference_features)
    detector.cut = float(np.quantile(scores, CUT_QUANTILE))
    detector.reference = np.quantile(scores, np.linspace(0, 1, REFERENCE_POINTS))
    detector.fitted_on = {"train_images": len(train), "reference_images": len(reference_features), **(fitted_on or {})}
    detector.network_sha256 = network_sha256
    return detector


def feature_layers(arch: str) -> list[str]:
    """The layers whose channel means the detector reads, for a network of ``arch``."""
    from core.networks import get_spec

    return list(get_spec(arch).domain_layers)


def network_sha256(model: nn.Module) -> str:
    """A hash of the weights the features depend on (every parameter and buffer outside the final layer)."""
    import hashlib

    from torch import nn as torch_nn

    head = {name for name, module in model.named_modules() if isinstance(module, torch_nn.Linear)}
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.rsplit(".", 1)[0] in head:
            continue  # a refitted final layer (core.site_head) leaves the features as they were
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FeatureTap:
    """Forward hooks that collect the channel means of :func:`feature_layers` during a forward pass.

    Use as a context manager around forward passes of ``model``; :meth:`take` returns the
    features ``(N, sum(dims))`` of the passes since the last call. Hold the predictor's
    ``torch_lock`` while the hooks are on the shared model.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]):
        self.model = model
        self.layers = list(layers)
        self._current: dict[str, torch.Tensor] = {}
        self._batches: list[torch.Tensor] = []
        self._handles: list[Any] = []
        self.widths: dict[str, int] = {}
        """Each layer's feature width, once a forward pass has run."""

    def _keep(self, name: str, value: torch.Tensor) -> None:
        self._current[name] = value.float().mean((2, 3)) if value.dim() == 4 else value.float()
        self.widths[name] = int(self._current[name].shape[1])
        if len(self._current) == len(self.layers):
            import torch

            self._batches.append(torch.cat([self._current[n] for n in self.layers], 1))
            self._current = {}

    def __enter__(self) -> FeatureTap:
        modules = dict(self.model.named_modules())
        for name in self.layers:
            if name == HEAD_INPUT or name.endswith("." + HEAD_INPUT):
                prefix = name[: -len(HEAD_INPUT)].rstrip(".")
                module = final_linear(modules[prefix] if prefix else self.model)
                self._handles.append(
                    module.register_forward_pre_hook(lambda _m, inputs, n=name: self._keep(n, inputs[0]))
                )
            else:
                self._handles.append(
                    modules[name].register_forward_hook(lambda _m, _i, output, n=name: self._keep(n, output))
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def take_tensor(self) -> torch.Tensor:
        """The features collected since the last call, ``(N, sum(dims))`` (traceable, for the ONNX export)."""
        import torch

        batches, self._batches = self._batches, []
        return torch.cat(batches) if batches else torch.empty(0, 0)

    def take(self) -> np.ndarray:
        """:meth:`take_tensor` as a NumPy array on the CPU."""
        return self.take_tensor().detach().cpu().numpy()


def final_linear(module: nn.Module) -> nn.Module:
    from torch import nn as torch_nn

    linears = [m for m in module.modules() if isinstance(m, torch_nn.Linear)]
    if len(linears) != 1:
        raise ValueError(f"expected one final linear layer, found {len(linears)}")
    return linears[0]
