"""Fine-tuning with reviewed cases read from the review store by content hash."""

from __future__ import annotations

import hashlib
import io
import shutil

from core.checkpoint import file_sha256, load_checkpoint
from core.inference import Predictor
from core.site_adaptation import is_comparison_case
from service import predictions, reviews, store
from tests.helpers import make_image_folder, run_main, xray_like

FAST = [
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--val-fraction",
    "0.25",
    "--test-fraction",
    "0.25",
    "--seed",
    "1",
    "--lr",
    "0.001",
    "--no-progress",
    "--device",
    "cpu",
]


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    xray_like(seed, seed % 2 == 1, 64).save(buffer, "PNG")
    return buffer.getvalue()


def _reviewed_store(engine, predictor) -> tuple[list[bytes], list[bytes]]:
    """Log and review generated images until both parts (training, comparison) have some."""
    train, comparison = [], []
    seed = 0
    while len(train) < 4 or len(comparison) < 2:
        data = _png(5000 + seed)
        (comparison if is_comparison_case(hashlib.sha256(data).hexdigest()) else train).append(data)
        logged = predictions.predict_and_log(engine, predictor, data, f"upload{seed}.png")
        truth = "PNEUMONIA" if seed % 2 else "NORMAL"
        agrees = logged.result.label == truth
        reviews.submit_review(engine, logged.prediction_id, "Dr A", agrees, None if agrees else truth)
        seed += 1
    return train, comparison


def test_finetune_uses_reviewed_images_by_hash_and_never_trains_on_comparison_cases(
    tmp_path, monkeypatch, tiny_checkpoint
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'reviews.db'}")
    monkeypatch.setenv("IMAGE_STORE_DIR", str(tmp_path / "store"))
    engine = store.open_store()
    train, comparison = _reviewed_store(engine, Predictor.from_checkpoint(tiny_checkpoint, "cpu"))
    folder = make_image_folder(tmp_path / "folder", per_class=8, size=64)
    # The same bytes as a comparison case, under another name, in the original training folder.
    (folder / "NORMAL" / "renamed-copy.png").write_bytes(comparison[0])
    out = tmp_path / "run"
    result = run_main(
        "training.train",
        "--init-checkpoint",
        tiny_checkpoint,
        "--data-dir",
        folder,
        "--reviewed",
        "--reviewed-repeat",
        "2",
        "--epochs",
        "1",
        "--output-dir",
        out,
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _, meta = load_checkpoint(out / "best_model.pth")
    used = meta.train_args["reviewed_provenance"]
    assert set(used["comparison_sha256"]) == {hashlib.sha256(c).hexdigest() for c in comparison}
    assert set(used["train_sha256"]) <= {hashlib.sha256(t).hexdigest() for t in train}
    assert not set(used["train_sha256"]) & set(used["comparison_sha256"])
    assert len(used["review_ids"]) == len(train) + len(comparison)
    assert meta.train_args["init_provenance"]["sha256"] == file_sha256(tiny_checkpoint)
    assert meta.arch == "resnet18" and meta.image_size == 64  # taken from the initial checkpoint
    split = out / "split.json"
    import json

    parts = json.loads(split.read_text())
    copy_in = [r for part in parts.values() for r in part if r["path"].endswith("renamed-copy.png")]
    trained_on = meta.split["summary"]["train"]["images"]
    original_train = len(parts["train"]) - (1 if copy_in and copy_in[0] in parts["train"] else 0)
    assert trained_on == original_train + 2 * len(used["train_sha256"])


def test_reviewed_without_a_database_is_one_line(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////proc/no/such/dir/x.db")
    folder = make_image_folder(tmp_path / "folder", per_class=4, size=64)
    result = run_main(
        "training.train",
        "--init-checkpoint",
        tiny_checkpoint,
        "--data-dir",
        folder,
        "--reviewed",
        "--epochs",
        "1",
        "--output-dir",
        tmp_path / "run",
        *FAST,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_init_checkpoint_must_be_a_checkpoint(tmp_path):
    bogus = tmp_path / "x.pth"
    bogus.write_text("not a checkpoint")
    folder = make_image_folder(tmp_path / "folder", per_class=4, size=64)
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    result = run_main(
        "training.train",
        "--init-checkpoint",
        bogus,
        "--data-dir",
        folder,
        "--epochs",
        "1",
        "--output-dir",
        tmp_path / "run",
        *FAST,
    )
    assert result.returncode == 2 and "not a loadable checkpoint" in result.stderr
