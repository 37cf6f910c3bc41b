"""Data: ImageFolder scanning, the Hugging Face data set, and the patient-grouped split.

Everything becomes a list of :class:`ImageRecord` (a path, a label, a patient id),
so training, evaluation and the dashboard share one representation.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch.utils.data import Dataset

from core.hashing import file_sha256
from core.images import ImageLoadError, load_image, printable
from core.labels import CLASS_NAMES, parse_label
from core.serialization import csv_unguarded

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}

_PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),  # personNNN_bacteria_MMM.jpeg
    re.compile(r"^((?:NORMAL\d+-)?IM-\d+)-", re.IGNORECASE),  # IM-NNNN-MMMM, NORMAL2-IM-NNNN-MMMM
)


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image on disk."""

    path: str
    label: int
    patient_id: str


def patient_id_from_filename(filename: str) -> str:
    """Patient id encoded in a Kermany file name; the file stem when there is none."""
    name = Path(filename).name
    for pattern in _PATIENT_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1).lower()
    return Path(name).stem.lower()


def scan_image_folder(root: str | Path, confined: bool = False) -> list[ImageRecord]:
    """List the images of an ImageFolder tree with ``NORMAL/`` and ``PNEUMONIA/`` (any case).

    Args:
        confined: refuse the folder when any image in it resolves (through a symbolic link) to a place
            outside it: the dashboard's evaluation roots must not be a way to read other files.

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: neither class folder exists, no image is found, or (``confined``) links lead out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    records: list[ImageRecord] = []
    class_dirs = {d.name.upper(): d for d in root.iterdir() if d.is_dir()}
    if not set(CLASS_NAMES) & set(class_dirs):
        raise ValueError(f"{root} has no NORMAL/ or PNEUMONIA/ folder")
    for label, name in enumerate(CLASS_NAMES):
        folder = class_dirs.get(name)
        if folder is None:
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                records.append(ImageRecord(str(path), label, patient_id_from_filename(path.name)))
    if not records:
        raise ValueError(f"no images found under {root}")
    if confined:
        inside = root.resolve()
        outside = sum(1 for r in records if not Path(r.path).resolve().is_relative_to(inside))
        if outside:
            raise ValueError(f"{outside} image(s) in this folder link to files outside it; refused")
    return records


def materialize_hf_dataset(
    name: str, out_dir: str | Path, split: str | None = None, config: str | None = "full"
) -> Path:
    """Write a Hugging Face image-classification data set as an ImageFolder tree.

    Works for a hub name (``keremberke/chest-xray-classification``) or a local
    directory of data files; both go through ``datasets.load_dataset``. Image
    file names are kept when the data set records them, so patient ids survive.

    Args:
        name: hub id or local path.
        out_dir: where to write ``NORMAL/`` and ``PNEUMONIA/``.
        split: one split to export; all splits when ``None``.
        config: the data set's configuration name (ignored for local folders).

    Returns:
        ``out_dir``.
    """
    from datasets import load_dataset

    local = Path(name).exists()
    dataset = load_dataset(name) if local or config is None else load_dataset(name, name=config)
    splits = [split] if split else list(dataset.keys())
    out = Path(out_dir)
    for split_name in splits:
        part = dataset[split_name]
        label_key = "labels" if "labels" in part.features else "label"
        names = getattr(part.features[label_key], "names", None)
        for index, row in enumerate(part):
            raw = row[label_key]
            label = parse_label(names[raw] if names else raw)
            original = Path(str(row.get("image_file_path") or f"{split_name}_{index:06d}.png")).name
            target = out / CLASS_NAMES[label] / f"{Path(original).stem}.png"
            if target.exists():  # same name in two splits: keep both
                target = target.with_name(f"{target.stem}_{split_name}_{index}.png")
            target.parent.mkdir(parents=True, exist_ok=True)
            row["image"].convert("RGB").save(target)
    return out


def _duplicate_aware_groups(records: Sequence[ImageRecord]) -> list[str]:
    """Patient ids, merged so exact-duplicate images share one group (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_owner: dict[str, str] = {}
    for record in records:
        digest = file_sha256(record.path)
        owner = first_owner.setdefault(digest, record.patient_id)
        parent[find(record.patient_id)] = find(owner)
    return [find(r.patient_id) for r in records]


def grouped_split(
    records: Sequence[ImageRecord],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, list[ImageRecord]]:
    """Split into train / val / test so no patient and no duplicate image is in two parts.

    Class balance is kept with ``StratifiedGroupKFold``: the test part is one fold of
    ``round(1 / test_fraction)`` folds, and validation one fold of the rest.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` (a part is empty when its
        fraction is 0).
    """
    records = list(records)
    groups = np.array(_duplicate_aware_groups(records))
    labels = np.array([r.label for r in records])
    remaining = np.arange(len(records))
    parts: dict[str, list[ImageRecord]] = {}
    for part, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction <= 0:
            parts[part] = []
            continue
        share = fraction / (len(remaining) / len(records))
        n_splits = max(2, round(1 / share))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        keep, take = next(splitter.split(remaining, labels[remaining], groups[remaining]))
        parts[part] = [records[i] for i in remaining[take]]
        remaining = remaining[keep]
    parts["train"] = [records[i] for i in remaining]
    return {"train": parts["train"], "val": parts["val"], "test": parts["test"]}


def split_summary(parts: dict[str, list[ImageRecord]]) -> dict[str, Any]:
    """Counts of images, patients and classes per part (stored in checkpoints and reports)."""
    summary: dict[str, Any] = {}
    for name, items in parts.items():
        summary[name] = {
            "images": len(items),
            "patients": len({r.patient_id for r in items}),
            **{c: sum(r.label == i for r in items) for i, c in enumerate(CLASS_NAMES)},
        }
    return summary


def save_split(parts: dict[str, list[ImageRecord]], path: str | Path, root: str | Path) -> None:
    """Write a split as JSON with paths relative to ``root`` (portable across machines)."""
    root = Path(root).resolve()
    data = {
        name: [{**asdict(r), "path": str(Path(r.path).resolve().relative_to(root))} for r in items]
        for name, items in parts.items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=0))


