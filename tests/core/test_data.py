import shutil

import numpy as np
import pytest
from PIL import Image

from core.data import (
    XrayDataset,
    apply_label_overrides,
    grouped_split,
    load_split,
    materialize_hf_dataset,
    patient_id_from_filename,
    read_label_overrides,
    save_split,
    scan_image_folder,
    split_summary,
)
from core.transforms import eval_transform
from tests.helpers import make_image_folder, xray_like


@pytest.mark.parametrize(
    "name, patient",
    [
        ("person1000_bacteria_2931.jpeg", "person1000"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("person1_virus_12_3.jpeg", "person1"),
        ("IM-0115-0001.jpeg", "im-0115"),
        ("IM-0117-0001-0002.jpeg", "im-0117"),
        ("NORMAL2-IM-0588-0001.jpeg", "normal2-im-0588"),
        ("odd name.png", "odd name"),
    ],
)
def test_patient_id_from_kermany_names(name, patient):
    assert patient_id_from_filename(name) == patient


def test_scan_image_folder_any_case(tmp_path):
    for folder in ("normal", "Pneumonia"):
        (tmp_path / folder).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / folder / "IM-0001-0001.png")
    (tmp_path / "normal" / "readme.txt").write_text("not an image")
    records = scan_image_folder(tmp_path)
    assert sorted(r.label for r in records) == [0, 1]


def test_scan_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no NORMAL"):
        scan_image_folder(tmp_path)


def _big_folder(tmp_path):
    return make_image_folder(tmp_path, per_class=60, size=16, images_per_patient=3)


def test_grouped_split_keeps_patients_apart(tmp_path):
    records = scan_image_folder(_big_folder(tmp_path))
    parts = grouped_split(records, 0.2, 0.2, seed=3)
    patients = {k: {r.patient_id for r in v} for k, v in parts.items()}
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(v) for v in parts.values()) == len(records)
    summary = split_summary(parts)
    for part in ("val", "test"):
        assert summary[part]["NORMAL"] > 0 and summary[part]["PNEUMONIA"] > 0
        assert 0.1 < summary[part]["images"] / len(records) < 0.3


def test_grouped_split_keeps_exact_duplicates_together(tmp_path):
    root = _big_folder(tmp_path)
    # The same picture under two different patients' names.
    shutil.copy(root / "PNEUMONIA" / "person100_bacteria_0.jpeg", root / "PNEUMONIA" / "person999_virus_1.jpeg")
    records = scan_image_folder(root)
    for seed in range(5):
        parts = grouped_split(records, 0.2, 0.2, seed=seed)
        where = {r.patient_id: name for name, items in parts.items() for r in items}
        assert where["person100"] == where["person999"]


def test_grouped_split_is_deterministic(tmp_path):
    records = scan_image_folder(_big_folder(tmp_path))
    first = grouped_split(records, seed=1)
    assert first == grouped_split(records, seed=1)


def test_split_file_round_trip(tmp_path):
    root = _big_folder(tmp_path / "data")
    parts = grouped_split(scan_image_folder(root), seed=0)
    save_split(parts, tmp_path / "split.json", root)
    assert "data" not in (tmp_path / "split.json").read_text().split('"path"')[1][:20]
    assert load_split(tmp_path / "split.json", root) == parts


def test_dataset_returns_normalised_tensors(image_folder):
    records = scan_image_folder(image_folder)
    dataset = XrayDataset(records, eval_transform(32, [0.5] * 3, [0.5] * 3))
    tensor, label = dataset[0]
    assert tensor.shape == (3, 32, 32) and label in (0, 1)
    assert float(tensor.min()) >= -1.0 and float(tensor.max()) <= 1.0


def test_label_overrides(tmp_path, image_folder):
    records = scan_image_folder(image_folder)
    target = records[0]
    csv_path = tmp_path / "relabel.csv"
    csv_path.write_text(f"file_name,resolved_label\n{target.path.split('/')[-1]},PNEUMONIA\nother.png,\n")
    overrides = read_label_overrides(csv_path)
    changed = apply_label_overrides(records, overrides)
    assert changed[0].label == 1 and target.label == 0
    assert [r.label for r in changed[1:]] == [r.label for r in records[1:]]


def test_label_overrides_reject_bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,label\nx.png,NORMAL\n")
    with pytest.raises(ValueError, match="resolved_label"):
        read_label_overrides(path)


def test_hugging_face_path_with_local_dataset(tmp_path):
    """Same code path as the hub id: datasets.load_dataset on a folder of parquet files."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as HFImage

    rows = {
        "image_file_path": ["/x/person5_virus_1.jpeg", "/x/IM-0007-0001.jpeg", "/x/person5_virus_2.jpeg"],
        "image": [xray_like(1, True, 16), xray_like(2, False, 16), xray_like(3, True, 16).convert("RGBA")],
        "labels": [1, 0, 1],
    }
    features = Features(
        {"image_file_path": Value("string"), "image": HFImage(), "labels": ClassLabel(names=["NORMAL", "PNEUMONIA"])}
    )
    source = tmp_path / "hf"
    (source / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=features).to_parquet(source / "data" / "train-00000-of-00001.parquet")
    out = materialize_hf_dataset(str(source), tmp_path / "images")
    records = scan_image_folder(out)
    assert sorted((r.patient_id, r.label) for r in records) == [("im-0007", 0), ("person5", 1), ("person5", 1)]
    assert all(np.asarray(Image.open(r.path)).ndim == 3 for r in records)
