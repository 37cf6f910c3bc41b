"""Test data generators and environment helpers, shared by tests and benchmarks.

Everything is generated; no test reads the shared training images.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent


def require_all_tests() -> bool:
    """True when optional tests must run, not skip (``CI=true`` or ``REQUIRE_ALL_TESTS=1``)."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REQUIRE_ALL_TESTS") == "1"


def skip_unless_available(available: bool, what: str, how: str) -> None:
    """Skip with a one-line reason saying how to enable the test; fail instead when all tests are required."""
    if available:
        return
    message = f"{what} is not installed; {how} (required when CI=true or REQUIRE_ALL_TESTS=1)"
    if require_all_tests():
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def xray_like(seed: int, pneumonia: bool, size: int = 64) -> Image.Image:
    """A grayscale chest-X-ray-like picture: dark lungs in a bright body, cloudy when 'pneumonia'."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (size, size), 30)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.08, size * 0.05, size * 0.92, size * 1.1), fill=170)
    for left in (0.18, 0.55):
        draw.ellipse((size * left, size * 0.18, size * (left + 0.27), size * 0.85), fill=60)
    if pneumonia:
        for _ in range(4):
            x, y = rng.uniform(0.2, 0.75) * size, rng.uniform(0.3, 0.75) * size
            r = rng.uniform(0.06, 0.12) * size
            draw.ellipse((x - r, y - r, x + r, y + r), fill=150)
    noise = rng.normal(0, 8, (size, size))
    array = np.clip(np.asarray(image.filter(ImageFilter.GaussianBlur(size / 40)), float) + noise, 0, 255)
    return Image.fromarray(array.astype(np.uint8), mode="L")


def make_image_folder(root: Path, per_class: int = 12, size: int = 64, images_per_patient: int = 2) -> Path:
    """Write an ImageFolder tree with Kermany-style names (several images per patient)."""
    for label, folder in enumerate(("NORMAL", "PNEUMONIA")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            patient = i // images_per_patient
            if label:
                name = f"person{patient + 100}_bacteria_{i}.jpeg"
            else:
                name = f"IM-{patient + 1:04d}-{i:04d}.jpeg"
            xray_like(i + 1000 * label, bool(label), size).save(root / folder / name)
    return root


def png_bytes(seed: int = 0, size: int = 32) -> bytes:
    """An X-ray-like PNG file's bytes."""
    buffer = io.BytesIO()
    xray_like(seed, seed % 2 == 1, size).save(buffer, "PNG")
    return buffer.getvalue()


def make_dicom(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    window=None,
    patient: str = "Doe^Jane",
    with_pixels: bool = True,
    modality: str = "CR",
    body_part: str | None = None,
    view: str | None = None,
    deflated: bool = False,
) -> bytes:
    """A DICOM file's bytes written with pydicom (Modality CR by default, a patient name and id)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient, "ID-12345", "20200101"
    ds.Modality = modality
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view is not None:
        ds.ViewPosition = view
    if deflated:
        from pydicom.uid import DeflatedExplicitVRLittleEndian

        meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    if with_pixels:
        data = np.stack([pixels] * frames) if frames > 1 else pixels
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if frames > 1:
            ds.NumberOfFrames = frames
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = data.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def non_xrays() -> dict[str, Image.Image]:
    """Generated images that are plainly not chest X-rays."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    sky = np.zeros((240, 320, 3), np.uint8)
    sky[..., 2] = 200
    sky[120:, ..., 1] = 150  # blue sky over green grass
    return {
        "noise photo": Image.fromarray(photo),
        "landscape": Image.fromarray(sky),
        "blank white": Image.new("RGB", (300, 300), "white"),
        "constant gray": Image.new("RGB", (300, 300), (90, 90, 90)),
        "tiny": xray_like(1, True, 32).convert("RGB"),
        "red square": Image.new("RGB", (128, 128), (200, 30, 30)),
    }


@dataclass
class CliResult:
    """What a command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


ENTRY_POINT_ALIASES = {"db": "service.store_cli", "core.predict": "service.predict_cli", "pacs": "pacs.__main__"}
"""Old command names and the modules they run (``python -m db`` and ``python -m core.predict`` still work)."""


def run_main(module: str, *args: object) -> CliResult:
    """Run a command in this process: ``main(get_args_parser().parse_args(args))``, output captured.

    Much faster than a subprocess (no second torch import); each command keeps
    one subprocess smoke test (:func:`run_subprocess`).
    """
    command = importlib.import_module(ENTRY_POINT_ALIASES.get(module, module))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = command.main(command.get_args_parser().parse_args([str(a) for a in args]))
        except SystemExit as exit_:  # argparse refusing the arguments
            code = exit_.code if isinstance(exit_.code, int) else 2
    return CliResult(int(code or 0), out.getvalue(), err.getvalue())


def run_subprocess(module: str, *args: object, env: dict[str, str] | None = None, timeout: int = 600) -> CliResult:
    """Run ``python -m module args`` as users do (the smoke test of a command)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


SHARED_XRAYS = REPO_ROOT.parent / "shared" / "data" / "chest_xray" / "train"


def real_xrays(count: int, label: str | None = None) -> list[Path]:
    """The first ``count`` real X-rays of the shipped model's held-out test part (``models/split.json``),
    or skip when the workplace's image folder is not here."""
    import json

    test = json.loads((REPO_ROOT / "models" / "split.json").read_text())["test"]
    paths = [SHARED_XRAYS / r["path"] for r in test if label is None or r["path"].startswith(label + "/")]
    paths = [p for p in paths[:count] if p.is_file()]
    if len(paths) < count:
        pytest.skip(f"{SHARED_XRAYS} is not in this workplace")
    return paths
