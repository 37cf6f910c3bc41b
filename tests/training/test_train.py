"""Training smoke runs on generated images: real processes, real checkpoints."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from core.checkpoint import load_checkpoint
from tests.helpers import REPO_ROOT, run_main

TINY = [
    "--model",
    "resnet18",
    "--image-size",
    "32",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--val-fraction",
    "0.25",
    "--test-fraction",
    "0.25",
    "--lr",
    "0.01",
    "--seed",
    "1",
]


def run(module, *args, launcher=None, subprocess_smoke=False, timeout=600):
    """In-process by default; a real process for the smoke test and for torchrun."""
    if launcher is None and not subprocess_smoke:
        return run_main(module, *args)
    command = launcher or [sys.executable, "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, module, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def train_tiny(data_dir, out, *options):
    """One epoch of the tiny recipe on ``data_dir`` into ``out``; ``options`` come last, so they win over TINY's."""
    return run("training.train", "--data-dir", data_dir, "--epochs", "1", "--output-dir", out, *TINY, *options)


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = run(
        "training.train",
        "--data-dir",
        image_folder,
        "--epochs",
        "2",
        "--output-dir",
        out,
        "--patience",
        "10",
        *TINY,
        subprocess_smoke=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_training_writes_self_describing_checkpoint(trained):
    out, result = trained
    model, meta = load_checkpoint(out / "best_model.pth")
    assert meta.arch == "resnet18" and meta.image_size == 32
    assert meta.train_args["lr"] == 0.01 and meta.train_args["seed"] == 1
    assert meta.split["scored_on"] == "val" and meta.split["summary"]["val"]["images"] > 0
    assert {"roc_auc", "sensitivity", "specificity", "ece"} <= set(meta.val_metrics)
    assert 0 <= meta.threshold <= 1 and meta.temperature > 0 and meta.created_at
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    assert "epoch" in result.stderr and "batch" in result.stderr  # tqdm bars
    split = json.loads((out / "split.json").read_text())
    assert set(split) == {"train", "val", "test"}
    from core.checkpoint import file_sha256

    assert meta.onnx_sha256 == file_sha256(out / "best_model.onnx")  # the serving copy, exported at the end


def test_resume_continues_from_last_epoch(trained, tmp_path):
    out, _ = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    result = run(
        "training.train",
        "--data-dir",
        "unused-restored-from-state",
        "--resume",
        resumed / "last.pth",
        "--epochs",
        "3",
        "--output-dir",
        resumed,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    log = [json.loads(line) for line in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2, 3]


def test_bad_resume_file_is_one_line(tmp_path, image_folder):
    bogus = tmp_path / "last.pth"
    bogus.write_text("x")
    result = run("training.train", "--data-dir", image_folder, "--resume", bogus, "--output-dir", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "training state" in result.stderr


def test_missing_data_dir_is_one_line(tmp_path):
    result = run("training.train", "--data-dir", tmp_path / "nope", "--output-dir", tmp_path / "o")
    assert result.returncode == 2 and result.stderr.strip().startswith("error: data directory not found")


def test_relabel_csv_changes_training_labels(image_folder, tmp_path):
    from core.data import load_split

    normal = sorted((image_folder / "NORMAL").iterdir())
    csv = tmp_path / "relabel.csv"
    csv.write_text("file_name,resolved_label\n" + "".join(f"{p.name},PNEUMONIA\n" for p in normal))
    out = tmp_path / "relabeled"
    result = train_tiny(image_folder, out, "--relabel", csv, "--balance", "none")
    assert result.returncode == 0, result.stderr[-2000:]
    _, meta = load_checkpoint(out / "best_model.pth")
    assert meta.split["summary"]["train"]["NORMAL"] == 0
    assert meta.train_args["relabel"] == str(csv)
    assert load_split(out / "split.json", image_folder)  # split itself is by original data


def test_torchrun_two_cpu_processes(image_folder, tmp_path):
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    result = run(
        "training.train",
        "--data-dir",
        image_folder,
        "--epochs",
        "2",
        "--output-dir",
        out,
        "--device",
        "cpu",
        "--no-progress",
        *TINY,
        launcher=torchrun,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]  # written once, by rank 0
    _, meta = load_checkpoint(out / "best_model.pth")
    assert meta.arch == "resnet18"


def test_training_from_a_hugging_face_dataset_folder(tmp_path):
    """--hf-dataset goes through datasets.load_dataset, here on a local parquet data set."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as HFImage

    from tests.helpers import xray_like

    names = [f"person{i // 2}_virus_{i}.jpeg" if i % 2 else f"IM-{i:04d}-0001.jpeg" for i in range(24)]
    rows = {
        "image_file_path": names,
        "image": [xray_like(i, i % 2 == 1, 32) for i in range(24)],
        "labels": [i % 2 for i in range(24)],
    }
    features = Features(
        {"image_file_path": Value("string"), "image": HFImage(), "labels": ClassLabel(names=["NORMAL", "PNEUMONIA"])}
    )
    (tmp_path / "hf" / "data").mkdir(parents=True)
    Dataset.from_dict(rows, features=features).to_parquet(tmp_path / "hf" / "data" / "train-00000.parquet")
    out = tmp_path / "run"
    result = run(
        "training.train",
        "--hf-dataset",
        tmp_path / "hf",
        "--hf-cache-dir",
        tmp_path / "cache",
        "--epochs",
        "1",
        "--output-dir",
        out,
        *TINY,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 24
    _, meta = load_checkpoint(out / "best_model.pth")
    assert sum(meta.split["summary"][part]["images"] for part in ("train", "val", "test")) == 24


def test_a_corrupt_training_image_is_skipped_with_a_warning(tmp_path):
    from tests.helpers import make_image_folder

    folder = make_image_folder(tmp_path / "data", per_class=8, size=48)
    for patient in range(90, 96):  # several patients, so some land in training or validation
        (folder / "NORMAL" / f"IM-{patient:04d}-0001.jpeg").write_bytes(b"\xff\xd8\xff truncated %d" % patient)
    result = train_tiny(folder, tmp_path / "o", "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning: skipped" in result.stderr and "-0001.jpeg: not a recognised image format" in result.stderr
    assert (tmp_path / "o" / "best_model.pth").exists()


def test_robust_recipe_with_weight_averaging_trains_and_records_it(image_folder, tmp_path):
    out = tmp_path / "robust"
    result = train_tiny(image_folder, out, "--no-onnx", "--augment", "robust", "--min-scale", "0.6", "--ema", "0.9")
    assert result.returncode == 0, result.stderr[-2000:]
    model, meta = load_checkpoint(out / "best_model.pth")
    assert meta.train_args["augment"] == "robust" and meta.train_args["ema"] == 0.9
    assert "n_averaged" not in json.dumps(list(model.state_dict()))  # the averaged network, unwrapped
    bad = train_tiny(image_folder, tmp_path / "x", "--ema", "1.5")
    assert bad.returncode == 2 and "--ema must lie in (0, 1)" in bad.stderr


def test_equalized_mixup_recipe_stores_its_input_normalisation_and_serves_it(image_folder, tmp_path):
    from PIL import Image

    from core.inference import Predictor
    from core.shifts import gamma

    out = tmp_path / "equalize"
    result = train_tiny(image_folder, out, "--intensity", "equalize", "--mixup", "0.4")
    assert result.returncode == 0, result.stderr[-2000:]
    _, meta = load_checkpoint(out / "best_model.pth")
    assert meta.intensity == "equalize" and meta.train_args["mixup"] == 0.4
    # Inference (PyTorch and the ONNX export) equalizes too: an exposure change barely moves the input.
    image = Image.open(next((image_folder / "NORMAL").iterdir())).convert("RGB")
    for backend in ("torch", "onnx"):
        predictor = Predictor.from_checkpoint(out / "best_model.pth", "cpu", backend=backend)
        assert predictor.transform.intensity == "equalize"
        p = predictor.predict_proba([image, gamma(image, 0.6)])[:, 1]
        assert abs(p[0] - p[1]) < 0.05
    bad = train_tiny(image_folder, tmp_path / "x", "--mixup", "-1")
    assert bad.returncode == 2 and "--mixup must be >= 0" in bad.stderr


def test_mix_batch_blends_pairs_and_weights_the_original_most():
    import torch

    from training.loop import mix_batch

    images = torch.stack([torch.full((3, 4, 4), float(i)) for i in range(6)])
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    same = mix_batch(images, labels, 0.0)
    assert same[0] is images and same[2] == 1.0
    torch.manual_seed(0)
    mixed, partners, weight = mix_batch(images, labels, 0.4)
    assert 0.5 <= weight < 1.0
    for i in range(6):
        j = int(round(float((mixed[i, 0, 0, 0] - weight * i) / (1 - weight))))  # the partner, from the pixels
        assert torch.allclose(mixed[i], weight * images[i] + (1 - weight) * images[j], atol=1e-5)
        assert partners[i] == labels[j]
    with pytest.raises(ValueError):
        mix_batch(images, labels, -0.1)


def test_compiled_training_matches_eager_training(image_folder, tmp_path):
    import torch

    runs = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        result = train_tiny(image_folder, tmp_path / name, "--no-onnx", "--rotation", "0", *extra, "--lr", "1e-4")
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = load_checkpoint(tmp_path / name / "best_model.pth")
    (eager, _), (compiled, compiled_meta) = runs["eager"], runs["compiled"]
    assert compiled_meta.train_args["compile"] and "_orig_mod" not in json.dumps(list(compiled.state_dict()))
    # Same seed, same batches: the compiled step computes the same updates up to float rounding; at a small
    # learning rate Adam's steps (each at most about lr) cannot carry a rounding difference far.
    for (key, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-2, atol=2e-3), key


def test_progressive_resizing_trains_early_epochs_small_and_serves_full_size(image_folder, tmp_path):
    out = tmp_path / "progressive"
    result = train_tiny(
        image_folder,
        out,
        "--no-onnx",
        "--epochs",
        "3",
        "--patience",
        "10",
        "--low-res-size",
        "16",
        "--low-res-epochs",
        "2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["train_side"] for row in rows] == [16, 16, 32]  # the side of the batches each epoch saw
    assert all(0 < row["train_seconds"] <= row["seconds"] for row in rows)  # the loop alone, within the epoch
    _, meta = load_checkpoint(out / "best_model.pth")
    assert meta.image_size == 32 and meta.train_args["low_res_size"] == 16  # validated and served at full size


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--low-res-size", "64", "--low-res-epochs", "1"], "--low-res-size must lie in [16, 32)"),
        (["--low-res-size", "8", "--low-res-epochs", "1"], "--low-res-size must lie in [16, 32)"),
        (["--low-res-epochs", "2"], "--low-res-epochs needs --low-res-size"),
        (["--low-res-size", "16", "--low-res-epochs", "-1"], "--low-res-epochs must be >= 0"),
    ],
)
def test_impossible_progressive_resizing_is_refused_in_one_line(image_folder, tmp_path, options, message):
    result = train_tiny(image_folder, tmp_path / "refused", "--no-onnx", *options)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "refused" / "best_model.pth").exists()
