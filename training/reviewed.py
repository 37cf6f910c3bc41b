"""Reviewed cases as training data: read from the review store by content hash, merged with the folder.

A fixed part of the reviewed images (:func:`core.site_adaptation.is_comparison_case`)
is kept out for comparing model versions; an image is never in both parts, and
a reviewed image identical to a validation or test image is left out of training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data import ImageRecord
from core.hashing import file_sha256
from core.labels import parse_label
from core.site_adaptation import is_comparison_case


@dataclass
class ReviewedTrainingData:
    """Reviewed images split for fine-tuning."""

    train: list[ImageRecord] = field(default_factory=list)
    comparison_sha256: list[str] = field(default_factory=list)
    review_ids: list[int] = field(default_factory=list)
    left_out: int = 0
    """Reviewed images identical to a validation or test image (not trained on)."""

    def provenance(self) -> dict[str, Any]:
        """What the checkpoint records about the reviews it used."""
        return {
            "review_ids": self.review_ids,
            "train_sha256": sorted({Path(r.path).name.split(".")[0] for r in self.train}),
            "comparison_sha256": self.comparison_sha256,
            "comparison_rule": "sha256[:8] as an integer mod 5 == 0",
            "left_out_duplicates_of_val_or_test": self.left_out,
        }


def load_reviewed(database_url: str | None, held_out: list[ImageRecord]) -> ReviewedTrainingData:
    """Resolved reviewed images from the store, split into training and the fixed comparison part.

    Args:
        database_url: the review database (default ``$DATABASE_URL``).
        held_out: validation and test records; reviewed images identical to one of them are not trained on.
    """
    from service.reviews import reviewed_cases
    from service.store import open_store

    cases = reviewed_cases(open_store(database_url))
    held_out_hashes = {file_sha256(r.path) for r in held_out}
    data = ReviewedTrainingData()
    for case in cases:
        data.review_ids.extend(case.review_ids)
        if is_comparison_case(case.image_sha256):
            data.comparison_sha256.append(case.image_sha256)
        elif case.image_sha256 in held_out_hashes:
            data.left_out += 1
        else:
            data.train.append(ImageRecord(str(case.image_path), parse_label(case.label), f"review-{case.image_sha256}"))
    data.review_ids.sort()
    return data


def merge_training_records(
    original: list[ImageRecord], reviewed: ReviewedTrainingData, repeat: int, max_original: int | None, seed: int
) -> list[ImageRecord]:
    """The fine-tuning set: (a sample of) the original training images plus each reviewed one ``repeat`` times.

    Original images identical to a comparison case are dropped, so a comparison
    case is never trained on, whatever its file name.
    """
    comparison = set(reviewed.comparison_sha256)
    kept = [r for r in original if not comparison or file_sha256(r.path) not in comparison]
    if max_original is not None and len(kept) > max_original:
        kept = random.Random(seed).sample(kept, max_original)
    return kept + [r for r in reviewed.train for _ in range(max(repeat, 1))]