def load_split(path: str | Path, root: str | Path) -> dict[str, list[ImageRecord]]:
    """Read a split written by :func:`save_split`, resolving paths under ``root``."""
    data = json.loads(Path(path).read_text())
    return {
        name: [ImageRecord(str(Path(root) / r["path"]), int(r["label"]), r["patient_id"]) for r in items]
        for name, items in data.items()
    }


def sample_records(records: Sequence[ImageRecord], count: int | None, seed: int = 0) -> list[ImageRecord]:
    """A seeded sample of ``count`` records, in their original order (all of them when ``count`` is None or more)."""
    if count is None or len(records) <= count:
        return list(records)
    import random

    return [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), count))]


def apply_label_overrides(records: Sequence[ImageRecord], overrides: dict[str, int]) -> list[ImageRecord]:
    """Replace labels by file name (relabeling feedback); other records unchanged."""
    return [ImageRecord(r.path, overrides.get(Path(r.path).name, r.label), r.patient_id) for r in records]


class XrayDataset(Dataset):
    """A torch ``Dataset`` over :class:`ImageRecord` items."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor]):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        """The image tensor and label, or ``None`` (with one warning line) when the file cannot be read."""
        record = self.records[index]
        try:
            return self.transform(load_image(record.path)), record.label
        except ImageLoadError as error:
            print(f"warning: skipped {printable(str(error))}", file=sys.stderr)
            return None

    @property
    def labels(self) -> list[int]:
        """Labels in dataset order."""
        return [r.label for r in self.records]


def collate_readable(items: list[tuple[torch.Tensor, int] | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """``DataLoader`` collate that leaves out unreadable images (``None`` from :class:`XrayDataset`)."""
    kept = [item for item in items if item is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.stack([image for image, _ in kept]), torch.tensor([label for _, label in kept])


def read_label_overrides(csv_path: str | Path) -> dict[str, int]:
    """Read a relabel export (``python -m db export``) as ``{file_name: label}``.

    Uses the ``file_name`` and ``resolved_label`` columns; rows without a
    resolved label are skipped.

    Raises:
        ValueError: the columns are missing or a label is not a class name.
    """
    import csv

    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file_name", "resolved_label"} <= set(reader.fieldnames):
            raise ValueError(f"{csv_path}: needs 'file_name' and 'resolved_label' columns")
        overrides = {}
        for row in reader:
            if row["resolved_label"].strip():
                name = csv_unguarded(row["file_name"])  # undo the export's spreadsheet-formula guard
                overrides[Path(name).name] = parse_label(row["resolved_label"])
    return overrides


FOLDER_REFUSED = "that folder is not available: only labelled folders under the configured evaluation roots can be used"


def folder_under_roots(folder: str, roots: Sequence[Path]) -> Path:
    """The resolved folder when it lies inside one of ``roots`` and is a directory.

    The same message is given whether a refused path exists or not, so the
    answer reveals nothing about the server's files outside the roots.

    Raises:
        ValueError: :data:`FOLDER_REFUSED`.
    """
    try:  # both sides resolved (symbolic links followed) before the containment check
        resolved = Path(folder).expanduser().resolve()
        allowed = [Path(root).expanduser().resolve() for root in roots]
        inside = any(resolved.is_relative_to(root) for root in allowed)
        if not inside or not resolved.is_dir():
            raise ValueError(FOLDER_REFUSED)
    except (OSError, RuntimeError):
        raise ValueError(FOLDER_REFUSED) from None
    return resolved
