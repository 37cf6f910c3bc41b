import csv
import dataclasses
import subprocess
import sys

from core.data import apply_label_overrides, read_label_overrides, scan_image_folder
from db import repository
from db.engine import session_scope
from service.export import write_relabel_export
from tests.db.conftest import add_prediction
from tests.helpers import REPO_ROOT, run_main


def _reviewed(engine):
    agreed = add_prediction(engine, seed=1, p=0.9, name="person1_virus_1.jpeg", original_label="PNEUMONIA")
    flipped = add_prediction(engine, seed=2, p=0.8, name="IM-0001-0001.jpeg", original_label="NORMAL")
    tied = add_prediction(engine, seed=3, p=0.3, name="tie.png")
    with session_scope(engine) as session:
        repository.add_review(session, agreed, "A", True)
        repository.add_review(session, flipped, "A", False, "NORMAL", notes='comma, "quote"\nnewline')
        repository.add_review(session, flipped, "B", False, "NORMAL")
        repository.add_review(session, tied, "A", True)
        repository.add_review(session, tied, "B", False, "PNEUMONIA")


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_csv_read_back(engine, tmp_path):
    _reviewed(engine)
    assert write_relabel_export(engine, tmp_path / "all.csv") == 3
    rows = {r["file_name"]: r for r in _read(tmp_path / "all.csv")}
    assert rows["IM-0001-0001.jpeg"]["resolved_label"] == "NORMAL"
    assert rows["IM-0001-0001.jpeg"]["model_label"] == "PNEUMONIA"
    assert rows["IM-0001-0001.jpeg"]["original_label"] == "NORMAL"
    assert rows["IM-0001-0001.jpeg"]["reviewer_calls"] == "A (unverified):NORMAL; B (unverified):NORMAL"
    assert rows["person1_virus_1.jpeg"]["resolved_label"] == "PNEUMONIA"
    assert rows["tie.png"]["resolved_label"] == ""
    assert write_relabel_export(engine, tmp_path / "dis.csv", only_disagreements=True) == 2
    assert {r["file_name"] for r in _read(tmp_path / "dis.csv")} == {"IM-0001-0001.jpeg", "tie.png"}


def test_export_image_folder_feeds_training(engine, tmp_path):
    _reviewed(engine)
    write_relabel_export(engine, tmp_path / "r.csv", images_dir=tmp_path / "tree")
    records = scan_image_folder(tmp_path / "tree")
    assert sorted((r.path.split("/")[-1], r.label) for r in records) == [
        ("IM-0001-0001.jpeg", 0),
        ("person1_virus_1.jpeg", 1),
    ]
    # The CSV works as label overrides for training data with the same file names.
    overrides = read_label_overrides(tmp_path / "r.csv")
    flipped = [dataclasses.replace(r, label=1) for r in scan_image_folder(tmp_path / "tree")]
    relabeled = apply_label_overrides(flipped, overrides)
    assert {r.path.split("/")[-1]: r.label for r in relabeled}["IM-0001-0001.jpeg"] == 0


def test_cli_export(engine, data_dir, tmp_path):
    _reviewed(engine)
    result = subprocess.run(
        [sys.executable, "-m", "db", "export", "--output", str(tmp_path / "x.csv"), "--only-disagreements"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"PNEUMONIA_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 2 rows" in result.stdout and len(_read(tmp_path / "x.csv")) == 2


def test_cli_bad_database_is_one_line(tmp_path):
    result = run_main("db", "--database-url", "sqlite:////proc/nope/x.db", "summary")
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
