"""Inference: the one forward path (``Predictor``) and the one-call ``predict_image``.

``Predictor`` owns preprocessing, batching, channels-last, test-time
augmentation and the operating point (calibration + threshold), so the CLI,
the dashboard, evaluation, calibration and Grad-CAM all score an image the same
way. Training-time validation shares :func:`forward_logits`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.cam import grad_cam_heat_map
from core.checkpoint import CheckpointError, CheckpointMeta, file_sha256, load_checkpoint, model_version
from core.domain import WARNING as OUT_OF_DOMAIN_WARNING
from core.domain import DomainDetector, FeatureTap, network_sha256
from core.input_checks import check_xray, load_xray
from core.onnx_runtime import load_int8_network, load_onnx_network, read_serving_manifest, write_serving_manifest
from core.operating_point import OperatingPoint, OperatingPointLookup, decision_text, operating_point_in_force
from core.registry import DEFAULT_CHECKPOINT as DEFAULT_CHECKPOINT  # re-exported: older scripts import them here
from core.registry import REPO_ROOT as REPO_ROOT
from core.registry import default_checkpoint
from core.transforms import EvalTransform

if TYPE_CHECKING:  # torch loads where a tensor or the network is needed: calls served by ONNX never need it
    import torch
    from torch import nn


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; other names pass through."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _zoom(image: Image.Image, keep: float = 0.9) -> Image.Image:
    width, height = image.size
    dx, dy = int(width * (1 - keep) / 2), int(height * (1 - keep) / 2)
    return image.crop((dx, dy, width - dx, height - dy))


TTA_VIEWS: tuple[Callable[[Image.Image], Image.Image], ...] = (
    lambda image: image,
    _zoom,
    lambda image: image.rotate(5, resample=Image.Resampling.BILINEAR),
    lambda image: image.rotate(-5, resample=Image.Resampling.BILINEAR),
)
"""Views averaged by test-time augmentation; no flips (they mirror the anatomy)."""


def forward_logits(model: nn.Module, batch: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Raw logits of one batch on the CPU, run channels-last (several times faster on CPU)."""
    import torch

    with torch.inference_mode():
        return model(batch.to(device, memory_format=torch.channels_last)).float().cpu()


class _LazyNetwork:
    """The torch network of a predictor whose calls ONNX Runtime serves: read from the checkpoint (torch
    imported) on first use, for Grad-CAM, fine-tuning or the site head. Copies made by
    :meth:`Predictor.at` share it, so it loads once."""

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        self.module: nn.Module | None = None

    def get(self) -> nn.Module:
        with self.lock:
            if self.module is None:
                import torch

                model, _ = load_checkpoint(self.path)
                self.module = model.to(memory_format=torch.channels_last).eval()
            return self.module


