"""training.label_issues: out-of-fold confident learning finds flipped labels and queues them for review."""

from __future__ import annotations

import csv
import shutil

import pytest
from sqlalchemy import text

from db.engine import init_db, make_engine
from service import export, reviews
from tests.helpers import make_image_folder, run_main, run_subprocess

FLIPPED = ["IM-0002-0002.jpeg", "IM-0005-0008.jpeg", "person105_bacteria_10.jpeg"]


@pytest.fixture()
def noisy_folder(tmp_path):
    """40 synthetic X-rays per class; three of them moved to the wrong class folder."""
    root = make_image_folder(tmp_path / "train", per_class=40, size=96, images_per_patient=2)
    for name in FLIPPED:
        source = next(root.glob(f"*/{name}"))
        other = "PNEUMONIA" if source.parent.name == "NORMAL" else "NORMAL"
        shutil.move(source, root / other / name)
    return root


def test_flipped_labels_rank_first_and_are_queued_for_review(noisy_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    report = tmp_path / "issues.csv"
    args = ["--data-dir", str(noisy_folder), "--top", "2", "--output", str(report), "--no-progress"]
    result = run_main("training.label_issues", *args)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    with open(report, newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Synthetic classes overlap a little: the two flips that are far inside the other class rank first.
    assert {r["file_name"] for r in rows[:2]} <= set(FLIPPED) and len(rows) <= 8
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert float(rows[0]["p_given_label"]) <= float(rows[-1]["p_given_label"])
    assert "queued 2 image(s)" in out

    engine = init_db(make_engine())
    with engine.connect() as connection:
        queued = connection.execute(
            text(
                "SELECT images.file_name, images.original_label, predictions.channel FROM suspected_label_issues "
                "JOIN images ON images.id = suspected_label_issues.image_id "
                "JOIN predictions ON predictions.id = suspected_label_issues.prediction_id"
            )
        ).all()
    assert {q[0] for q in queued} <= set(FLIPPED) and {q[2] for q in queued} == {"training_data"}
    assert {q[0]: q[1] for q in queued} == {r["file_name"]: r["given_label"] for r in rows[:2]}
    queue = reviews.load_queue(engine, reviews.QueueFilters(training_data=True))
    assert len(queue) == 2 and all(c.doubt.startswith("Training image labelled") for c in queue)
    assert reviews.load_queue(engine) == []  # not in the predictions queue
    # A reviewer's correction becomes the resolved label in the relabel export, by file name.
    case = queue[0]
    given = case.original_label
    corrected = "NORMAL" if given == "PNEUMONIA" else "PNEUMONIA"
    agrees = case.predicted_label == corrected
    reviews.submit_review(engine, case.id, "Dr R", agrees, None if agrees else corrected)
    export.write_relabel_export(engine, tmp_path / "relabel.csv")
    with open(tmp_path / "relabel.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["file_name"], row["original_label"], row["resolved_label"]) == (case.file_name, given, corrected)
    assert reviews.reviewed_cases(engine) == []  # training images never count as site cases

    again = run_main("training.label_issues", *args)  # a second run queues nothing twice
    assert again.returncode == 0 and "queued 0 image(s)" in again.stdout


def test_too_few_images_is_one_line(tmp_path):
    root = make_image_folder(tmp_path / "tiny", per_class=3, size=64)
    result = run_subprocess("training.label_issues", "--data-dir", root, "--dry-run", "--no-progress")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "need at least 5 images of each class" in result.stderr
