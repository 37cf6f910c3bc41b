"""Does the AI help the readers? The reader study's unaided and aided reads as an MRMC data set, and its analysis.

Each reader's blind first read of a case is the **unaided** reading; the review that
follows it (the call made after the model's output was shown) is the **aided** one.
A call and its confidence become one ordinal rating of how sure the reader is of
pneumonia (:data:`RATING_SCALE`: 1 = NORMAL, high confidence ... 8 = PNEUMONIA, high),
so each reader has an ROC curve in each modality; rating >= 5 is a PNEUMONIA call.

The reference standard is the adjudicated label, else the label the image came with
(a study set imported with its truth); reviewers' majority is not used, since a
reader's own call would then count toward the truth they are scored against. The
Obuchowski-Rockette analysis needs every reader to read every case in both
modalities: the readers and cases that form such a complete block are used, and the
rest are counted and left out.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.mrmc import Ratings, analyse
from db import repository
from db.models import Image
from service.reader_study import latest_blind_reads
from service.store import read

RATING_SCALE = {
    ("NORMAL", "high"): 1,
    ("NORMAL", "medium"): 2,
    ("NORMAL", "low"): 3,
    ("NORMAL", "unsure"): 4,
    ("PNEUMONIA", "unsure"): 5,
    ("PNEUMONIA", "low"): 6,
    ("PNEUMONIA", "medium"): 7,
    ("PNEUMONIA", "high"): 8,
}
"""Call x confidence -> an ordinal rating of pneumonia; >= :data:`PNEUMONIA_CUT` is a PNEUMONIA call."""
PNEUMONIA_CUT = 5
MODALITIES = ("unaided", "aided")


@dataclass
class ReaderStudyRatings:
    """The complete block of ratings, and what was left out of it."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    """Long format: ``reader, case, modality, truth, rating`` (the CSV ``python -m training.mrmc`` reads)."""
    readers: list[str] = field(default_factory=list)
    cases: list[int] = field(default_factory=list)
    left_out: str = ""
    """One line: the readers and cases outside the complete block, and why."""

    def csv_text(self) -> str:
        """The ratings as CSV (header ``reader,case,modality,truth,rating``)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["reader", "case", "modality", "truth", "rating"])
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()


def _reference(session: Session, image_id: int, resolution: repository.Resolution) -> str:
    if resolution.method == "adjudicated" and resolution.adjudication is not None:
        return resolution.adjudication.label
    image = session.get(Image, image_id)
    return (image.original_label or "") if image is not None else ""


def reader_study_ratings(engine: Engine) -> ReaderStudyRatings:
    """Unaided and aided ratings of the readers and cases that form a complete block."""

    def action(session: Session) -> ReaderStudyRatings:
        blind = latest_blind_reads(session)
        paired: dict[tuple[int, str], tuple[int, int]] = {}  # (image, reader) -> (unaided, aided)
        truth: dict[int, int] = {}
        for image_id, (calls, resolution) in repository.resolutions(session).items():
            reference = _reference(session, image_id, resolution)
            if reference not in ("NORMAL", "PNEUMONIA"):
                continue
            for reader, review in calls.items():
                first = blind.get((image_id, reader))
                if first is None or review.blind_read_id != first.id:
                    continue  # not a blind read followed by its aided review
                paired[(image_id, reader)] = (
                    RATING_SCALE[(first.label, first.confidence)],
                    RATING_SCALE[(review.call, review.confidence)],
                )
                truth[image_id] = int(reference == "PNEUMONIA")
        return _complete_block(paired, truth)

    return read(engine, action)


def _complete_block(paired: dict[tuple[int, str], tuple[int, int]], truth: dict[int, int]) -> ReaderStudyRatings:
    """The largest block in which every reader read every case: readers dropped while that grows it."""
    readers = sorted({reader for _, reader in paired})
    cases_of = {r: {image for image, reader in paired if reader == r} for r in readers}

    def shared(group: list[str]) -> set[int]:
        return set.intersection(*(cases_of[r] for r in group)) if group else set()

    chosen = list(readers)
    while len(chosen) > 2:
        drop = max(chosen, key=lambda r: len(shared([x for x in chosen if x != r])))
        if len(shared([x for x in chosen if x != drop])) * (len(chosen) - 1) <= len(shared(chosen)) * len(chosen):
            break
        chosen.remove(drop)
    cases = sorted(shared(chosen))
    rows = [
        {
            "reader": reader,
            "case": image,
            "modality": modality,
            "truth": truth[image],
            "rating": paired[(image, reader)][m],
        }
        for reader in chosen
        for image in cases
        for m, modality in enumerate(MODALITIES)
    ]
    outside = len({image for image, _ in paired}) - len(cases)
    note = f"{len(readers) - len(chosen)} reader(s) and {outside} case(s) outside the block every reader read"
    return ReaderStudyRatings(rows, chosen, cases, note)


def complete_ratings(block: ReaderStudyRatings) -> Ratings:
    """The block as :class:`core.mrmc.Ratings`.

    Raises:
        ValueError: fewer than two readers with paired reads of the same cases, or one class only.
    """
    if len(block.readers) < 2 or not block.cases:
        raise ValueError(
            f"an MRMC analysis needs at least two readers who each read the same cases blind and then aided; "
            f"have {len(block.readers)} reader(s) and {len(block.cases)} shared case(s)"
        )
    return Ratings.from_rows(block.rows)


def analyse_block(block: ReaderStudyRatings) -> dict[str, Any]:
    """The MRMC analysis of unaided vs aided reading (AUC; sensitivity and specificity at the reader's calls).

    Raises:
        ValueError: see :func:`complete_ratings`.
    """
    data = complete_ratings(block)
    record: dict[str, Any] = {"auc": analyse(data).as_dict(data)}
    for endpoint in ("sensitivity", "specificity"):
        record[endpoint] = analyse(data, endpoint, PNEUMONIA_CUT).as_dict(data)
    record["left_out"] = block.left_out
    record["rating_scale"] = "call x confidence: 1 = NORMAL high ... 8 = PNEUMONIA high; >= 5 calls PNEUMONIA"
    record["reference"] = "adjudicated label, else the label the image came with"
    return record


def reader_study_analysis(engine: Engine) -> dict[str, Any]:
    """:func:`analyse_block` of the store's complete block (:func:`reader_study_ratings`)."""
    return analyse_block(reader_study_ratings(engine))