@dataclass
class Prediction:
    """One image's result."""

    label: str
    confidence: float
    """Calibrated probability of the predicted class."""
    probabilities: dict[str, float]
    threshold: float
    image_name: str = ""
    """The file name or path the image came from (display only)."""
    domain_score: float | None = None
    """Out-of-domain score (``core.domain``); ``None`` when the model carries no detector."""
    out_of_domain: bool | None = None
    """True when the image lies outside the training images (the call is shown behind a warning)."""

    @property
    def p_pneumonia(self) -> float:
        """Calibrated P(PNEUMONIA)."""
        return self.probabilities["PNEUMONIA"]

    @property
    def decision(self) -> str:
        """The call with P(PNEUMONIA) and the threshold it was compared with (:func:`decision_text`)."""
        return decision_text(self.p_pneumonia, self.threshold, self.label)

    @property
    def warning(self) -> str | None:
        """The out-of-domain warning for this image, or ``None``."""
        return OUT_OF_DOMAIN_WARNING if self.out_of_domain else None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``source`` is the input's name: the CLI's JSON interface since its first version)."""
        return {
            "source": self.image_name,
            "prediction": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
            "out_of_domain": self.out_of_domain,
            "domain_score": self.domain_score,
        }


@dataclass
class Predictor:
    """A loaded checkpoint ready to classify images.

    Use :meth:`from_checkpoint`; then :meth:`predict_proba` / :meth:`predict`
    follow scikit-learn's conventions (column 1 is PNEUMONIA).
    """

    model: nn.Module = field(repr=False, compare=False)
    """The torch network; loaded on first use when ONNX Runtime serves the calls (see :meth:`from_checkpoint`)."""
    meta: CheckpointMeta
    device: Any = "cpu"
    """A ``torch.device`` or its name."""
    checkpoint_path: str = ""
    checkpoint_sha256: str = ""
    batch_size: int = 32
    tta: bool = False
    """Test-time augmentation: average logits over :data:`TTA_VIEWS`."""
    operating_point: OperatingPoint | None = None
    """Calibration and threshold in force (default: the checkpoint's)."""
    onnx: Callable[[torch.Tensor], torch.Tensor] | None = None
    """ONNX Runtime session used for forward passes when the checkpoint has a verified export (CPU)."""
    precision: str = "fp32"
    """``"int8"`` when the quantized model runs (chosen explicitly, never by default)."""
    domain: DomainDetector | None = None
    """The out-of-domain detector, scored on features of the same forward pass (``None``: no score)."""
    domain_problem: str = ""
    """Why the checkpoint's detector is not used (stale statistics, an export without features); empty if it is."""
    torch_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held for every use of :attr:`model` (forward passes and Grad-CAM). The dashboard shares one loaded
    model between all sessions' threads; Grad-CAM hooks that model, so two runs at once would read each
    other's activations (a heat map from another patient's image) or crash libtorch. ONNX Runtime's
    ``run`` is thread-safe and needs no lock. :meth:`at` copies share this lock with the model."""
    _transform: EvalTransform | None = field(default=None, repr=False, compare=False)
    _lazy_network: _LazyNetwork | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.operating_point is None:
            self.operating_point = operating_point_in_force(self.meta, self.checkpoint_sha256)
        if self.model is None and self._lazy_network is not None:
            del self.__dict__["model"]  # found by __getattr__ from now on, loaded on first use

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not set on the instance: ``model`` of a predictor that loads it lazily.
        lazy = self.__dict__.get("_lazy_network")
        if name == "model" and lazy is not None:
            return lazy.get()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str = "auto",
        lookup: OperatingPointLookup | None = None,
        backend: str = "auto",
    ) -> Predictor:
        """Load a checkpoint (default: the shipped one) onto ``device``.

        Args:
            lookup: the review database's saved operating points (see
                :func:`core.operating_point.operating_point_in_force`).
            backend: ``"auto"`` (ONNX Runtime when the checkpoint has a verified export and the device is
                the CPU, else PyTorch), ``"torch"``, ``"onnx"`` (an error without an export) or ``"int8"``
                (the accepted int8 model at its own calibration and threshold; saved operating points,
                fitted for fp32, do not apply to it).

        Raises:
            CheckpointError: unusable checkpoint, or a stale/swapped ONNX file.
        """
        path = Path(path) if path is not None else default_checkpoint()
        if backend in ("auto", "onnx") and device == "cpu":
            served = cls._served_without_torch(path, lookup)
            if served is not None:
                return served
        import torch

        model, meta = load_checkpoint(path)
        domain, problem = _domain_detector(model, meta)
        torch_device = resolve_device(device)
        model = model.to(torch_device).to(memory_format=torch.channels_last).eval()
        sha256 = file_sha256(path)
        if backend == "int8":  # only when asked for, with its own validation-fitted calibration and threshold
            point = OperatingPoint(
                threshold=float(meta.int8.get("threshold", 0.5)),
                temperature=float(meta.int8.get("temperature", 1.0)),
                goal=f"{meta.threshold_goal} (int8)",
            )
            network = load_int8_network(path, meta)
            predictor = cls(
                model,
                meta,
                torch.device("cpu"),
                str(path),
                sha256,
                operating_point=point,
                onnx=network,
                precision="int8",
            )
            return predictor.with_domain(domain, problem)
        onnx = None
        if backend != "torch" and torch_device.type == "cpu":
            onnx = load_onnx_network(path, meta)
        if backend == "onnx" and onnx is None:
            raise CheckpointError(f"{path} has no ONNX export; make one with python -m core.onnx_export {path}")
        point = operating_point_in_force(meta, sha256, lookup)
        predictor = cls(model, meta, torch_device, str(path), sha256, operating_point=point, onnx=onnx)
        return predictor.with_domain(domain, problem)

    @classmethod
    def _served_without_torch(cls, path: Path, lookup: OperatingPointLookup | None) -> Predictor | None:
        """A predictor whose calls ONNX Runtime serves from the checkpoint's serving manifest, torch not
        imported (the network loads on first use), or ``None`` when the manifest is missing or stale."""
        served = read_serving_manifest(path)
        if served is None:
            return None
        meta, sha256, problem = served
        network = load_onnx_network(path, meta)
        if network is None:
            return None
        domain = None if problem else meta.domain_detector()
        point = operating_point_in_force(meta, sha256, lookup)
        predictor = cls(
            None,  # type: ignore[arg-type]  # loaded on first use
            meta,
            "cpu",
            str(path),
            sha256,
            operating_point=point,
            onnx=network,
            _lazy_network=_LazyNetwork(path),
        )
        return predictor.with_domain(domain, problem)

    def with_domain(self, domain: DomainDetector | None, problem: str = "") -> Predictor:
        """Attach an out-of-domain detector (in place; returns ``self``), refusing it when the backend
        cannot give its features in the same pass."""
        if domain is not None and self.onnx is not None and not getattr(self.onnx, "has_features", False):
            domain, problem = (
                None,
                (
                    f"{Path(self.checkpoint_path).name}'s ONNX file has no out-of-domain features; "
                    f"re-export with python -m core.onnx_export {self.checkpoint_path}"
                ),
            )
        self.domain, self.domain_problem = domain, problem
        return self

    @property
    def backend(self) -> str:
        """``"onnxruntime"`` or ``"torch"``: what runs the forward passes."""
        return "onnxruntime" if self.onnx is not None else "torch"

    def at(self, operating_point: OperatingPoint) -> Predictor:
        """The same loaded model at another operating point (the model is shared, not copied)."""
        other = copy.copy(self)  # not dataclasses.replace: that would read (and so load) a lazy network
        other.operating_point = operating_point
        return other

    @property
    def point(self) -> OperatingPoint:
        """The operating point in force (never ``None`` after construction)."""
        assert self.operating_point is not None
        return self.operating_point

    @property
    def class_names(self) -> list[str]:
        """Output classes, index-aligned with :meth:`predict_proba` columns."""
        return list(self.meta.class_names)

    @property
    def threshold(self) -> float:
        """Decision threshold on calibrated P(PNEUMONIA)."""
        return self.point.threshold

    @property
    def version(self) -> str:
        """Short model version: architecture plus the checkpoint hash prefix (and `` int8`` when quantized)."""
        base = model_version(self.meta.arch, self.checkpoint_sha256)
        return f"{base} int8" if self.precision == "int8" else base

    @property
    def transform(self) -> EvalTransform:
        """The checkpoint's preprocessing (size, intensity normalisation, mean and std), built once."""
        if self._transform is None:
            self._transform = self.meta.eval_transform()
        return self._transform

    def input_tensor(self, image: Image.Image) -> torch.Tensor:
        """One preprocessed ``(3, H, W)`` tensor (no augmentation)."""
        return self.transform(image)

    @property
    def takes_pixels(self) -> bool:
        """True when the network is given raw uint8 pixels (an int8 model made so), not normalised floats."""
        return bool(getattr(self.onnx, "takes_pixels", False))

    def view_arrays(self, image: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        """The image's views (one, or :data:`TTA_VIEWS` with :attr:`tta`) as the network takes them.

        ``(V, 3, H, W)`` normalised float32, or ``(V, H, W, 3)`` uint8 pixels when :attr:`takes_pixels`.
        NumPy rather than torch: on a few cores torch's thread pool, woken by even a small
        stack, competes with ONNX Runtime's threads for the next forward pass.

        Args:
            out: write into this array (a slot of :meth:`empty_views`) instead of a new one.
        """
        views = TTA_VIEWS if self.tta else TTA_VIEWS[:1]
        out = self.empty_views(1)[0] if out is None else out
        fill = self.transform.pixels if self.takes_pixels else self.transform.array
        for slot, view in zip(out, views, strict=True):
            fill(view(image), slot)
        return out

    @property
    def serves_grad_cam(self) -> bool:
        """True when the ONNX file computes Grad-CAM in its forward pass (:meth:`grad_cam`, no torch)."""
        return bool(getattr(self.onnx, "has_cam", False))

    def grad_cam(self, image: Image.Image, class_name: str) -> np.ndarray:
        """Grad-CAM of ``class_name`` for one image from the ONNX file's own output (:mod:`core.cam`): the
        map the ``grad-cam`` package draws on the torch network, without torch or a lock.

        Returns:
            ``(H, W)`` float32 in [0, 1] at the model's input resolution.

        Raises:
            ValueError: the file has no Grad-CAM output (:attr:`serves_grad_cam` is false).
        """
        array = self.transform.array(image)[None]  # the plain view: Grad-CAM explains the unaugmented image
        raw = self.onnx.cams(array)[0, :, self.class_names.index(class_name)]  # type: ignore[union-attr]
        return grad_cam_heat_map(raw, (self.meta.image_size, self.meta.image_size))

    def empty_views(self, count: int) -> np.ndarray:
        """An uninitialised batch of ``count`` images' views for :meth:`view_arrays` to fill."""
        size, v = self.meta.image_size, len(TTA_VIEWS) if self.tta else 1
        if self.takes_pixels:
            return np.empty((count, v, size, size, 3), dtype=np.uint8)
        return np.empty((count, v, 3, size, size), dtype=np.float32)

    def view_tensors(self, image: Image.Image) -> torch.Tensor:
        """:meth:`view_arrays` as a tensor (no copy)."""
        import torch

        return torch.from_numpy(self.view_arrays(image))

    def logits_from_views(self, views: torch.Tensor) -> torch.Tensor:
        """Raw logits ``(N, 2)`` from ``(N, V, ...)`` view tensors (:meth:`view_tensors`), averaged over views."""
        return self.outputs_from_views(views, features=False)[0]

    def outputs_from_views(self, views: torch.Tensor, features: bool = True) -> tuple[torch.Tensor, np.ndarray | None]:
        """Raw logits ``(N, 2)`` and, when there is a detector and ``features``, the out-of-domain features
        ``(N, D)`` of the same forward passes, both averaged over views."""
        import torch

        n, v = views.shape[:2]
        want = features and self.domain is not None
        logit_chunks, feature_chunks = [], []
        flat = views.reshape(n * v, *views.shape[2:])
        step = self.batch_size * v
        for start in range(0, len(flat), step):
            chunk = flat[start : start + step]
            if self.onnx is not None:
                logits, chunk_features = self.onnx.outputs(chunk, features=want)  # type: ignore[attr-defined]
                logit_chunks.append(logits)
                feature_chunks.append(chunk_features)
            elif want:
                assert self.domain is not None
                with self.torch_lock, FeatureTap(self.model, self.domain.layers) as tap:
                    logit_chunks.append(forward_logits(self.model, chunk, self.device))
                    feature_chunks.append(tap.take())
            else:
                with self.torch_lock:
                    logit_chunks.append(forward_logits(self.model, chunk, self.device))
        if not logit_chunks:
            return torch.empty(0, len(self.class_names)), None
        logits = torch.cat(logit_chunks).reshape(n, v, -1).mean(1)
        if not want or any(f is None for f in feature_chunks):
            return logits, None
        stacked = np.concatenate([np.asarray(f, dtype=np.float32) for f in feature_chunks])
        return logits, stacked.reshape(n, v, -1).mean(1)

    def outputs(self, images: Sequence[Image.Image], features: bool = True) -> tuple[torch.Tensor, np.ndarray | None]:
        """Raw (uncalibrated) logits ``(N, 2)`` for PIL images, and their out-of-domain features (or ``None``)."""
        import torch

        logit_chunks, feature_chunks = [], []
        for views in self._view_batches(images):
            logits, chunk_features = self.outputs_from_views(torch.from_numpy(views), features)
            logit_chunks.append(logits)
            feature_chunks.append(chunk_features)
        if not logit_chunks:
            return torch.empty(0, len(self.class_names)), None
        return torch.cat(logit_chunks), _joined(feature_chunks)

    def output_arrays(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`outputs` as NumPy arrays, run by ONNX Runtime without importing torch (the dashboard's and
        the command line's call path). The same batches, views and averaging as :meth:`outputs`."""
        assert self.onnx is not None, "output_arrays needs an ONNX backend"
        want = self.domain is not None
        logit_chunks, feature_chunks = [], []
        for views in self._view_batches(images):
            n, v = views.shape[:2]
            logits, found = self.onnx.run(views.reshape(n * v, *views.shape[2:]), features=want)  # type: ignore[attr-defined]
            logit_chunks.append(logits.reshape(n, v, -1).mean(1))
            feature_chunks.append(None if found is None else np.asarray(found, np.float32).reshape(n, v, -1).mean(1))
        if not logit_chunks:
            return np.empty((0, len(self.class_names)), np.float32), None
        return np.concatenate(logit_chunks), _joined(feature_chunks)

    def _view_batches(self, images: Sequence[Image.Image]) -> Iterable[np.ndarray]:
        """The images' views (:meth:`view_arrays`) in batches of :attr:`batch_size` images."""
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            views = self.empty_views(len(chunk))
            for image, slot in zip(chunk, views, strict=True):
                self.view_arrays(image, slot)
            yield views

    def logits(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Raw (uncalibrated) logits ``(N, 2)`` for PIL images."""
        return self.outputs(images, features=False)[0]

    def proba_from_logits(self, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(N, 2)`` from raw logits, at the operating point."""
        return self.point.probabilities(np.asarray(logits))

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Calibrated class probabilities ``(N, 2)``."""
        return self.proba_from_logits(self.logits(images))

    def predict(self, images: Sequence[Image.Image]) -> list[str]:
        """Class names at the operating point's threshold."""
        return [self.point.label(float(p)) for p in self.predict_proba(images)[:, 1]]

    def predict_one(self, image: Image.Image, image_name: str = "") -> Prediction:
        """A :class:`Prediction` for one PIL image."""
        return self.predictions([image], [image_name])[0]

    def predictions(self, images: Sequence[Image.Image], image_names: Iterable[str] = ()) -> list[Prediction]:
        """:class:`Prediction` objects for several PIL images, with their out-of-domain verdicts."""
        logits, features = self.output_arrays(images) if self.onnx is not None else self.outputs(images)
        return self.predictions_from_outputs(logits, features, list(image_names) or [""] * len(images))

    def predictions_from_outputs(
        self, logits: torch.Tensor | np.ndarray, features: np.ndarray | None, image_names: Sequence[str]
    ) -> list[Prediction]:
        """:class:`Prediction` objects from :meth:`outputs` (the calibrated call and the domain verdict)."""
        probabilities = self.proba_from_logits(logits)
        verdicts = self.domain.verdicts(features) if self.domain is not None and features is not None else None
        results = []
        for index, (row, name) in enumerate(zip(probabilities, image_names, strict=True)):
            label = self.point.label(float(row[1]))
            verdict = verdicts[index] if verdicts is not None else None
            results.append(
                Prediction(
                    label=label,
                    confidence=float(row[self.class_names.index(label)]),
                    probabilities={n: float(v) for n, v in zip(self.class_names, row, strict=True)},
                    threshold=self.threshold,
                    image_name=name,
                    domain_score=None if verdict is None else round(verdict.score, 4),
                    out_of_domain=None if verdict is None else verdict.out_of_domain,
                )
            )
        return results

    def describe(self) -> dict[str, Any]:
        """Provenance for reports: checkpoint, version and the operating point used."""
        return {
            "backend": self.backend,
            "precision": self.precision,
            "path": self.checkpoint_path,
            "sha256": self.checkpoint_sha256,
            "arch": self.meta.arch,
            "version": self.version,
            "tta": self.tta,
            "operating_point": self.point.to_dict(),
            "out_of_domain": self.domain.summary_line() if self.domain is not None else self.domain_problem or "none",
        }


def _domain_detector(model: nn.Module, meta: CheckpointMeta) -> tuple[DomainDetector | None, str]:
    """The checkpoint's detector when its statistics belong to these weights, else ``None`` and why."""
    detector = meta.domain_detector()
    if detector is None:
        return None, ""
    if detector.network_sha256 and detector.network_sha256 != network_sha256(model):
        return None, "the out-of-domain statistics were fitted on other weights; refit with python -m training.domain"
    return detector, ""


def _joined(chunks: list[np.ndarray | None]) -> np.ndarray | None:
    """Per-batch features joined, or ``None`` when any batch has none."""
    if any(chunk is None for chunk in chunks):
        return None
    return np.concatenate([chunk for chunk in chunks if chunk is not None])


def write_serving_files(checkpoint: str | Path, model: nn.Module, meta: CheckpointMeta) -> Path:
    """The serving manifest of a checkpoint just saved with its ONNX export (see :meth:`Predictor.from_checkpoint`):
    whether its out-of-domain statistics fit these weights is decided now, with the network at hand."""
    try:
        _, problem = _domain_detector(model, meta)
    except CheckpointError as error:
        problem = str(error)
    return write_serving_manifest(checkpoint, meta, problem)


@lru_cache(maxsize=4)
def _cached_predictor(path: str, device: str) -> Predictor:
    return Predictor.from_checkpoint(path, device)


def predict_image(
    image: str | Path | bytes | Image.Image,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    operating_point: OperatingPoint | None = None,
) -> Prediction:
    """Classify one image with a checkpoint (default: the shipped model).

    The same input checks as the CLI and the dashboard apply: images that are
    not plausibly chest X-rays are refused, not classified.

    Args:
        image: a path, raw file bytes, or a PIL image.
        checkpoint: checkpoint path; the shipped model when ``None``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        operating_point: use this instead of the checkpoint's.

    Returns:
        The :class:`Prediction`.

    Raises:
        core.images.ImageLoadError: unreadable image, or not plausibly a chest X-ray.
        core.checkpoint.CheckpointError: unusable checkpoint.
    """
    predictor = _cached_predictor(str(checkpoint or default_checkpoint()), device)
    if operating_point is not None:
        predictor = predictor.at(operating_point)
    name = str(image) if isinstance(image, (str, Path)) else "image"
    if isinstance(image, Image.Image):
        pil = check_xray(image.convert("RGB"), name)
    else:
        pil = load_xray(image if isinstance(image, bytes) else str(image), name=name)
    return predictor.predict_one(pil, name)
