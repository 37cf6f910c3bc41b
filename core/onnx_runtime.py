"""ONNX Runtime serving: the verified ONNX (and int8) files beside a checkpoint, run like the torch module.

Only loading and running lives here, below :mod:`core.inference`; building
the files is :mod:`core.onnx_export` and :mod:`core.quantization`, above it.
A file whose SHA-256 is not the one the checkpoint recorded is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.cam import CAM_OUTPUT
from core.checkpoint import CheckpointError, file_sha256

if TYPE_CHECKING:  # the serving path runs on NumPy arrays; torch only converts for its callers
    import torch

INT8_SUFFIX = ".int8.onnx"


def onnx_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's ONNX export lives."""
    return Path(checkpoint).with_suffix(".onnx")


def int8_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's int8 model lives."""
    return Path(checkpoint).with_suffix(INT8_SUFFIX)


FEATURES_OUTPUT = "features"
"""Output name of the out-of-domain features (``core.domain``) in an export that has them."""

PIXELS_INPUT = "pixels"
"""Input name of an int8 model that takes raw ``(N, H, W, 3)`` uint8 pixels (``core.quantization``)."""


class OnnxNetwork:
    """An ONNX Runtime session that takes and returns tensors like the torch module it replaces."""

    def __init__(self, path: Path, threads: int | None = None, spinning: bool = True):
        """Open an ONNX Runtime session on ``path``.

        Args:
            threads: intra-op threads (ONNX Runtime's default: one per physical core).
            spinning: let idle worker threads busy-wait for the next call: 1.5 ms faster at batch 1 on
                two cores (README, Speed) now that the Python side runs no torch ops (torch's own
                spinning pool was what they fought with); folder scoring with loader workers is unchanged.
        """
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.takes_pixels = self.input_name == PIXELS_INPUT
        """True for an int8 model given ``(N, H, W, 3)`` uint8 pixels rather than normalised float images."""
        names = {output.name for output in self.session.get_outputs()}
        self.has_features = FEATURES_OUTPUT in names
        """True when the file also returns the out-of-domain features (exports made since ``core.domain``)."""
        self.has_cam = CAM_OUTPUT in names and not self.takes_pixels
        """True when the file also returns the raw Grad-CAM maps (exports made since ``core.cam``)."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 2)`` (see :meth:`outputs`)."""
        return self.outputs(batch, features=False)[0]

    def outputs(self, batch: torch.Tensor, features: bool = True) -> tuple[torch.Tensor, np.ndarray | None]:
        """Logits ``(N, 2)`` for ``(N, 3, H, W)`` normalised images, or ``(N, H, W, 3)`` uint8 pixels
        when :attr:`takes_pixels`, and the out-of-domain features of the same run (``None`` when not
        asked for or the file has none).

        Raises:
            ValueError: float images given to a model that takes pixels.
        """
        import torch

        logits, found = self.run(batch.detach().cpu().numpy(), features)
        return torch.from_numpy(logits), found

    def run(self, array: np.ndarray, features: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`outputs` on NumPy arrays, without torch: logits ``(N, 2)`` and the features (or ``None``).

        Raises:
            ValueError: float images given to a model that takes pixels.
        """
        if self.takes_pixels and array.dtype != np.uint8:
            raise ValueError(f"{self.path.name} takes uint8 pixels, not {array.dtype} images")
        array = np.ascontiguousarray(array, dtype=np.uint8 if self.takes_pixels else np.float32)
        names = ["logits", FEATURES_OUTPUT] if features and self.has_features else ["logits"]
        results = self.session.run(names, {self.input_name: array})
        return results[0], (results[1] if len(results) > 1 else None)

    def cams(self, array: np.ndarray) -> np.ndarray:
        """The raw Grad-CAM maps ``(N, layers, classes, h, w)`` of ``(N, 3, H, W)`` normalised images
        (:mod:`core.cam`), without torch.

        Raises:
            ValueError: the file has no Grad-CAM output.
        """
        if not self.has_cam:
            raise ValueError(f"{self.path.name} has no Grad-CAM output; re-export with python -m core.onnx_export")
        return self.session.run([CAM_OUTPUT], {self.input_name: np.ascontiguousarray(array, dtype=np.float32)})[0]


def load_onnx_network(checkpoint: str | Path, meta: Any) -> OnnxNetwork | None:
    """The checkpoint's verified ONNX export, or ``None`` when there is none or onnxruntime is not installed.

    Raises:
        CheckpointError: an ONNX file is there but its hash is not the one the checkpoint recorded.
    """
    path = onnx_path(checkpoint)
    if not meta.onnx_sha256 or not path.is_file():
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if file_sha256(path) != meta.onnx_sha256:
        raise CheckpointError(
            f"{path} is not the ONNX export recorded in {checkpoint} (stale or swapped); "
            f"re-export with python -m core.onnx_export {checkpoint}"
        )
    return OnnxNetwork(path)


def load_int8_network(checkpoint: str | Path, meta: Any) -> OnnxNetwork:
    """The checkpoint's accepted int8 model.

    Raises:
        CheckpointError: none accepted, or the file is not the one recorded.
    """
    path = int8_path(checkpoint)
    if not meta.int8 or not path.is_file():
        raise CheckpointError(
            f"{checkpoint} has no accepted int8 model; make one with "
            f"python -m core.onnx_export {checkpoint} --int8 --data-dir DIR --split-file SPLIT"
        )
    if file_sha256(path) != meta.int8.get("sha256"):
        raise CheckpointError(f"{path} is not the int8 model recorded in {checkpoint} (stale or swapped)")
    return OnnxNetwork(path)


SERVING_SUFFIX = ".serving.json"
DOMAIN_ARRAYS_SUFFIX = ".domain.npz"


def serving_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's serving manifest lives (written by :func:`core.onnx_export.export_onnx`)."""
    return Path(checkpoint).with_suffix(SERVING_SUFFIX)


def write_serving_manifest(checkpoint: str | Path, meta: Any, domain_problem: str = "") -> Path:
    """Describe the checkpoint for serving without torch: its metadata, both files' SHA-256 and the
    out-of-domain arrays (``.domain.npz``, NumPy only), so a server answers calls before torch loads.

    Args:
        domain_problem: why the detector must not be used (statistics fitted on other weights), if so.
    """
    import json

    path, arrays = serving_path(checkpoint), Path(checkpoint).with_suffix(DOMAIN_ARRAYS_SUFFIX)
    state = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in meta.domain_state.items()}
    if state:
        with arrays.open("wb") as handle:
            np.savez(handle, **state)  # type: ignore[arg-type]  # numpy stubs take the first keyword for allow_pickle
    manifest = {
        "format": 1,
        "checkpoint_sha256": file_sha256(checkpoint),
        "onnx_sha256": meta.onnx_sha256,
        "domain_arrays_sha256": file_sha256(arrays) if state else "",
        "domain_problem": domain_problem,
        "meta": meta.to_dict(),
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    temporary.replace(path)
    return path


def read_serving_manifest(checkpoint: str | Path) -> tuple[Any, str, str] | None:
    """``(meta, checkpoint SHA-256, domain problem)`` from the serving manifest, or ``None`` when there is
    none or it no longer describes these files (then the caller loads the checkpoint with torch).

    The arrays are read with ``allow_pickle=False``; every file is checked against its recorded hash.
    """
    import json

    from core.checkpoint import CheckpointMeta

    path = serving_path(checkpoint)
    if not path.is_file() or not onnx_path(checkpoint).is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        sha256 = file_sha256(checkpoint)
        if manifest.get("format") != 1 or manifest.get("checkpoint_sha256") != sha256:
            return None
        meta = CheckpointMeta.from_dict(manifest["meta"])
        if not meta.onnx_sha256 or meta.onnx_sha256 != manifest.get("onnx_sha256"):
            return None
        if manifest.get("domain_arrays_sha256"):
            arrays = Path(checkpoint).with_suffix(DOMAIN_ARRAYS_SUFFIX)
            if file_sha256(arrays) != manifest["domain_arrays_sha256"]:
                return None
            with np.load(arrays, allow_pickle=False) as loaded:
                meta.domain_state = {key: loaded[key] for key in loaded.files}
        meta.validate()
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):
        return None
    return meta, sha256, str(manifest.get("domain_problem", ""))
