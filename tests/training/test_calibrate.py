"""``python -m training.calibrate``: re-fitting on validation, and the refusal of --from-reviews without cases."""

from __future__ import annotations

import os

from tests.helpers import run_main, run_subprocess


def test_smoke_from_reviews_without_cases_is_one_line(tmp_path, tiny_checkpoint):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "IMAGE_STORE_DIR": str(tmp_path / "s")}
    result = run_subprocess("training.calibrate", "--checkpoint", tiny_checkpoint, "--from-reviews", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: need at least 20 resolved reviewed cases of each class; have 0 NORMAL and 0 PNEUMONIA"
    )


def test_validation_refit_rewrites_the_checkpoint(tmp_path, tiny_checkpoint, image_folder):
    import shutil

    from core.checkpoint import load_checkpoint
    from core.data import grouped_split, save_split, scan_image_folder

    checkpoint = tmp_path / "model.pth"
    shutil.copy(tiny_checkpoint, checkpoint)
    split = tmp_path / "split.json"
    save_split(grouped_split(scan_image_folder(image_folder), 0.4, 0.2, 0), split, image_folder)
    result = run_main(
        "training.calibrate",
        "--checkpoint",
        checkpoint,
        "--data-dir",
        image_folder,
        "--split-file",
        split,
        "--threshold-goal",
        "youden",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    _, meta = load_checkpoint(checkpoint)
    assert meta.threshold_goal == "youden" and meta.temperature != 1.5  # the fixture's value was refitted


def test_missing_arguments_are_one_line(tiny_checkpoint):
    result = run_main("training.calibrate", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give --checkpoint, --data-dir and --split-file, or --from-reviews"


def test_stress_validation_pools_perturbed_copies(tmp_path, tiny_checkpoint, image_folder):
    import shutil

    from core.checkpoint import load_checkpoint
    from core.data import grouped_split, save_split, scan_image_folder
    from training.calibrate import validation_set

    checkpoint = tmp_path / "model.pth"
    shutil.copy(tiny_checkpoint, checkpoint)
    split = tmp_path / "split.json"
    parts = grouped_split(scan_image_folder(image_folder), 0.4, 0.2, 0)
    save_split(parts, split, image_folder)
    pooled = validation_set(parts["val"], 32, [0.5] * 3, [0.5] * 3, ["noise_8", "zoom_in_20"])
    assert len(pooled) == 3 * len(parts["val"])
    clean, noisy = pooled[0][0], pooled[len(parts["val"])][0]
    assert clean.shape == noisy.shape and not (clean == noisy).all()
    args = ["--checkpoint", checkpoint, "--data-dir", image_folder, "--split-file", split, "--workers", "2"]
    result = run_main("training.calibrate", *args, "--stress-val", "noise_8,zoom_in_20", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    _, meta = load_checkpoint(checkpoint)
    assert meta.threshold_goal == "sensitivity>=0.95 (validation + shifts: noise_8,zoom_in_20)"
    bad = run_main("training.calibrate", *args, "--stress-val", "nonsense")
    assert bad.returncode == 2 and "unknown perturbation(s) nonsense" in bad.stderr


def test_restore_puts_the_checkpoint_point_back_as_one_logged_change(tmp_path, tiny_checkpoint, monkeypatch):
    from core.inference import Predictor
    from core.operating_point import OperatingPoint
    from service import known_models, maintenance, store

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'site.db'}")
    engine = store.open_store()
    predictor = Predictor.from_checkpoint(tiny_checkpoint, "cpu")
    site_point = OperatingPoint(threshold=0.2, temperature=2.0, bias=0.5, goal="sensitivity>=0.95")
    known_models.save_operating_point(engine, predictor, site_point, "Dr Lead", {}, "site")
    assert known_models.predictor_in_force(engine, predictor).threshold == 0.2
    refused = run_main("training.calibrate", "--checkpoint", tiny_checkpoint, "--restore", "--reason", " ")
    assert refused.returncode == 2 and "a reason is required" in refused.stderr
    done = run_main("training.calibrate", "--checkpoint", tiny_checkpoint, "--restore", "--reason", "back")
    assert done.returncode == 0 and "restored the checkpoint's operating point" in done.stdout
    restored = known_models.predictor_in_force(engine, predictor).point
    assert (restored.threshold, restored.temperature, restored.bias) == (0.5, 1.5, 0.0)
    assert restored.goal.startswith("restored: ")
    again = run_main("training.calibrate", "--checkpoint", tiny_checkpoint, "--restore", "1", "--reason", "site")
    assert again.returncode == 0 and "restored operating point #1" in again.stdout
    assert known_models.predictor_in_force(engine, predictor).threshold == 0.2
    missing = run_main("training.calibrate", "--checkpoint", tiny_checkpoint, "--restore", "99", "--reason", "x")
    assert missing.returncode == 2 and "no saved operating point #99" in missing.stderr
    bad = run_main("training.calibrate", "--checkpoint", tiny_checkpoint, "--restore", "last", "--reason", "x")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert maintenance.verify_log(engine).ok  # every change is in the audit chain
