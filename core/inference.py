"""Inference: a scikit-learn-style ``Predictor`` and the one-call ``predict_image``.

Probabilities are temperature-calibrated with the checkpoint's temperature and
classified with the checkpoint's threshold, so every caller (CLI, dashboard,
evaluation) gives the same answer for the same image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.checkpoint import CheckpointMeta, file_sha256, load_checkpoint
from core.images import load_image
from core.transforms import eval_transform, to_batch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO_ROOT / "models" / "best_model.pth"


def default_checkpoint() -> Path:
    """The shipped checkpoint, or ``$PNEUMONIA_CHECKPOINT`` when set."""
    return Path(os.environ.get("PNEUMONIA_CHECKPOINT", DEFAULT_CHECKPOINT))


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; other names pass through."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _zoom(image: Image.Image, keep: float = 0.9) -> Image.Image:
    width, height = image.size
    dx, dy = int(width * (1 - keep) / 2), int(height * (1 - keep) / 2)
    return image.crop((dx, dy, width - dx, height - dy))


TTA_VIEWS = (
    lambda image: image,
    _zoom,
    lambda image: image.rotate(5, resample=Image.Resampling.BILINEAR),
    lambda image: image.rotate(-5, resample=Image.Resampling.BILINEAR),
)
"""Views averaged by test-time augmentation; no flips (they mirror the anatomy)."""


@dataclass
class Prediction:
    """One image's result."""

    label: str
    confidence: float
    """Calibrated probability of the predicted class."""
    probabilities: dict[str, float]
    threshold: float
    source: str = ""

    @property
    def p_pneumonia(self) -> float:
        """Calibrated P(PNEUMONIA)."""
        return self.probabilities["PNEUMONIA"]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "prediction": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
        }


@dataclass
class Predictor:
    """A loaded checkpoint ready to classify images.

    Use :meth:`from_checkpoint`; then :meth:`predict_proba` / :meth:`predict`
    follow scikit-learn's conventions (column 1 is PNEUMONIA).
    """

    model: nn.Module
    meta: CheckpointMeta
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    checkpoint_path: str = ""
    checkpoint_sha256: str = ""
    batch_size: int = 32
    tta: bool = False
    """Test-time augmentation: average logits over :data:`TTA_VIEWS`."""

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto") -> Predictor:
        """Load a checkpoint (default: the shipped one) onto ``device``."""
        path = Path(path) if path is not None else default_checkpoint()
        model, meta = load_checkpoint(path)
        torch_device = resolve_device(device)
        # Channels-last convolutions are several times faster on CPU (measured in benchmarks/).
        model = model.to(torch_device, memory_format=torch.channels_last).eval()
        return cls(model, meta, torch_device, str(path), file_sha256(path))

    @property
    def class_names(self) -> list[str]:
        """Output classes, index-aligned with :meth:`predict_proba` columns."""
        return list(self.meta.class_names)

    @property
    def threshold(self) -> float:
        """Decision threshold on P(PNEUMONIA)."""
        return float(self.meta.threshold)

    @property
    def version(self) -> str:
        """Short model version: architecture plus the checkpoint hash prefix."""
        return f"{self.meta.arch}@{self.checkpoint_sha256[:12]}"

    def _transform(self):
        return eval_transform(self.meta.image_size, self.meta.mean, self.meta.std)

    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Raw logits ``(N, 2)`` for PIL images (averaged over views when :attr:`tta`)."""
        if not self.tta:
            return self._logits(images)
        return torch.stack([self._logits([view(i) for i in images]) for view in TTA_VIEWS]).mean(0)

    @torch.inference_mode()
    def _logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        transform = self._transform()
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = to_batch(images[start : start + self.batch_size], transform)
            batch = batch.to(self.device, memory_format=torch.channels_last)
            chunks.append(self.model(batch).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, len(self.class_names))

    def proba_from_logits(self, logits: torch.Tensor) -> np.ndarray:
        """Calibrated probabilities from logits (temperature scaling)."""
        return torch.softmax(logits / float(self.meta.temperature), dim=1).numpy()

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Calibrated class probabilities ``(N, 2)``."""
        return self.proba_from_logits(self.logits(images))

    def predict(self, images: Sequence[Image.Image]) -> list[str]:
        """Class names at the checkpoint's threshold."""
        return [self._label(p) for p in self.predict_proba(images)[:, 1]]

    def _label(self, p_pneumonia: float) -> str:
        return self.class_names[1] if p_pneumonia >= self.threshold else self.class_names[0]

    def relabel(self, prediction: Prediction, threshold: float) -> Prediction:
        """The same probabilities classified at another threshold (an operating point saved later)."""
        label = self.class_names[1] if prediction.p_pneumonia >= threshold else self.class_names[0]
        return Prediction(label, prediction.probabilities[label], dict(prediction.probabilities),
                          float(threshold), prediction.source)

    def predict_one(self, image: Image.Image, source: str = "") -> Prediction:
        """A :class:`Prediction` for one PIL image."""
        return self.predictions([image], [source])[0]

    def predictions(self, images: Sequence[Image.Image], sources: Iterable[str] = ()) -> list[Prediction]:
        """:class:`Prediction` objects for several PIL images."""
        probabilities = self.predict_proba(images)
        sources = list(sources) or [""] * len(images)
        results = []
        for row, source in zip(probabilities, sources, strict=True):
            label = self._label(float(row[1]))
            results.append(
                Prediction(
                    label=label,
                    confidence=float(row[self.class_names.index(label)]),
                    probabilities={n: float(v) for n, v in zip(self.class_names, row, strict=True)},
                    threshold=self.threshold,
                    source=source,
                )
            )
        return results


@lru_cache(maxsize=4)
def _cached_predictor(path: str, device: str) -> Predictor:
    return Predictor.from_checkpoint(path, device)


def predict_image(
    image: str | Path | bytes | Image.Image,
    checkpoint: str | Path | None = None,
    device: str = "auto",
) -> Prediction:
    """Classify one image with a checkpoint (default: the shipped model).

    Args:
        image: a path, raw file bytes, or a PIL image.
        checkpoint: checkpoint path; the shipped model when ``None``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        The :class:`Prediction`.

    Raises:
        core.images.ImageLoadError: unreadable image.
        core.checkpoint.CheckpointError: unusable checkpoint.
    """
    predictor = _cached_predictor(str(checkpoint or default_checkpoint()), device)
    source = str(image) if isinstance(image, (str, Path)) else "image"
    pil = image.convert("RGB") if isinstance(image, Image.Image) else load_image(image)
    return predictor.predict_one(pil, source)
