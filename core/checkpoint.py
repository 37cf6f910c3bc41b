"""Self-describing checkpoints, loaded safely with ``weights_only=True``.

A checkpoint carries everything needed to use it: architecture, class names,
preprocessing, decision threshold, calibration temperature, how it was trained
and how it scored on validation. Nothing in it is unpickled as code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hashing import file_sha256
from core.labels import CLASS_NAMES
from core.operating_point import validate_calibration

if TYPE_CHECKING:  # torch is imported where weights are read or written, so metadata users need no torch
    from torch import nn

    from core.domain import DomainDetector
    from core.transforms import EvalTransform

__all__ = ["CheckpointError", "CheckpointMeta", "file_sha256", "load_checkpoint", "model_version", "save_checkpoint"]

FORMAT = "pneumonia-xray-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message is one line."""


@dataclass
class CheckpointMeta:
    """Everything a checkpoint says about itself besides its weights."""

    arch: str
    image_size: int
    mean: list[float]
    std: list[float]
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))
    threshold: float = 0.5
    """Decision threshold on the calibrated P(PNEUMONIA)."""
    threshold_goal: str = "default"
    temperature: float = 1.0
    """Temperature that calibrates the logits (fitted on validation)."""
    train_args: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    """How the data was split and which part the metrics come from."""
    epoch: int = 0
    created_at: str = ""
    onnx_sha256: str = ""
    """SHA-256 of the ONNX export beside the checkpoint (``<name>.onnx``); a file that differs is refused."""
    int8: dict[str, Any] = field(default_factory=dict)
    """The accepted int8 ONNX model (``<name>.int8.onnx``): its hash, own temperature and threshold, checks."""
    intensity: str = "none"
    """Per-image intensity normalisation applied before the network (``core.transforms.INTENSITY_MODES``)."""
    domain: dict[str, Any] = field(default_factory=dict)
    """The out-of-domain detector's summary (``core.domain.DomainDetector.summary``); empty when none was fitted."""
    domain_state: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Its arrays (tensors), saved beside the weights as the checkpoint's ``domain_state``, not in the metadata."""

    def domain_detector(self) -> DomainDetector | None:
        """The out-of-domain detector this checkpoint carries, or ``None``.

        Raises:
            CheckpointError: the statistics are there but do not fit together.
        """
        if not self.domain:
            return None
        from core.domain import DomainDetector

        try:
            return DomainDetector.from_parts(self.domain, self.domain_state)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint out-of-domain statistics are unusable ({error})") from None

    def eval_transform(self) -> EvalTransform:
        """The preprocessing this checkpoint's network expects (size, intensity normalisation, mean, std)."""
        from core.transforms import eval_transform

        return eval_transform(self.image_size, self.mean, self.std, self.intensity)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form, safe for ``weights_only`` loading and JSON (without :attr:`domain_state`)."""
        state, self.domain_state = self.domain_state, {}
        try:
            data = asdict(self)
        finally:
            self.domain_state = state
        data.pop("domain_state")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        """Rebuild from :meth:`to_dict` output, ignoring unknown keys."""
        known = {f.name for f in fields(cls)} - {"domain_state"}
        missing = {"arch", "image_size", "mean", "std"} - set(data)
        if missing:
            raise CheckpointError(f"checkpoint metadata lacks {', '.join(sorted(missing))}")
        meta = cls(**{k: v for k, v in data.items() if k in known})
        meta.validate()
        return meta

    def validate(self) -> None:
        """Check types and ranges of the fields inference relies on.

        Raises:
            CheckpointError: with the first problem found, in one line.
        """
        try:
            validate_calibration(self.threshold, self.temperature)
        except ValueError as error:
            raise CheckpointError(f"checkpoint metadata: {error}") from None
        if (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or not 16 <= self.image_size <= 2048
        ):
            raise CheckpointError(
                f"checkpoint metadata: image_size must be an integer in [16, 2048], got {str(self.image_size)[:40]!r}"
            )
        for name in ("mean", "std"):
            values = getattr(self, name)
            if (
                not isinstance(values, (list, tuple))
                or len(values) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            ):
                raise CheckpointError(f"checkpoint metadata: {name} must be three numbers")
        if any(v <= 0 for v in self.std):
            raise CheckpointError("checkpoint metadata: std must be positive")
        from core.transforms import INTENSITY_MODES

        if self.intensity not in INTENSITY_MODES:
            raise CheckpointError(f"checkpoint metadata: unknown intensity normalisation {str(self.intensity)[:40]!r}")
        if list(self.class_names) != list(CLASS_NAMES):
            raise CheckpointError(f"checkpoint metadata: classes must be {list(CLASS_NAMES)}")


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta) -> Path:
    """Write ``model``'s weights and ``meta`` to ``path`` atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "domain_state": {k: torch.as_tensor(v).detach().cpu() for k, v in meta.domain_state.items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate the raw checkpoint dictionary.

    Raises:
        CheckpointError: missing file, not a torch file, or not our format.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # garbage input makes torch.load raise almost any type
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a loadable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (no format marker)")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer version of this project")
    if not isinstance(payload.get("meta"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path} lacks metadata or weights")
    return payload


def load_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Build the model a checkpoint describes and load its weights.

    Returns:
        ``(model, meta)`` with the model in eval mode on the CPU.
    """
    from core.networks import get_model

    payload = read_checkpoint(path)
    meta = CheckpointMeta.from_dict(payload["meta"])
    state = payload.get("domain_state", {})
    meta.domain_state = dict(state) if isinstance(state, dict) else {}
    try:
        model = get_model(meta.arch, pretrained=None, num_classes=len(meta.class_names))
        model.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: weights do not match {meta.arch} ({first})") from None
    model.eval()
    return model, meta


def model_version(arch: str, sha256: str) -> str:
    """The short model-version name shown everywhere: ``arch@<first 12 hex digits of the checkpoint hash>``."""
    return f"{arch}@{sha256[:12]}"
